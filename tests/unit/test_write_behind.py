"""The parallel restore's spool writes from a thread: every byte in order, and a disk error is not lost."""

from __future__ import annotations

import io
import threading

import pytest

from jobs.backup.parallel_restore import SPOOL_QUEUE_CHUNKS, WriteBehind


def test_every_chunk_arrives_in_order_once_closed() -> None:
    target = io.BytesIO()
    writer = WriteBehind(target)
    chunks = [bytes([i % 256]) * (1000 + i) for i in range(500)]
    for chunk in chunks:
        assert len(chunk) == writer.write(chunk)
    writer.close()
    assert b"".join(chunks) == target.getvalue()


class FullDisk(io.BytesIO):
    def __init__(self, fail_after: int):
        super().__init__()
        self.fail_after = fail_after

    def write(self, data: bytes, /) -> int:  # type: ignore[override]
        if self.tell() + len(data) > self.fail_after:
            raise OSError(28, "No space left on device")
        return super().write(data)


def test_a_write_error_is_raised_in_the_callers_thread() -> None:
    writer = WriteBehind(FullDisk(fail_after=10_000))
    with pytest.raises(OSError, match="No space left on device"):
        for _ in range(1000):
            writer.write(b"x" * 1000)
        writer.close()


def test_close_without_check_leaves_the_callers_own_error_to_report() -> None:
    writer = WriteBehind(FullDisk(fail_after=0))
    writer.write(b"x")
    writer.close(check=False)  # the spool failed for its own reason: no second error on top of it


def test_memory_is_bounded_while_the_disk_is_slow() -> None:
    """A stalled disk holds the producer after SPOOL_QUEUE_CHUNKS chunks instead of buffering the backup."""
    release = threading.Event()

    class Stalled(io.BytesIO):
        def write(self, data: bytes, /) -> int:  # type: ignore[override]
            release.wait(10)
            return super().write(data)

    writer = WriteBehind(Stalled())
    accepted = 0

    def produce() -> None:
        nonlocal accepted
        for _ in range(SPOOL_QUEUE_CHUNKS + 10):
            writer.write(b"chunk")
            accepted += 1

    producer = threading.Thread(target=produce)
    producer.start()
    producer.join(0.5)
    assert producer.is_alive() and accepted <= SPOOL_QUEUE_CHUNKS + 1
    release.set()
    producer.join(10)
    writer.close()
    assert SPOOL_QUEUE_CHUNKS + 10 == accepted
