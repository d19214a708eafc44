"""What can be wrong with an audio file, as the two outcomes the row records."""

from __future__ import annotations

from railyard.core.errors import PermanentError


class AudioInputError(PermanentError):
    """The file cannot be normalised (corrupt, empty, silent, not audio): the row becomes ``failed``."""


class AudioLimitError(PermanentError):
    """The file is over a size or duration limit: the row becomes ``rejected``."""


class ClaimLostError(PermanentError):
    """Another worker took the file over after this one was presumed dead; this attempt stops."""
