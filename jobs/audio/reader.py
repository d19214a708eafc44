"""A read-only, seekable file over one stored object, for FFmpeg's demuxers.

Reads stream from the storage layer; a seek within a short distance ahead reads and
drops the gap, a longer or backward seek starts a new ranged read. So an MP4 whose
index sits at the end costs one extra request, not a download to disk. The sha256 of
the whole object is gathered along the way from the part read in order from the
start, and completed with one ranged read of whatever the demuxer skipped.
"""

from __future__ import annotations

import hashlib
import io
from collections.abc import Iterator

from railyard.core.errors import RetryableError
from railyard.core.storage import ObjectStore

CHUNK_SIZE = 256 * 1024
SKIP_BY_READING_MAX = 512 * 1024  # a gap this short is cheaper to read than a new request


class SourceChangedError(RetryableError):
    """The stored object changed while it was being read."""


class StorageReader(io.RawIOBase):
    def __init__(self, store: ObjectStore, key: str, size: int):
        self.store = store
        self.key = key
        self.size = size
        self.requests = 0
        self._pos = 0
        self._chunks: Iterator[bytes] | None = None
        self._buffer = b""
        self._offset = 0  # read position inside _buffer
        self._hash = hashlib.sha256()
        self._hashed = 0  # bytes [0, _hashed) are in _hash

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def tell(self) -> int:
        return self._pos

    def read(self, size: int = -1) -> bytes:
        if size is None or size < 0:
            return b"".join(iter(lambda: self.read(CHUNK_SIZE), b""))
        if self._pos >= self.size or size == 0:
            return b""
        if self._offset >= len(self._buffer):
            self._fill()
            if not self._buffer:
                raise SourceChangedError(
                    f"{self.key!r} ended at byte {self._pos} but was {self.size} bytes; it changed while being read"
                )
        data = self._buffer[self._offset : self._offset + size]
        self._offset += len(data)
        self._account(self._pos, data)
        self._pos += len(data)
        return data

    def readinto(self, buffer: bytearray | memoryview) -> int:  # type: ignore[override]
        data = self.read(len(buffer))
        buffer[: len(data)] = data
        return len(data)

    def seek(self, offset: int, whence: int = io.SEEK_SET) -> int:
        if whence == io.SEEK_CUR:
            offset += self._pos
        elif whence == io.SEEK_END:
            offset += self.size
        target = max(0, offset)
        ahead = target - self._pos
        if ahead == 0:
            return self._pos
        if 0 < ahead <= len(self._buffer) - self._offset + SKIP_BY_READING_MAX and self._chunks is not None:
            while self._pos < target and self._pos < self.size:
                self.read(min(target - self._pos, CHUNK_SIZE))
            self._pos = target
            return target
        self._close_stream()
        self._pos = target
        return target

    def close(self) -> None:
        self._close_stream()
        super().close()

    def sha256(self) -> str:
        """The object's sha256; reads whatever part was never read in order from the start."""
        if self._hashed < self.size:
            for chunk in self.store.iter_get(self.key, start=self._hashed):
                self._account(self._hashed, chunk)
            self.requests += 1
        if self._hashed != self.size:
            raise SourceChangedError(
                f"{self.key!r} is now {self._hashed} bytes but was {self.size}; it changed while being read"
            )
        return self._hash.hexdigest()

    def _fill(self) -> None:
        if self._chunks is None:
            self._chunks = self.store.iter_get(self.key, chunk_size=CHUNK_SIZE, start=self._pos)
            self.requests += 1
        self._buffer = next(self._chunks, b"")
        self._offset = 0

    def _account(self, start: int, data: bytes) -> None:
        end = start + len(data)
        if start <= self._hashed < end:
            self._hash.update(memoryview(data)[self._hashed - start :])
            self._hashed = end

    def _close_stream(self) -> None:
        if self._chunks is not None:
            close = getattr(self._chunks, "close", None)
            if close is not None:
                close()
        self._chunks = None
        self._buffer = b""
        self._offset = 0
