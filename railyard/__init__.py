"""Railyard: background jobs and schedules for Redis + PostgreSQL + S3 stacks."""

from __future__ import annotations

__all__ = ["__version__"]


def __getattr__(name: str) -> str:
    # Read from the installed metadata on first use: `railyard --help` does not pay for importlib.metadata.
    if name != "__version__":
        raise AttributeError(f"module 'railyard' has no attribute {name!r}")
    from importlib.metadata import PackageNotFoundError, version

    try:
        found = version("railyard")
    except PackageNotFoundError:  # running from a source tree that was never installed
        found = "0.0.0+unknown"
    globals()["__version__"] = found
    return found
