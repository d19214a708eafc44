"""Railyard: background jobs and schedules for Redis + PostgreSQL + S3 stacks."""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("railyard")
except PackageNotFoundError:  # running from a source tree that was never installed
    __version__ = "0.0.0+unknown"

__all__ = ["__version__"]
