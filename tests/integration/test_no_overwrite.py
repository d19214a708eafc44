"""Nothing written create-only replaces an object: a local directory, moto and rclone's S3 server."""

from __future__ import annotations

import threading
import uuid
from pathlib import Path

import pytest

from railyard.core.errors import ObjectExistsError
from railyard.core.storage import MIN_PART_SIZE, ObjectStore
from railyard.core.storage.local import LocalStore
from railyard.core.storage.s3 import S3Store, make_client
from tests.conftest import AWS_TEST_ENV, RCLONE_TEST_ENV


def open_kind(
    kind: str, request: pytest.FixtureRequest, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> ObjectStore:
    if kind == "local":
        return LocalStore(tmp_path / "store")
    endpoint = request.getfixturevalue("s3_endpoint" if kind == "moto" else "rclone_endpoint")
    credentials = AWS_TEST_ENV if kind == "moto" else RCLONE_TEST_ENV
    for key, value in {**credentials, "AWS_ENDPOINT_URL_S3": endpoint, "S3_ADDRESSING_STYLE": "path"}.items():
        monkeypatch.setenv(key, value)
    bucket = f"ry-test-{uuid.uuid4().hex[:12]}"
    make_client("path").create_bucket(Bucket=bucket)
    return S3Store(bucket, addressing_style="path", prefix="pg")


@pytest.fixture(params=["local", "moto", "rclone"])
def kind_store(
    request: pytest.FixtureRequest, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> tuple[str, ObjectStore]:
    return request.param, open_kind(request.param, request, tmp_path, monkeypatch)


@pytest.fixture(params=["local", "moto"])
def store(request: pytest.FixtureRequest, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> ObjectStore:
    """The stores that enforce create-only writes themselves (rclone does not: see test_series)."""
    return open_kind(request.param, request, tmp_path, monkeypatch)


def test_which_stores_enforce_create_only_writes(kind_store: tuple[str, ObjectStore]) -> None:
    """moto and a local directory refuse; rclone accepts If-None-Match and overwrites, which the probe detects."""
    kind, store = kind_store
    assert {"local": True, "moto": True, "rclone": False}[kind] == store.refuses_overwrite()
    assert [] == [o.key for o in store.list("") if ".railyard-write-probe-" in o.key]


def test_put_if_absent_never_replaces(kind_store: tuple[str, ObjectStore]) -> None:
    _, store = kind_store
    store.put_bytes("pg/m/manifest.json", b"first", if_absent=True)
    with pytest.raises(ObjectExistsError, match="nothing was overwritten"):
        store.put_bytes("pg/m/manifest.json", b"second", if_absent=True)
    assert b"first" == store.get_bytes("pg/m/manifest.json")


def test_a_small_upload_that_collides_can_take_another_key(store: ObjectStore) -> None:
    store.put_bytes("pg/d/a.dump.zst", b"the first backup")
    with store.open_upload("pg/d/a.dump.zst", if_absent=True) as upload:
        upload.write(b"the second backup")
        with pytest.raises(ObjectExistsError):
            upload.complete()
        assert upload.retarget("pg/d/b.dump.zst")
        upload.complete()
    assert (b"the first backup", b"the second backup") == (
        store.get_bytes("pg/d/a.dump.zst"),
        store.get_bytes("pg/d/b.dump.zst"),
    )


def test_a_multipart_upload_that_collides_is_aborted_and_replaces_nothing(store: ObjectStore) -> None:
    store.put_bytes("pg/big/a.bin", b"the first object")
    with store.open_upload("pg/big/a.bin", part_size=MIN_PART_SIZE, concurrency=2, if_absent=True) as upload:
        upload.write(b"x" * (MIN_PART_SIZE + 10))
        with pytest.raises(ObjectExistsError):
            upload.complete()
        assert isinstance(store, LocalStore) or not upload.retarget("pg/big/b.bin")
    assert b"the first object" == store.get_bytes("pg/big/a.bin")
    assert [] == list(store.list_incomplete_uploads("pg/big/"))


def test_concurrent_create_only_writers_one_wins(store: ObjectStore) -> None:
    outcomes: list[str] = []
    barrier = threading.Barrier(8)

    def write(n: int) -> None:
        barrier.wait()
        try:
            store.put_bytes("pg/race/key", f"writer {n}".encode(), if_absent=True)
            outcomes.append(f"writer {n}")
        except ObjectExistsError:
            outcomes.append("refused")

    threads = [threading.Thread(target=write, args=(n,)) for n in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    winners = [o for o in outcomes if o != "refused"]
    assert 1 == len(winners)
    assert winners[0].encode() == store.get_bytes("pg/race/key")
