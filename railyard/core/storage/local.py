"""Local-directory backend: the embedded default, and the shape of every other backend."""

from __future__ import annotations

import errno
import os
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from stat import S_ISREG
from typing import BinaryIO

from railyard.core.errors import NotFoundError, ObjectExistsError, PermanentError, StorageError
from railyard.core.storage.base import (
    MIN_PART_SIZE,
    READ_CHUNK_SIZE,
    IncompleteUpload,
    ObjectInfo,
    ObjectStore,
    Upload,
)

PARTIAL_MARK = ".partial-"


class LocalUpload(Upload):
    """Writes to ``<key>.partial-<id>`` and moves it into place on completion.

    With ``if_absent`` the move is a hard link, which the kernel refuses atomically when
    the name exists (an exclusive create); otherwise a rename that replaces.
    """

    def __init__(self, store: LocalStore, key: str, if_absent: bool = False):
        self.key = key
        self._store = store
        self._if_absent = if_absent
        self._final = store.path(key)
        self._partial = self._final.with_name(f"{self._final.name}{PARTIAL_MARK}{uuid.uuid4().hex}")
        self._final.parent.mkdir(parents=True, exist_ok=True)
        self._file: BinaryIO = open(self._partial, "xb")  # noqa: SIM115 (closed in complete/abort)

    def write(self, data: bytes) -> None:
        try:
            self._file.write(data)
        except OSError as exc:
            raise _os_error(exc, self._final) from exc
        self.bytes_written += len(data)

    def _complete(self) -> None:
        try:
            if not self._file.closed:
                self._file.flush()
                os.fsync(self._file.fileno())
                self._file.close()
            if self._if_absent:
                os.link(self._partial, self._final)
                self._partial.unlink()
            else:
                os.replace(self._partial, self._final)
        except FileExistsError as exc:
            raise ObjectExistsError(
                f"object {self.key!r} already exists in {self._store.location()}; nothing was overwritten"
            ) from exc
        except OSError as exc:
            self.abort()
            raise _os_error(exc, self._final) from exc

    def retarget(self, key: str) -> bool:
        final = self._store.path(key)
        upload_id = self._partial.name.rpartition(PARTIAL_MARK)[2]
        partial = final.with_name(f"{final.name}{PARTIAL_MARK}{upload_id}")
        try:
            final.parent.mkdir(parents=True, exist_ok=True)
            os.rename(self._partial, partial)
        except OSError:
            return False
        self.key, self._final, self._partial = key, final, partial
        return True

    def _abort(self) -> None:
        self._file.close()
        self._partial.unlink(missing_ok=True)


class LocalStore(ObjectStore):
    """A directory. ``lock_requested``: S3_OBJECT_LOCK is set, which a directory cannot honour."""

    def __init__(self, root: str | os.PathLike[str], *, lock_requested: bool = False):
        self.root = Path(root).expanduser().resolve()
        self.lock_requested = lock_requested

    def path(self, key: str) -> Path:
        if not key or key.startswith("/") or ".." in Path(key).parts:
            raise PermanentError(f"invalid storage key {key!r}: keys are relative paths without '..'")
        return self.root / key

    def location(self, key: str = "") -> str:
        return str(self.root / key) if key else str(self.root)

    def check(self) -> str:
        if self.lock_requested:
            raise PermanentError(
                f"S3_OBJECT_LOCK is set but backups go to the local directory {self.root}, which cannot lock "
                "objects; set BACKUP_STORAGE_URL to an s3:// bucket with object lock enabled, or unset S3_OBJECT_LOCK"
            )
        try:
            self.root.mkdir(parents=True, exist_ok=True)
            probe = self.root / f".railyard-check{PARTIAL_MARK}{uuid.uuid4().hex}"
            probe.write_bytes(b"ok")
            probe.unlink()
        except OSError as exc:
            raise _os_error(exc, self.root) from exc
        return f"local directory {self.root} is writable"

    def open_upload(
        self, key: str, *, part_size: int = MIN_PART_SIZE, concurrency: int = 4, if_absent: bool = False
    ) -> Upload:
        try:
            return LocalUpload(self, key, if_absent)
        except OSError as exc:
            raise _os_error(exc, self.path(key)) from exc

    def iter_get(self, key: str, chunk_size: int = READ_CHUNK_SIZE, *, start: int = 0) -> Iterator[bytes]:
        path = self.path(key)
        try:
            handle = open(path, "rb")  # noqa: SIM115 (closed by the generator's with)
        except FileNotFoundError as exc:
            raise NotFoundError(f"no object {key!r} in {self.location()}") from exc
        with handle:
            if start:
                handle.seek(start)
            while chunk := handle.read(chunk_size):
                yield chunk

    def put_bytes(self, key: str, data: bytes, *, if_absent: bool = False) -> None:
        with self.open_upload(key, if_absent=if_absent) as upload:
            upload.write(data)
            upload.complete()

    def head(self, key: str) -> ObjectInfo | None:
        try:
            stat = self.path(key).stat()
        except (FileNotFoundError, NotADirectoryError):
            return None
        if not S_ISREG(stat.st_mode):  # a directory (a "prefix" in S3 terms) or a FIFO is not an object
            return None
        return ObjectInfo(key=key, size=stat.st_size, modified=datetime.fromtimestamp(stat.st_mtime, UTC))

    def list(self, prefix: str = "") -> Iterator[ObjectInfo]:
        for key, path in self._walk(prefix):
            if PARTIAL_MARK not in path.name:
                stat = path.stat()
                yield ObjectInfo(key=key, size=stat.st_size, modified=datetime.fromtimestamp(stat.st_mtime, UTC))

    def delete(self, key: str) -> None:
        self.path(key).unlink(missing_ok=True)

    def list_incomplete_uploads(self, prefix: str = "") -> Iterator[IncompleteUpload]:
        for key, path in self._walk(prefix):
            if PARTIAL_MARK in path.name:
                final_key, _, upload_id = key.rpartition(PARTIAL_MARK)
                initiated = datetime.fromtimestamp(path.stat().st_mtime, UTC)
                yield IncompleteUpload(key=final_key, upload_id=upload_id, initiated=initiated)

    def abort_incomplete_upload(self, upload: IncompleteUpload) -> None:
        partial = self.path(upload.key)
        partial.with_name(f"{partial.name}{PARTIAL_MARK}{upload.upload_id}").unlink(missing_ok=True)

    def _walk(self, prefix: str) -> Iterator[tuple[str, Path]]:
        if not self.root.is_dir():
            return
        found = []
        for dirpath, _dirnames, filenames in os.walk(self.root):
            for name in filenames:
                path = Path(dirpath) / name
                key = path.relative_to(self.root).as_posix()
                if key.startswith(prefix):
                    found.append((key, path))
        yield from sorted(found)


def _os_error(exc: OSError, path: Path) -> Exception:
    if exc.errno in (errno.ENOSPC, errno.EDQUOT):
        return StorageError(f"no space left on the device holding {path}; free space or use S3 storage")
    if exc.errno in (errno.EACCES, errno.EPERM, errno.EROFS):
        return PermanentError(f"cannot write to {path}: {exc.strerror}; fix permissions or BACKUP_STORAGE_URL")
    return StorageError(f"local storage error at {path}: {exc.strerror or exc}")
