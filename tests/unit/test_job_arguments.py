"""Job arguments are checked against the kinds the registry declares, with one clear error naming each."""

from __future__ import annotations

import pytest

from railyard.core import registry
from railyard.core.client import enqueue
from railyard.core.job_arguments import JobArgumentError, argument_problems


def problems(func: str, *args: object, **kwargs: object) -> list[str]:
    return argument_problems(func, registry.require_spec(func).params, args, kwargs)


@pytest.mark.parametrize(
    ("func", "kwargs", "expected"),
    [
        (
            "jobs.retention.prune_backups",
            {"dry_run": "false"},
            "jobs.retention.prune_backups argument 'dry_run' is 'false' (str); it must be true or false "
            "(a JSON boolean, not a string)",
        ),
        ("jobs.retention.purge_rows", {"dry_run": 0}, "argument 'dry_run' is 0 (int)"),
        ("jobs.retention.purge_rows", {"dry_run": None}, "argument 'dry_run' is None (NoneType)"),
        ("jobs.backup.run_backup", {"tables": "public.orders"}, "it must be a list of strings"),
        ("jobs.backup.run_backup", {"tables": ["a", 1]}, "argument 'tables' is ['a', 1] (list)"),
        ("jobs.backup.run_backup", {"database": ["app"]}, "argument 'database' is ['app'] (list)"),
        ("jobs.migrate.run_migrations", {"to": "3"}, "it must be a whole number, e.g. 3 or null"),
        ("jobs.migrate.run_migrations", {"to": True}, "argument 'to' is True (bool)"),
        ("jobs.diagnostics.ping", {"delay_s": "1"}, "it must be a number, e.g. 1.5"),
        ("jobs.audio.process_audio", {"audio_file_id": None}, "argument 'audio_file_id' is None"),
        (
            "jobs.verify.verify_backup",
            {"backup": "x"},
            "has no argument 'backup'; its arguments are: backup_id, database",
        ),
        ("jobs.staleness.check_stale_backups", {"settings": {}}, "has no argument 'settings'; its arguments are: none"),
    ],
)
def test_wrong_arguments_are_named_with_what_they_must_be(func: str, kwargs: dict, expected: str) -> None:
    [problem] = problems(func, **kwargs)
    assert expected in problem


def test_right_arguments_pass_positional_or_by_name() -> None:
    assert [] == problems("jobs.backup.run_backup", "app", True, tables=["public.*"], all_databases=False)
    assert [] == problems("jobs.migrate.run_migrations", to=None, backup=None, accept_checksums=["0001"])
    assert [] == problems("jobs.audio.process_audio", 42) == problems("jobs.audio.process_audio", "42")
    assert [] == problems("jobs.diagnostics.ping", delay_s=0)


def test_every_problem_is_reported_at_once() -> None:
    found = problems("jobs.verify.verify_backup", 1, 2, 3, nope=1)
    assert 4 == len(found) and "takes at most 2 positional arguments, got 3" in found[0]


def test_the_producer_api_refuses_before_anything_is_enqueued() -> None:
    with pytest.raises(JobArgumentError, match="'dry_run' is 'false'"):
        enqueue("jobs.retention.prune_backups", None, dry_run="false")  # type: ignore[arg-type]
