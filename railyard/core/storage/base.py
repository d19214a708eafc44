"""The storage contract shared by every backend."""

from __future__ import annotations

import abc
import builtins
import math
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime, timedelta
from types import TracebackType

MiB = 1024 * 1024
MIN_PART_SIZE = 8 * MiB  # S3's floor is 5 MiB; 8 MiB matches boto3's default chunk size
MAX_PART_SIZE = 5 * 1024 * MiB
MAX_PARTS = 10_000
READ_CHUNK_SIZE = 1 * MiB


@dataclass(frozen=True)
class ObjectInfo:
    key: str
    size: int
    modified: datetime


@dataclass(frozen=True)
class IncompleteUpload:
    """A multipart upload (S3) or partial file (local) that was never completed."""

    key: str
    upload_id: str
    initiated: datetime


def choose_part_size(expected_size: int, *, headroom: float = 2.0) -> int:
    """Pick one part size for a streamed object of roughly ``expected_size`` bytes.

    All non-final parts have this size (Cloudflare R2 requires it), so it must be large
    enough that ``headroom`` times the expected size fits in S3's 10,000 parts; the
    result is a whole number of MiB between 8 MiB and 5 GiB. Memory use of an upload
    is this size times (concurrency + 1), so it stays as small as the object allows.
    """
    needed = math.ceil(max(expected_size, 0) * headroom / MAX_PARTS)
    size = max(MIN_PART_SIZE, math.ceil(needed / MiB) * MiB)
    return min(size, MAX_PART_SIZE)


class Upload(abc.ABC):
    """A streaming write of one object. Nothing is visible until :meth:`complete`.

    Use as a context manager: leaving the block without calling ``complete`` (an
    exception, a kill signal turned into an exception) aborts the upload.
    """

    key: str
    bytes_written: int = 0
    _done: bool = False

    @abc.abstractmethod
    def write(self, data: bytes) -> None: ...

    @abc.abstractmethod
    def _complete(self) -> None: ...

    @abc.abstractmethod
    def _abort(self) -> None: ...

    def complete(self) -> None:
        """Make the object visible under its key, atomically.

        An upload opened with ``if_absent`` raises ObjectExistsError when an object is
        already there, and replaces nothing; :meth:`retarget` may then give it another key.
        """
        self._complete()
        self._done = True

    def retarget(self, key: str) -> bool:
        """Complete under ``key`` instead, after a collision; False when the bytes can no longer move."""
        return False

    def abort(self) -> None:
        """Discard everything written so far; safe to call more than once."""
        if not self._done:
            self._done = True
            self._abort()

    def __enter__(self) -> Upload:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        if not self._done:
            self.abort()


class ObjectStore(abc.ABC):
    """A flat key space (an S3 bucket or a local directory)."""

    @abc.abstractmethod
    def location(self, key: str = "") -> str:
        """Where ``key`` lives, as a URL a person can use (no secrets)."""

    @abc.abstractmethod
    def check(self) -> str:
        """Verify the store is reachable and usable; return a short description."""

    @abc.abstractmethod
    def open_upload(
        self, key: str, *, part_size: int = MIN_PART_SIZE, concurrency: int = 4, if_absent: bool = False
    ) -> Upload:
        """Start a streaming upload with bounded memory (part_size x (concurrency + 1)).

        With ``if_absent`` completing it never replaces an object (see :meth:`refuses_overwrite`).
        """

    def refuses_overwrite(self) -> bool:
        """Whether ``if_absent`` writes are enforced by the store itself.

        When they are not (an S3-compatible server that ignores or rejects conditional
        writes), writers must use keys no other writer can choose.
        """
        return True

    @abc.abstractmethod
    def iter_get(self, key: str, chunk_size: int = READ_CHUNK_SIZE, *, start: int = 0) -> Iterator[bytes]:
        """Stream an object's bytes from offset ``start``. Raises NotFoundError if the key does not exist.

        A ``start`` at or past the end yields nothing.
        """

    @abc.abstractmethod
    def put_bytes(self, key: str, data: bytes, *, if_absent: bool = False) -> None:
        """Write a small object in one request (manifests, markers).

        With ``if_absent`` the write fails with ObjectExistsError when the key exists.
        """

    @abc.abstractmethod
    def head(self, key: str) -> ObjectInfo | None:
        """Size and modification time of ``key``, or None when it does not exist."""

    @abc.abstractmethod
    def list(self, prefix: str = "") -> Iterator[ObjectInfo]:
        """Every complete object whose key starts with ``prefix``, in key order."""

    @abc.abstractmethod
    def delete(self, key: str) -> None:
        """Remove ``key``; removing a missing key is not an error."""

    @abc.abstractmethod
    def list_incomplete_uploads(self, prefix: str = "") -> Iterator[IncompleteUpload]:
        """Uploads under ``prefix`` that were started and never completed or aborted."""

    @abc.abstractmethod
    def abort_incomplete_upload(self, upload: IncompleteUpload) -> None:
        """Discard one incomplete upload."""

    def locked_until(self, key: str) -> datetime | None:
        """Until when object lock forbids deleting ``key`` (any version), or None when it does not."""
        return None

    def get_bytes(self, key: str) -> bytes:
        """Read a small object whole."""
        return b"".join(self.iter_get(key))

    def abort_stale_uploads(self, prefix: str, older_than: timedelta, now: datetime) -> builtins.list[IncompleteUpload]:
        """Abort incomplete uploads under ``prefix`` started before ``now - older_than``."""
        stale = [u for u in self.list_incomplete_uploads(prefix) if u.initiated < now - older_than]
        for upload in stale:
            self.abort_incomplete_upload(upload)
        return stale
