"""The public job path ``jobs.migrate.run_migrations``: producers and stored schedules enqueue it by this string.

The code lives in :mod:`jobs.migrations`; this module only keeps the path resolving.
"""

from jobs.migrations import run_migrations

__all__ = ["run_migrations"]
