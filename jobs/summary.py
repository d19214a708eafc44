"""The public job path ``jobs.summary.send_weekly_summary``: producers and stored schedules enqueue it by this string.

The code lives in :mod:`jobs.backup.summary`; this module only keeps the path resolving.
"""

from jobs.backup.summary import send_weekly_summary

__all__ = ["send_weekly_summary"]
