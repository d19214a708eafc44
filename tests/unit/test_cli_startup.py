"""`railyard --help` loads no command and no client library: each command imports what it uses when it runs.

The start-up time itself is measured in bench/startup_bench.py, not asserted here.
"""

from __future__ import annotations

import subprocess
import sys

import click
import pytest

from railyard.cli import COMMANDS, cli

HEAVY = ("psycopg", "redis", "rq", "rq_scheduler", "boto3", "botocore", "structlog", "jobs", "zstandard", "av", "numpy")
PROBE = """
import sys
from railyard.cli import cli
try:
    cli(sys.argv[1:], prog_name="railyard")
except SystemExit:
    pass
print("loaded:", *sorted(m for m in sys.modules if m.split(".")[0] in {heavy!r} or m.startswith("railyard.cli.")))
"""


@pytest.mark.parametrize("name", sorted(COMMANDS))
def test_each_summary_is_the_commands_own(name: str) -> None:
    command = cli.get_command(click.Context(cli), name)
    assert command is not None and name == command.name
    assert command.get_short_help_str(limit=1000) == COMMANDS[name][1]


def test_the_group_lists_exactly_the_commands_it_can_load() -> None:
    ctx = click.Context(cli)
    assert sorted(COMMANDS) == cli.list_commands(ctx)
    assert cli.get_command(ctx, "no-such-command") is None


def loaded_by(*args: str) -> set[str]:
    probe = PROBE.format(heavy=set(HEAVY))
    out = subprocess.run([sys.executable, "-c", probe, *args], capture_output=True, text=True, check=True)
    [line] = [line for line in out.stdout.splitlines() if line.startswith("loaded:")]
    return set(line.split()[1:])


def test_help_imports_no_command_and_no_client_library() -> None:
    assert set() == {m for m in loaded_by("--help") if m != "railyard.cli.context"}


def test_a_commands_help_loads_that_command_only() -> None:
    loaded = {m for m in loaded_by("health", "--help") if m.startswith("railyard.cli.")}
    assert {"railyard.cli.context", "railyard.cli.health"} == loaded
