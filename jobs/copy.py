"""The public job path ``jobs.copy.copy_backup``: producers and stored schedules enqueue it by this string.

The code lives in :mod:`jobs.backup.copy`; this module only keeps the path resolving.
"""

from jobs.backup.copy import copy_backup

__all__ = ["copy_backup"]
