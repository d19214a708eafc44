"""One contract, two backends: a local directory and S3 (moto over HTTP)."""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from railyard.core.errors import NotFoundError, ObjectExistsError, PermanentError, StorageError
from railyard.core.storage import MIN_PART_SIZE, ObjectStore
from railyard.core.storage.local import LocalStore
from railyard.core.storage.s3 import S3Store


@pytest.fixture(params=["local", "s3"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[ObjectStore]:
    if request.param == "local":
        yield LocalStore(tmp_path / "store")
    else:
        bucket = request.getfixturevalue("bucket")
        yield S3Store(bucket, addressing_style="path")


def chunks(total: int, size: int = 1 << 20) -> Iterator[bytes]:
    """Deterministic, incompressible-looking data in odd-sized chunks."""
    produced, counter = 0, 0
    while produced < total:
        block = hashlib.sha256(counter.to_bytes(8, "big")).digest() * (size // 32 + 1)
        block = block[: min(size - 7, total - produced)]
        produced += len(block)
        counter += 1
        yield block


def test_small_object_round_trip(store: ObjectStore) -> None:
    """A write smaller than one part is stored whole and read back byte for byte."""
    with store.open_upload("a/b/small.bin") as upload:
        upload.write(b"hello ")
        upload.write(b"world")
        upload.complete()
    assert b"".join(store.iter_get("a/b/small.bin")) == b"hello world"
    info = store.head("a/b/small.bin")
    assert info is not None and info.size == 11


def test_multipart_stream_round_trip(store: ObjectStore) -> None:
    """Several parts plus a short final part arrive intact and in order."""
    total = 2 * MIN_PART_SIZE + 12345
    expected = hashlib.sha256()
    with store.open_upload("big/object.bin", part_size=MIN_PART_SIZE, concurrency=2) as upload:
        for chunk in chunks(total):
            expected.update(chunk)
            upload.write(chunk)
        upload.complete()
    actual = hashlib.sha256()
    for chunk in store.iter_get("big/object.bin"):
        actual.update(chunk)
    assert expected.hexdigest() == actual.hexdigest()
    assert total == store.head("big/object.bin").size  # type: ignore[union-attr]
    assert list(store.list_incomplete_uploads("big/")) == []


def test_abandoned_upload_leaves_nothing(store: ObjectStore) -> None:
    """An exception inside the upload block aborts it: no object, no incomplete upload."""
    with pytest.raises(RuntimeError), store.open_upload("x/partial.bin", part_size=MIN_PART_SIZE) as upload:
        for chunk in chunks(MIN_PART_SIZE + 10):
            upload.write(chunk)
        raise RuntimeError("pg_dump died")
    assert store.head("x/partial.bin") is None
    assert list(store.list("x/")) == []
    assert list(store.list_incomplete_uploads("x/")) == []


def test_list_by_prefix_in_key_order(store: ObjectStore) -> None:
    for key in ("p/2.txt", "p/1.txt", "p/sub/3.txt", "q/4.txt"):
        store.put_bytes(key, key.encode())
    assert [o.key for o in store.list("p/")] == ["p/1.txt", "p/2.txt", "p/sub/3.txt"]
    assert [o.key for o in store.list("q")] == ["q/4.txt"]


def test_delete_is_idempotent(store: ObjectStore) -> None:
    store.put_bytes("d/x", b"1")
    store.delete("d/x")
    store.delete("d/x")
    assert store.head("d/x") is None


def test_missing_key_is_not_found(store: ObjectStore) -> None:
    with pytest.raises(NotFoundError, match="missing/key"):
        b"".join(store.iter_get("missing/key"))
    assert store.head("missing/key") is None


def test_put_if_absent_refuses_overwrite(store: ObjectStore) -> None:
    store.put_bytes("m/marker.json", b"{}", if_absent=True)
    with pytest.raises(ObjectExistsError, match="nothing was overwritten"):
        store.put_bytes("m/marker.json", b"{changed}", if_absent=True)
    assert store.get_bytes("m/marker.json") == b"{}"


KILLED_WRITER = """
import os, sys
from railyard.core.storage import MIN_PART_SIZE
from railyard.core.storage.local import LocalStore
from railyard.core.storage.s3 import S3Store
kind, where = sys.argv[1], sys.argv[2]
store = LocalStore(where) if kind == "local" else S3Store(where, addressing_style="path")
upload = store.open_upload("s/left.bin", part_size=MIN_PART_SIZE, concurrency=1)
upload.write(os.urandom(MIN_PART_SIZE + 1))
upload.write(os.urandom(MIN_PART_SIZE))  # blocks until the first part is sent
os.kill(os.getpid(), 9)
"""


def test_stale_incomplete_uploads_are_aborted(store: ObjectStore) -> None:
    """An upload left by a killed process is listed, and aborted once older than the cut-off."""
    where = str(store.root) if isinstance(store, LocalStore) else store.bucket  # type: ignore[attr-defined]
    kind = "local" if isinstance(store, LocalStore) else "s3"
    child = subprocess.run([sys.executable, "-c", KILLED_WRITER, kind, where], check=False)
    assert child.returncode == -9
    assert [u.key for u in store.list_incomplete_uploads("s/")] == ["s/left.bin"]
    now = datetime.now(UTC)
    if kind == "local":  # moto reports every upload as initiated in 2010, so only local is "fresh"
        assert store.abort_stale_uploads("s/", timedelta(hours=24), now) == []
    aborted = store.abort_stale_uploads("s/", timedelta(hours=24), now + timedelta(days=2))
    assert [u.key for u in aborted] == ["s/left.bin"]
    assert list(store.list_incomplete_uploads("s/")) == []
    assert store.head("s/left.bin") is None


def test_check_reports_reachable(store: ObjectStore) -> None:
    assert store.check()


def test_s3_missing_bucket_is_a_clear_permanent_error(s3_env: dict[str, str]) -> None:
    store = S3Store("no-such-bucket-railyard", addressing_style="path")
    with pytest.raises(PermanentError, match="bucket 'no-such-bucket-railyard' does not exist"):
        store.check()


def test_s3_unreachable_endpoint_is_retryable(monkeypatch: pytest.MonkeyPatch, s3_env: dict[str, str]) -> None:
    from tests.conftest import free_port

    monkeypatch.setenv("AWS_ENDPOINT_URL_S3", f"http://127.0.0.1:{free_port()}")
    monkeypatch.setenv("AWS_MAX_ATTEMPTS", "1")
    store = S3Store("any-bucket", addressing_style="path")
    with pytest.raises(StorageError, match=r"127\.0\.0\.1"):
        store.check()
    assert s3_env["AWS_SECRET_ACCESS_KEY"] not in os.environ.get("AWS_ENDPOINT_URL_S3", "")


def test_s3_server_side_encryption_and_storage_class(bucket: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("S3_SSE", "AES256")
    monkeypatch.setenv("S3_STORAGE_CLASS", "STANDARD_IA")
    store = S3Store(bucket, addressing_style="path")
    store.put_bytes("small", b"x")
    with store.open_upload("big", part_size=MIN_PART_SIZE) as upload:
        for chunk in chunks(MIN_PART_SIZE + 5):
            upload.write(chunk)
        upload.complete()
    for key in ("small", "big"):
        head = store.client.head_object(Bucket=bucket, Key=key)
        assert ("AES256", "STANDARD_IA") == (head["ServerSideEncryption"], head["StorageClass"])


def test_s3_put_options_are_validated() -> None:
    from railyard.core.errors import ConfigError
    from railyard.core.storage.s3 import put_options

    with pytest.raises(ConfigError) as info:
        put_options({"S3_SSE": "rot13", "S3_SSE_KMS_KEY_ID": "k", "S3_STORAGE_CLASS": "cheap please"})
    assert 3 == len(info.value.problems)
    assert {"ServerSideEncryption": "aws:kms", "SSEKMSKeyId": "k"} == put_options(
        {"S3_SSE": "aws:kms", "S3_SSE_KMS_KEY_ID": "k"}
    )


def test_iter_get_from_offset(store: ObjectStore) -> None:
    """Reading from an offset returns the object's tail; at or past the end, nothing."""
    data = bytes(range(256)) * 40
    store.put_bytes("ranged/object.bin", data)
    assert b"".join(store.iter_get("ranged/object.bin", start=1000)) == data[1000:]
    assert b"".join(store.iter_get("ranged/object.bin", chunk_size=7, start=len(data) - 3)) == data[-3:]
    assert b"".join(store.iter_get("ranged/object.bin", start=len(data))) == b""
    assert b"".join(store.iter_get("ranged/object.bin", start=len(data) + 10)) == b""
    with pytest.raises(NotFoundError):
        b"".join(store.iter_get("ranged/missing.bin", start=10))
