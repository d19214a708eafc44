"""Railyard's jobs. Other services enqueue them by string path, e.g. ``jobs.backup.run_backup``."""
