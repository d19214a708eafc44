"""One root exception with two families that the worker's retry policy reads.

Retryable errors are worth another attempt (network, lock busy, S3 5xx); permanent
errors are not (bad input, missing row, corrupt file). Nothing parses messages: the
class decides. Messages are one sentence saying what went wrong and how to fix it,
and never carry a secret.
"""


class RailyardError(Exception):
    """Root of every error Railyard raises on purpose."""

    retryable: bool = False


class RetryableError(RailyardError):
    """A transient failure: the same job may succeed if tried again later."""

    retryable = True


class PermanentError(RailyardError):
    """A failure that another attempt cannot fix: the input or the data must change."""

    retryable = False


class ConfigError(PermanentError):
    """The environment is misconfigured; lists every problem found at once."""

    def __init__(self, problems: list[str]):
        self.problems = list(problems)
        if len(self.problems) == 1:
            message = f"configuration error: {self.problems[0]}"
        else:
            lines = "\n".join(f"  - {p}" for p in self.problems)
            message = f"configuration error ({len(self.problems)} problems):\n{lines}"
        super().__init__(message)


class StorageError(RetryableError):
    """Object storage could not be reached or answered with a server error."""


class NotFoundError(PermanentError):
    """A named thing (backup id, object key, row) does not exist."""


class LockBusyError(RetryableError):
    """Another process holds the lock for this work right now."""


class ObjectExistsError(PermanentError):
    """A write that may only create an object found one already at its key; nothing was overwritten."""


def first_line(exc: BaseException) -> str:
    """The first line of an error's text, or its type's name when it has none: the sentence without the
    detail lines libpq and others add below it."""
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


def one_line(exc: BaseException) -> str:
    """An error as one line for logs and the CLI: Railyard's own sentence, or ``Type: message`` for others."""
    text = " ".join(str(exc).split()) or type(exc).__name__
    return text if isinstance(exc, RailyardError) else f"{type(exc).__name__}: {text}"
