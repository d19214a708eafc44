"""The child-process runner: whatever ends a command ends everything it started, before the block is left."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from railyard.core import childproc
from tests.conftest import ROOT

ENV = dict(os.environ)


def alive(pid: int) -> bool:
    """Running (a zombie runs nothing and holds nothing)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except FileNotFoundError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] != "Z"


def wait_gone(pids: list[int], timeout_s: float = 10) -> list[int]:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        left = [pid for pid in pids if alive(pid)]
        if not left:
            return []
        time.sleep(0.05)
    return [pid for pid in pids if alive(pid)]


def read_pids(child: childproc.Child, count: int) -> list[int]:
    assert child.stdout is not None
    return [int(child.stdout.readline()) for _ in range(count)]


# A shell with a grandchild: prints its own pid and the grandchild's, then waits for it.
SHELL_WITH_GRANDCHILD = ["sh", "-c", "echo $$; sleep 30 & echo $!; wait"]


def test_exit_status_stdout_and_the_stderr_line_that_says_what_went_wrong() -> None:
    argv = ["sh", "-c", "echo out; echo 'note: starting' >&2; echo 'pg_dump: error: boom' >&2; echo bye >&2; exit 3"]
    with childproc.start(argv, env=ENV) as child:
        assert child.stdout is not None
        assert b"out\n" == child.stdout.read()
        assert 3 == child.wait()
    assert "pg_dump: error: boom" == child.error_line()
    assert "note: starting\npg_dump: error: boom\nbye\n" == child.stderr_text()
    assert "sh" == child.name


def test_a_command_killed_by_a_signal_reports_that_signal() -> None:
    with childproc.start(["sh", "-c", "kill -9 $$"], env=ENV, stdout=childproc.DEVNULL) as child:
        assert -signal.SIGKILL == child.wait()


def test_stderr_lines_reach_the_callback_and_only_the_tail_is_kept() -> None:
    seen: list[bytes] = []
    script = "i=0; while [ $i -lt 3000 ]; do echo line-$i-xxxxxxxxxx >&2; i=$((i+1)); done"
    with childproc.start(["sh", "-c", script], env=ENV, stdout=childproc.DEVNULL, on_stderr_line=seen.append) as child:
        assert 0 == child.wait()
    assert 3000 == len(seen)
    assert childproc.STDERR_KEEP_BYTES >= len(child.stderr_text().encode())
    assert child.stderr_text().endswith("line-2999-xxxxxxxxxx\n")


def test_a_background_process_left_by_the_command_is_ended_before_wait_returns() -> None:
    with childproc.start(["sh", "-c", "sleep 30 & echo $!"], env=ENV) as child:
        (pid,) = read_pids(child, 1)
        assert 0 == child.wait()
        assert not alive(pid)


def test_leaving_the_block_with_an_error_ends_the_command_and_its_children() -> None:
    with pytest.raises(RuntimeError), childproc.start(SHELL_WITH_GRANDCHILD, env=ENV) as child:
        pids = read_pids(child, 2)
        assert all(alive(pid) for pid in pids)
        raise RuntimeError("the upload failed")
    assert [] == [pid for pid in pids if alive(pid)]


def test_a_timeout_ends_the_whole_group() -> None:
    with childproc.start(SHELL_WITH_GRANDCHILD, env=ENV) as child:
        pids = read_pids(child, 2)
        with pytest.raises(childproc.ChildTimeoutError, match=r"sh did not finish within 0.3 s"):
            child.wait(timeout_s=0.3)
        assert [] == [pid for pid in pids if alive(pid)]


def test_a_descendant_that_left_the_group_is_ended_too() -> None:
    with childproc.start(["sh", "-c", "setsid sleep 30 & echo $!; wait"], env=ENV) as child:
        (pid,) = read_pids(child, 1)
        child.stop()
        assert not alive(pid)


PARENT = """
import os, sys, time
from railyard.core import childproc
child = childproc.start(["sh", "-c", "echo $$; sleep 30 & echo $!; wait"], env=dict(os.environ))
for _ in range(2):
    print(child.stdout.readline().decode().strip(), flush=True)
time.sleep(60)
"""


@pytest.mark.parametrize("sig", [signal.SIGKILL, signal.SIGTERM])
def test_when_the_parent_dies_its_command_and_the_command_s_children_die_too(sig: int) -> None:
    parent = subprocess.Popen(
        [sys.executable, "-c", PARENT], stdout=subprocess.PIPE, cwd=ROOT, env=ENV, start_new_session=True
    )
    try:
        assert parent.stdout is not None
        pids = [int(parent.stdout.readline()) for _ in range(2)]
        assert all(alive(pid) for pid in pids)
        parent.send_signal(sig)
        parent.wait(timeout=10)
        assert [] == wait_gone(pids)
    finally:
        if parent.poll() is None:
            parent.kill()
            parent.wait()
        if parent.stdout is not None:
            parent.stdout.close()


def test_a_program_that_does_not_exist_is_refused_before_anything_starts() -> None:
    with pytest.raises(FileNotFoundError):
        childproc.start(["no-such-program-here"], env=ENV)
    with pytest.raises(PermissionError):
        childproc.start([str(Path(__file__))], env=ENV)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("", ""),
        ("pg_dump: last line\n", "pg_dump: last line"),
        ("a\npg_dump: error: first\npg_dump: error: second\nb\n", "pg_dump: error: first"),
        ("  \nwarning\n\n  final  \n", "final"),
    ],
)
def test_error_line(text: str, expected: str) -> None:
    assert expected == childproc.error_line(text)
