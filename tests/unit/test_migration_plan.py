"""The planner: pending, drifted, out-of-order, targets and down plans, from files and ledger alone."""

from __future__ import annotations

from pathlib import Path

import pytest

from jobs.migrations.files import Discovery, MigrationFile, scan
from jobs.migrations.plan import (
    APP,
    BUILTIN,
    AcceptSpec,
    AppliedMigration,
    Plan,
    backup_decision,
    plan_down,
    plan_up,
    retry_delays,
    status_exit_code,
)
from railyard.core.errors import PermanentError

DIR = Path("migrations")


def files(*specs: str) -> Discovery:
    """A discovery from names; ``+`` after a name gives it a down section, ``!`` makes its text differ."""
    contents = {}
    for spec in specs:
        name = spec.rstrip("+!")
        body = f"SELECT '{name}';" + (" SELECT 'edited';" if spec.endswith("!") else "")
        contents[name] = (body + ("\n-- migrate:down\nSELECT 'down';" if "+" in spec else "")).encode()
    return scan(DIR, contents)


def applied(discovery: Discovery, *versions: int, namespace: str = APP) -> list[AppliedMigration]:
    by_version = discovery.by_version()
    return [AppliedMigration(namespace, v, by_version[v].name, by_version[v].checksum) for v in versions]


def ledger_of(*names: str) -> list[AppliedMigration]:
    """Ledger rows as if the named files had been applied unedited."""
    original = files(*names)
    return applied(original, *(m.version for m in original.migrations))


def names(migrations: tuple[MigrationFile, ...]) -> list[str]:
    return [m.name for m in migrations]


@pytest.mark.parametrize(
    ("on_disk", "applied_versions", "pending"),
    [
        (("0001_a.sql", "0002_b.sql"), (), ["0001_a.sql", "0002_b.sql"]),
        (("0001_a.sql", "0002_b.sql"), (1,), ["0002_b.sql"]),
        (("0001_a.sql", "0002_b.sql"), (1, 2), []),
        ((), (), []),
    ],
)
def test_pending_in_version_order(on_disk: tuple[str, ...], applied_versions: tuple[int, ...], pending: list[str]):
    discovery = files(*on_disk)
    plan = plan_up(APP, discovery, applied(discovery, *applied_versions))
    assert (pending, pending, ()) == (names(plan.pending), names(plan.to_apply), plan.problems)


def test_drift_is_a_problem_naming_the_file_and_the_way_out() -> None:
    ledger = ledger_of("0001_a.sql", "0002_b.sql")
    plan = plan_up(APP, files("0001_a.sql", "0002_b.sql!", "0003_c.sql"), ledger)
    assert [2] == [d.file.version for d in plan.drifted]
    assert 1 == len(plan.problems)
    assert plan.problems[0].startswith("migrations/0002_b.sql changed after it was applied")
    assert "--accept-checksum 2" in plan.problems[0]
    assert ["0003_c.sql"] == names(plan.to_apply)


def test_renamed_file_is_drift() -> None:
    ledger = ledger_of("0001_a.sql")
    plan = plan_up(APP, scan(DIR, {"0001_renamed.sql": b"SELECT '0001_a.sql';"}), ledger)
    assert ["0001_renamed.sql"] == [d.file.name for d in plan.drifted]
    assert "was renamed from 0001_a.sql" in plan.problems[0]


def test_accepted_drift_is_not_a_problem() -> None:
    ledger = ledger_of("0001_a.sql", "0002_b.sql")
    plan = plan_up(APP, files("0001_a.sql", "0002_b.sql!"), ledger, accept={2})
    assert ((), [2]) == (plan.problems, [d.file.version for d in plan.accepted])


def test_accepting_unchanged_or_unknown_versions() -> None:
    ledger = ledger_of("0001_a.sql")
    plan = plan_up(APP, files("0001_a.sql", "0002_b.sql"), ledger, accept={1, 7})
    assert ["--accept-checksum 1: 0001_a.sql has not changed; nothing to accept"] == list(plan.warnings)
    assert ["--accept-checksum 7: no applied migration numbered 7 has a file to accept"] == list(plan.problems)


def test_builtin_drift_names_the_namespaced_flag() -> None:
    original = files("0001_a.sql")
    ledger = applied(original, 1, namespace=BUILTIN)
    plan = plan_up(BUILTIN, files("0001_a.sql!"), ledger)
    assert "--accept-checksum railyard:1" in plan.problems[0]


def test_ledger_rows_of_other_namespaces_are_ignored() -> None:
    discovery = files("0001_a.sql")
    plan = plan_up(APP, discovery, applied(discovery, 1, namespace=BUILTIN))
    assert ["0001_a.sql"] == names(plan.pending)


@pytest.mark.parametrize(
    ("allow", "problems", "to_apply"),
    [(False, 1, ["0002_b.sql", "0004_d.sql"]), (True, 0, ["0002_b.sql", "0004_d.sql"])],
)
def test_out_of_order(allow: bool, problems: int, to_apply: list[str]) -> None:
    """A pending migration below the newest applied one is refused unless allowed; then all run in order."""
    discovery = files("0001_a.sql", "0002_b.sql", "0003_c.sql", "0004_d.sql")
    plan = plan_up(APP, discovery, applied(discovery, 1, 3), allow_out_of_order=allow)
    assert (["0002_b.sql"], problems, to_apply) == (names(plan.out_of_order), len(plan.problems), names(plan.to_apply))
    if problems:
        assert "numbered below 0003_c.sql" in plan.problems[0]
        assert "--allow-out-of-order" in plan.problems[0]


