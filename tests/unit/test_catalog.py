"""Key layout and manifests: what is a Railyard backup and what is not."""

from datetime import UTC, datetime

import pytest

from jobs.backup.catalog import Manifest, backup_key, parse_backup_key
from railyard.core.errors import PermanentError
from railyard.core.storage import StorageLocation

LOC = StorageLocation.parse("s3://bucket/backups/pg")
WHEN = datetime(2026, 11, 20, 3, 0, 7, 123456, tzinfo=UTC)


def test_layout_is_the_documented_one() -> None:
    key = backup_key(LOC, "production", "app", WHEN)
    assert "backups/pg/production/app/2026/11/20/app-20261120T030007Z.dump.zst" == key.key
    assert "app-20261120T030007Z" == key.id
    assert key.key + ".manifest.json" == key.manifest_key


def test_parse_round_trips_odd_names() -> None:
    key = backup_key(LOC, "prod env", "my/db", WHEN)
    parsed = parse_backup_key(LOC, key.key)
    assert parsed is not None
    assert ("prod env", "my/db", WHEN.replace(microsecond=0)) == (parsed.environment, parsed.database, parsed.taken_at)


@pytest.mark.parametrize(
    "key",
    [
        "other/pg/production/app/2026/11/20/app-20261120T030007Z.dump.zst",  # outside the prefix
        "backups/pg/production/app/2026/11/20/other-20261120T030007Z.dump.zst",  # name mismatch
        "backups/pg/production/app/2026/11/21/app-20261120T030007Z.dump.zst",  # date mismatch
        "backups/pg/production/app/2026/11/20/app-20261120T030007Z.sql.gz",  # not ours
        "backups/pg/production/app/app-20261120T030007Z.dump.zst",  # no date folders
        "backups/pg/important.txt",
    ],
)
def test_foreign_keys_are_not_backups(key: str) -> None:
    assert parse_backup_key(LOC, key) is None


@pytest.mark.parametrize("data", [b"not json", b"[1, 2]", b'{"id": "x"}'])
def test_corrupt_manifest_is_refused(data: bytes) -> None:
    with pytest.raises(PermanentError, match="corrupt"):
        Manifest.from_json(data, "k.manifest.json")
