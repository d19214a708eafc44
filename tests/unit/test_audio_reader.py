"""StorageReader: a seekable file over a stored object, with the object's sha256 on the side."""

from __future__ import annotations

import hashlib
import io
from collections.abc import Iterator
from pathlib import Path

import pytest

from jobs.audio.reader import SKIP_BY_READING_MAX, SourceChangedError, StorageReader
from railyard.core.storage.base import READ_CHUNK_SIZE
from railyard.core.storage.local import LocalStore

DATA = bytes(i * 7 % 251 for i in range(3 * 1024 * 1024 + 123))


class CountingStore(LocalStore):
    """A local store that remembers where each read started."""

    def __init__(self, root: Path):
        super().__init__(root)
        self.starts: list[int] = []

    def iter_get(self, key: str, chunk_size: int = READ_CHUNK_SIZE, *, start: int = 0) -> Iterator[bytes]:
        self.starts.append(start)
        return super().iter_get(key, chunk_size, start=start)


@pytest.fixture
def store(tmp_path: Path) -> CountingStore:
    store = CountingStore(tmp_path)
    store.put_bytes("src/file.bin", DATA)
    store.starts.clear()
    return store


def test_sequential_read_hashes_in_one_request(store: CountingStore) -> None:
    with StorageReader(store, "src/file.bin", len(DATA)) as reader:
        read = b"".join(iter(lambda: reader.read(32768), b""))
        assert read == DATA
        assert hashlib.sha256(DATA).hexdigest() == reader.sha256()
    assert store.starts == [0]


def test_seeks_behave_like_a_file(store: CountingStore) -> None:
    """Every seek mode lands where a real file would, and reads what a real file reads."""
    expected = io.BytesIO(DATA)
    with StorageReader(store, "src/file.bin", len(DATA)) as reader:
        for offset, whence, size in [
            (0, io.SEEK_SET, 100),
            (50, io.SEEK_CUR, 1000),  # short skip ahead
            (-4000, io.SEEK_END, 10_000),  # to the end and past it
            (10, io.SEEK_SET, 20),  # back to the start
            (2 * 1024 * 1024, io.SEEK_SET, 5),  # a long jump ahead
            (len(DATA) + 5, io.SEEK_SET, 5),  # past the end
        ]:
            assert expected.seek(offset, whence) == reader.seek(offset, whence)
            assert expected.read(size) == reader.read(size)
            assert expected.tell() == reader.tell()


def test_short_skip_reads_through_long_jump_starts_a_ranged_read(store: CountingStore) -> None:
    with StorageReader(store, "src/file.bin", len(DATA)) as reader:
        reader.read(10)
        reader.seek(SKIP_BY_READING_MAX // 2, io.SEEK_CUR)
        reader.read(10)
        assert store.starts == [0]
        reader.seek(len(DATA) - 100)
        assert DATA[-100:] == reader.read(1000)
        reader.seek(20)
        assert DATA[20:30] == reader.read(10)
    assert [0, len(DATA) - 100, 20] == store.starts


def test_hash_is_completed_for_parts_the_reader_skipped(store: CountingStore) -> None:
    """Like an MP4 demuxer: head, jump to the index at the end, back to the data, stop before the index."""
    with StorageReader(store, "src/file.bin", len(DATA)) as reader:
        reader.read(1000)
        reader.seek(len(DATA) - 5000)
        reader.read(5000)
        reader.seek(1000)
        while reader.tell() < len(DATA) - 5000:
            reader.read(min(65536, len(DATA) - 5000 - reader.tell()))
        assert hashlib.sha256(DATA).hexdigest() == reader.sha256()
    assert len(DATA) - 5000 == store.starts[-1]


def test_an_object_that_shrank_is_reported(store: CountingStore) -> None:
    reader = StorageReader(store, "src/file.bin", len(DATA) + 10)
    with pytest.raises(SourceChangedError, match="changed while being read"):
        reader.sha256()
    reader.seek(len(DATA) - 5)
    with pytest.raises(SourceChangedError, match="changed while being read"):
        reader.read(100) and reader.read(100)
