"""Property test: arbitrary JSON in a manifest never crashes list, prune, status, restore or verify,
and never changes what prune deletes among the valid backups."""

from __future__ import annotations

import json
import tempfile
from dataclasses import asdict
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from click.testing import CliRunner
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from jobs.backup.catalog import choose_latest, find_backup, read_catalog
from jobs.backup.staleness import newest_backups
from jobs.retention.policy import RetentionPolicy
from jobs.retention.prune import prune
from railyard.cli import cli
from railyard.core.errors import RailyardError
from railyard.core.storage import StorageLocation
from railyard.core.storage.local import LocalStore
from tests.unit.test_manifest_validation import ENV, manifest_for, put

NOW = datetime.now(UTC).replace(microsecond=0)
POLICY = RetentionPolicy(last=2, hourly=0, daily=2, weekly=0, monthly=0, yearly=0)
JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=True) | st.text(max_size=30),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=12), inner, max_size=4),
    max_leaves=12,
)
FIELDS = list(asdict(manifest_for(StorageLocation.parse("/s"), "app", NOW)))


def near_valid(value: Any, field: str, drop: bool) -> Any:
    """A real manifest with one field replaced by ``value`` (or removed)."""
    return ("mutate", field, value, drop)


GARBAGE = st.one_of(
    JSON.map(lambda v: ("whole", v)),
    st.builds(near_valid, JSON, st.sampled_from(FIELDS), st.booleans()),
)


def build(root: Path, garbage: tuple[Any, ...] | None) -> tuple[LocalStore, StorageLocation, str]:
    store, location = LocalStore(root), StorageLocation.parse(str(root))
    for n in range(6):
        put(store, manifest_for(location, "app", NOW - timedelta(days=n, hours=1)))
    victim = manifest_for(location, "app", NOW - timedelta(days=1, hours=3))
    if garbage is not None:
        if garbage[0] == "whole":
            body = json.dumps(garbage[1])
        else:
            _, field, value, drop = garbage
            raw = asdict(victim)
            if drop:
                raw.pop(field)
            else:
                raw[field] = value
            body = json.dumps(raw)
        put(store, victim, body=body.encode())
    return store, location, victim.id


def planned_deletions(store: LocalStore, location: StorageLocation, ignore: str) -> set[str]:
    report = prune(store, location, environment=ENV, policy=POLICY, now=NOW, dry_run=True)
    return {d.backup.id for d in report.deleted if d.backup.id != ignore}


@given(GARBAGE)
@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
def test_garbage_in_a_manifest_is_reported_never_a_crash(garbage: tuple[Any, ...]) -> None:
    with tempfile.TemporaryDirectory() as clean_dir, tempfile.TemporaryDirectory() as dirty_dir:
        clean_store, clean_location, victim_id = build(Path(clean_dir), None)
        store, location, _ = build(Path(dirty_dir), garbage)

        catalog = read_catalog(store, location, environment=ENV)  # list and status read this
        usable = victim_id in {m.id for m in catalog.backups}
        if not usable:
            assert [victim_id] == [p.id for p in catalog.problems]
            assert planned_deletions(clean_store, clean_location, victim_id) == planned_deletions(
                store, location, victim_id
            )
            assert victim_id != choose_latest(catalog, requested=None, default_series="app", now=NOW).id
        newest_backups(store, location, ENV, ["app"], NOW)  # status
        for backup_id in (victim_id, "latest"):  # restore and verify look the backup up first
            try:
                find_backup(store, location, backup_id, environment=ENV, default_series="app", now=NOW)
            except RailyardError:
                assert not usable and backup_id == victim_id
        result = CliRunner().invoke(
            cli,
            ["backups", "list"],
            env={
                "BACKUP_STORAGE_URL": dirty_dir,
                "ENVIRONMENT": ENV,
                "DATABASE_URL": "postgresql://u@db/app",
                "LOG_FORMAT": "console",
            },
        )
        assert 0 == result.exit_code, result.output
