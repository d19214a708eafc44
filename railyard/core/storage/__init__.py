"""Object storage: one interface, an S3 backend and a local-directory backend.

Every job reads and writes backups and media only through :class:`ObjectStore`.
"""

from railyard.core.storage.base import (
    MAX_PARTS,
    MIN_PART_SIZE,
    IncompleteUpload,
    ObjectInfo,
    ObjectStore,
    Upload,
    choose_part_size,
)
from railyard.core.storage.location import StorageLocation, open_backup_store, open_store
from railyard.core.storage.lock import ObjectLock, object_lock_from_env

__all__ = [
    "MAX_PARTS",
    "MIN_PART_SIZE",
    "IncompleteUpload",
    "ObjectInfo",
    "ObjectLock",
    "ObjectStore",
    "StorageLocation",
    "Upload",
    "choose_part_size",
    "object_lock_from_env",
    "open_backup_store",
    "open_store",
]
