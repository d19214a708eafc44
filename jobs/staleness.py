"""The public job path ``jobs.staleness.check_stale_backups``: producers and stored schedules enqueue it by this string.

The code lives in :mod:`jobs.backup.staleness`; this module only keeps the path resolving.
"""

from jobs.backup.staleness import check_stale_backups

__all__ = ["check_stale_backups"]
