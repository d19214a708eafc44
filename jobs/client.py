"""The producer API at its public path, ``jobs.client``: what Python services import to enqueue jobs.

The code lives in :mod:`railyard.core.client`; this module only keeps the documented path.
"""

from railyard.core.client import enqueue, enqueue_audio, enqueue_backup, enqueue_ping, require_json_arguments

__all__ = ["enqueue", "enqueue_audio", "enqueue_backup", "enqueue_ping", "require_json_arguments"]