@pytest.mark.parametrize(
    ("target", "to_apply", "problem"),
    [
        (2, ["0002_b.sql"], None),
        (3, ["0002_b.sql", "0003_c.sql"], None),
        (1, [], None),
        (9, ["0002_b.sql", "0003_c.sql"], "--to 9: no migration is numbered 9 (newest file: 0003_c.sql)"),
    ],
)
def test_target(target: int, to_apply: list[str], problem: str | None) -> None:
    discovery = files("0001_a.sql", "0002_b.sql", "0003_c.sql")
    plan = plan_up(APP, discovery, applied(discovery, 1), target=target)
    assert (to_apply, [problem] if problem else []) == (names(plan.to_apply), list(plan.problems))


def test_missing_file_is_a_warning() -> None:
    ledger = ledger_of("0001_a.sql", "0002_b.sql")
    plan = plan_up(APP, files("0001_a.sql"), ledger)
    assert ((), ["0002_b.sql"]) == (plan.problems, [a.name for a in plan.missing])
    assert "0002_b.sql was applied (version 2) but its file is no longer in migrations" == plan.warnings[0]


def test_discovery_problems_stop_the_plan() -> None:
    plan = plan_up(APP, scan(DIR, {"oops.sql": b"SELECT 1;"}), [])
    assert 1 == len(plan.problems)


@pytest.mark.parametrize(
    ("on_disk", "steps", "reverted", "problem"),
    [
        (("0001_a.sql+", "0002_b.sql+"), 1, [2], None),
        (("0001_a.sql+", "0002_b.sql+"), 2, [2, 1], None),
        (("0001_a.sql", "0002_b.sql+"), 1, [2], None),
        (("0001_a.sql", "0002_b.sql+"), 2, [], "migrations/0001_a.sql has no down migration; add a '-- migrate:down'"),
        (("0001_a.sql+", "0002_b.sql+"), 3, [], "--steps 3: only 2 migration(s) are applied; give a smaller number"),
        (("0001_a.sql+", "0002_b.sql+"), 0, [], "--steps 0: revert at least 1"),
        (("0001_a.sql+",), 2, [], "0002_b.sql cannot be reverted: its file is no longer in migrations"),
    ],
)
def test_plan_down(on_disk: tuple[str, ...], steps: int, reverted: list[int], problem: str | None) -> None:
    ledger = ledger_of("0001_a.sql+", "0002_b.sql+")
    # the ledger's checksums are of the "+" variants; the "no down" variants differ, so accept them
    plan = plan_down(APP, files(*on_disk), ledger, steps=steps, accept={1, 2})
    assert reverted == [a.version for a, _ in plan.to_revert]
    if problem:
        assert 1 == len(plan.problems)
        assert problem in plan.problems[0]
    else:
        assert () == plan.problems


def test_plan_down_refuses_a_drifted_file() -> None:
    ledger = ledger_of("0001_a.sql+")
    plan = plan_down(APP, files("0001_a.sql+!"), ledger)
    assert "changed after it was applied" in plan.problems[0]


def test_python_migration_without_downgrade() -> None:
    discovery = scan(DIR, {"0001_a.py": b"def upgrade(conn):\n    pass\n"})
    plan = plan_down(APP, discovery, applied(discovery, 1))
    assert ["migrations/0001_a.py has no down migration; add a downgrade(conn) function to revert it"] == list(
        plan.problems
    )


def _plan(problems: tuple[str, ...] = (), pending: int = 0) -> Plan:
    pending_files = files(*(f"{i:04d}_m.sql" for i in range(1, pending + 1))).migrations
    return Plan(APP, (), pending_files, pending_files, problems=problems)


@pytest.mark.parametrize(
    ("plans", "code"),
    [
        ([_plan()], 0),
        ([_plan(), _plan(pending=2)], 3),
        ([_plan(problems=("drift",)), _plan(pending=1)], 1),
        ([], 0),
    ],
)
def test_status_exit_code(plans: list[Plan], code: int) -> None:
    assert code == status_exit_code(plans)


@pytest.mark.parametrize(
    ("environment", "requested", "expected"),
    [
        ("production", None, (True, "ENVIRONMENT=production")),
        ("staging", None, (False, "ENVIRONMENT=staging")),
        ("development", True, (True, "--backup")),
        ("production", False, (False, "--no-backup")),
    ],
)
def test_backup_decision(environment: str, requested: bool | None, expected: tuple[bool, str]) -> None:
    assert expected == backup_decision(environment, requested)


@pytest.mark.parametrize(
    ("retries", "base", "cap", "delays"),
    [(0, 2, 60, ()), (4, 2, 60, (2, 4, 8, 16)), (4, 10, 25, (10, 20, 25, 25)), (2, 0, 60, (0, 0))],
)
def test_retry_delays(retries: int, base: float, cap: float, delays: tuple[float, ...]) -> None:
    assert delays == retry_delays(retries, base, cap)


@pytest.mark.parametrize(
    ("values", "expected"),
    [
        (["3", "0004"], {(APP, 3), (APP, 4)}),
        (["railyard:1", "app:2"], {(BUILTIN, 1), (APP, 2)}),
        ([], set()),
    ],
)
def test_accept_spec(values: list[str], expected: set[tuple[str, int]]) -> None:
    assert expected == set(AcceptSpec.parse(values).versions)


@pytest.mark.parametrize("value", ["x", "other:3", "3.5", ""])
def test_accept_spec_refuses(value: str) -> None:
    with pytest.raises(PermanentError, match="is not a migration number"):
        AcceptSpec.parse([value])
