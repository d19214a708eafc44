"""age encryption of backup streams (X25519 recipients), with bounded memory.

The worker holds only public keys (``BACKUP_ENCRYPTION_RECIPIENTS``), so a compromised
worker cannot read old backups. Restore and verify read the identity from
``BACKUP_ENCRYPTION_IDENTITY`` or ``BACKUP_ENCRYPTION_IDENTITY_FILE``. The output is the
standard age format: ``age -d -i key.txt`` decrypts it.

pyrage's streaming calls take file objects and run to completion, so each runs in a
thread connected to the caller's chunk stream by a small bounded queue.
"""

from __future__ import annotations

import contextlib
import io
import os
import queue
import threading
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path

import pyrage
from pyrage import x25519

from railyard.core.errors import ConfigError, PermanentError

QUEUE_CHUNKS = 8
_END = b""


@dataclass(frozen=True)
class EncryptionConfig:
    recipients: tuple[str, ...] = ()
    identity: str | None = field(default=None, repr=False)

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> EncryptionConfig:
        env = os.environ if environ is None else environ
        problems: list[str] = []
        recipients = tuple(r for r in env.get("BACKUP_ENCRYPTION_RECIPIENTS", "").replace(",", " ").split() if r)
        for recipient in recipients:
            try:
                x25519.Recipient.from_str(recipient)
            except Exception:  # pyrage raises its own RecipientError or ValueError by version
                shown = recipient if recipient.startswith("age1") else recipient[:6] + "…"
                problems.append(
                    f"BACKUP_ENCRYPTION_RECIPIENTS has {shown!r}, which is not an age X25519 public key (age1...); "
                    "create one with `age-keygen` and list its public key"
                )
        identity = env.get("BACKUP_ENCRYPTION_IDENTITY", "").strip() or None
        identity_file = env.get("BACKUP_ENCRYPTION_IDENTITY_FILE", "").strip()
        if identity_file and not identity:
            try:
                identity = _identity_from_file(Path(identity_file))
            except OSError as exc:
                problems.append(f"BACKUP_ENCRYPTION_IDENTITY_FILE={identity_file!r} cannot be read: {exc.strerror}")
            except ValueError as exc:
                problems.append(f"BACKUP_ENCRYPTION_IDENTITY_FILE={identity_file!r}: {exc}")
        if identity:
            try:
                x25519.Identity.from_str(identity)
            except Exception:
                problems.append(
                    "BACKUP_ENCRYPTION_IDENTITY is not an age X25519 identity (AGE-SECRET-KEY-1...); "
                    "use the secret key line from `age-keygen`"
                )
        if problems:
            raise ConfigError(problems)
        return cls(recipients=recipients, identity=identity)

    @property
    def enabled(self) -> bool:
        return bool(self.recipients)


def _identity_from_file(path: Path) -> str:
    for line in path.read_text().splitlines():
        if line.strip().startswith("AGE-SECRET-KEY-"):
            return line.strip()
    raise ValueError("no AGE-SECRET-KEY-1... line in the file")


class _ChunkReader(io.RawIOBase):
    """A readable file over an iterator of byte chunks; :meth:`stop` makes further reads fail."""

    def __init__(self, chunks: Iterable[bytes]):
        self._chunks = iter(chunks)
        self._pending = b""
        self._stopped = threading.Event()

    def readable(self) -> bool:
        return True

    def stop(self) -> None:
        self._stopped.set()

    def readinto(self, buffer: memoryview) -> int:  # type: ignore[override]
        if self._stopped.is_set():
            raise OSError("stream abandoned by its reader")
        while not self._pending:
            chunk = next(self._chunks, None)
            if chunk is None:
                return 0
            self._pending = chunk
        size = min(len(buffer), len(self._pending))
        buffer[:size] = self._pending[:size]
        self._pending = self._pending[size:]
        return size


class _CallbackWriter(io.RawIOBase):
    def __init__(self, sink: Callable[[bytes], None]):
        self._sink = sink

    def writable(self) -> bool:
        return True

    def write(self, data: bytes) -> int:  # type: ignore[override]
        self._sink(bytes(data))
        return len(data)


class Encryptor:
    """Push plaintext chunks in with :meth:`write`; ciphertext goes to ``sink`` from a worker thread."""

    def __init__(self, recipients: tuple[str, ...], sink: Callable[[bytes], None]):
        self._queue: queue.Queue[bytes] = queue.Queue(maxsize=QUEUE_CHUNKS)
        self._error: BaseException | None = None
        keys = [x25519.Recipient.from_str(r) for r in recipients]
        self._thread = threading.Thread(target=self._run, args=(keys, sink), daemon=True)
        self._thread.start()

    def _run(self, keys: list[x25519.Recipient], sink: Callable[[bytes], None]) -> None:
        try:
            pyrage.encrypt_io(_ChunkReader(iter(self._queue.get, _END)), _CallbackWriter(sink), keys)
        except BaseException as exc:
            self._error = exc
            while self._queue.get() != _END:  # unblock the producer until it says it is done
                pass

    def write(self, data: bytes) -> None:
        if data:
            self._check()
            self._queue.put(data)

    def close(self) -> None:
        """Finish the age stream (writes its final chunk); raises the worker's error, if any."""
        self._queue.put(_END)
        self._thread.join()
        self._check()

    def abort(self) -> None:
        if self._thread.is_alive():
            self._queue.put(_END)
            self._thread.join()

    def _check(self) -> None:
        if self._error is not None:
            error = self._error
            raise error if not isinstance(error, pyrage.EncryptError) else PermanentError(str(error))


def decrypt_chunks(chunks: Iterable[bytes], identity: str, backup_id: str) -> Iterator[bytes]:
    """Decrypt an age stream given as chunks; yields plaintext chunks with bounded memory."""
    out: queue.Queue[bytes | BaseException] = queue.Queue(maxsize=QUEUE_CHUNKS)
    key = x25519.Identity.from_str(identity)
    reader = _ChunkReader(chunks)

    def run() -> None:
        try:
            pyrage.decrypt_io(reader, _CallbackWriter(out.put), [key])
            out.put(_END)
        except BaseException as exc:
            out.put(exc)

    worker = threading.Thread(target=run, daemon=True)
    worker.start()
    try:
        while True:
            item = out.get()
            if isinstance(item, pyrage.DecryptError):
                raise PermanentError(
                    f"backup {backup_id} cannot be decrypted with the configured identity ({item}); "
                    "set BACKUP_ENCRYPTION_IDENTITY to the key whose public half encrypted it"
                ) from item
            if isinstance(item, BaseException):
                raise item
            if item == _END:
                return
            yield item
    finally:
        reader.stop()
        while worker.is_alive():  # drain so the thread can finish if the consumer stopped early
            with contextlib.suppress(queue.Empty):
                out.get(timeout=0.1)
        worker.join()
