"""Real processes: the worker exactly as the Procfile starts it, and the CLI."""

from __future__ import annotations

import contextlib
import json
import os
import shlex
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import ROOT, VENV_BIN

# The scheduler's ENVIRONMENT unless a test sets its own.
SCHEDULER_ENVIRONMENT = "development"


def procfile_command(name: str) -> list[str]:
    for line in (ROOT / "Procfile").read_text().splitlines():
        key, _, command = line.partition(":")
        if key.strip() == name:
            return shlex.split(command)
    raise AssertionError(f"Procfile has no {name!r} line")


def child_env(**overrides: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("RAILYARD_TEST_", "PYTEST_"))}
    env["PATH"] = f"{VENV_BIN}{os.pathsep}{env.get('PATH', '')}"
    env["LOG_FORMAT"] = "json"
    env.update(overrides)
    return env


@dataclass
class Proc:
    popen: subprocess.Popen[bytes]
    log_path: Path
    argv: list[str] = field(default_factory=list)

    def lines(self) -> list[dict[str, Any]]:
        out = []
        for raw in self.log_path.read_text(errors="replace").splitlines():
            try:
                out.append(json.loads(raw))
            except ValueError:
                out.append({"event": raw, "unparsed": True})
        return out

    def text(self) -> str:
        return self.log_path.read_text(errors="replace")

    def wait_for(self, predicate: Callable[[dict[str, Any]], bool], timeout_s: float = 30) -> dict[str, Any]:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            for line in self.lines():
                if predicate(line):
                    return line
            if self.popen.poll() is not None:
                break
            time.sleep(0.1)
        raise AssertionError(f"no matching log line within {timeout_s}s; output:\n{self.text()[-4000:]}")

    def stop(self, sig: int = signal.SIGTERM, timeout_s: float = 30) -> int:
        if self.popen.poll() is None:
            self.popen.send_signal(sig)
        return self.popen.wait(timeout=timeout_s)


@pytest.fixture
def start_worker(tmp_path: Path) -> Iterator[Callable[..., Proc]]:
    """Start `rq worker` from the Procfile's worker line with the given environment."""
    procs: list[Proc] = []

    def start(env: dict[str, str], extra_args: tuple[str, ...] = ()) -> Proc:
        argv = procfile_command("worker") + list(extra_args)
        log_path = tmp_path / f"worker-{len(procs)}.log"
        with open(log_path, "wb") as out:
            popen = subprocess.Popen(
                argv, env=child_env(**env), stdout=out, stderr=subprocess.STDOUT, cwd=ROOT, start_new_session=True
            )
        proc = Proc(popen, log_path, argv)
        procs.append(proc)
        proc.wait_for(lambda line: "Listening on" in str(line.get("event", "")))
        return proc

    yield start
    for proc in procs:
        kill_group(proc.popen)


@pytest.fixture
def start_scheduler(tmp_path: Path) -> Iterator[Callable[..., Proc]]:
    """Start the Procfile's scheduler line; by default wait until it has reconciled its schedule."""
    procs: list[Proc] = []

    def start(env: dict[str, str], wait: bool = True) -> Proc:
        argv = procfile_command("scheduler")
        log_path = tmp_path / f"scheduler-{len(procs)}.log"
        defaults = {"SCHEDULER_INTERVAL_S": "0.2", "ENVIRONMENT": SCHEDULER_ENVIRONMENT}
        with open(log_path, "wb") as out:
            popen = subprocess.Popen(
                argv,
                env=child_env(**{**defaults, **env}),
                stdout=out,
                stderr=subprocess.STDOUT,
                cwd=ROOT,
                start_new_session=True,
            )
        proc = Proc(popen, log_path, argv)
        procs.append(proc)
        if wait:
            proc.wait_for(lambda line: line.get("event") == "schedule_reconciled")
        return proc

    yield start
    for proc in procs:
        kill_group(proc.popen)


def kill_group(popen: subprocess.Popen[bytes]) -> None:
    """SIGKILL a process and everything it started (rq's scheduler child, work horses, pg_dump)."""
    with contextlib.suppress(ProcessLookupError):
        os.killpg(popen.pid, signal.SIGKILL)
    popen.wait()


def run_cli(
    *args: str, env: dict[str, str], timeout_s: float = 120, input_text: str | None = None
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(VENV_BIN / "railyard"), *args],
        env=child_env(**env),
        capture_output=True,
        text=True,
        timeout=timeout_s,
        input=input_text,
        cwd=ROOT,
        check=False,
    )


PLAIN_PRODUCER = """
import json, sys
from redis import Redis
from rq import Queue
conn = Redis.from_url(sys.argv[1])
job = Queue(sys.argv[2], connection=conn).enqueue(sys.argv[3], kwargs=json.loads(sys.argv[4]))
ours = [m for m in sys.modules if m.split(".")[0] in ("railyard", "jobs", "worker", "scheduler")]
assert not ours, ours
print(job.id)
"""


def run_producer(script: str, *args: str) -> str:
    """Run a producer script in a separate Python process outside the project; return what it prints."""
    out = subprocess.run(
        [sys.executable, "-c", script, *args],
        capture_output=True,
        text=True,
        check=True,
        cwd="/",
        env={"PATH": os.environ.get("PATH", "")},
    )
    return out.stdout.strip()


def enqueue_plain(redis_url: str, queue: str, func: str, **kwargs: Any) -> str:
    """Enqueue by string path from a separate Python process that does not import Railyard."""
    return run_producer(PLAIN_PRODUCER, redis_url, queue, func, json.dumps(kwargs))
