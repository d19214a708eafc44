"""The public job path ``jobs.verify.verify_backup``: producers and stored schedules enqueue it by this string.

The code lives in :mod:`jobs.backup.verify`; this module only keeps the path resolving.
"""

from jobs.backup.verify import verify_backup

__all__ = ["verify_backup"]
