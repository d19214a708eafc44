"""Fault injection on the audio queue: 200 files enqueued by 4 producer processes while 2 real
``rq worker`` processes run; one worker is SIGKILLed mid-file and replaced. Every file ends
``ready`` exactly once.

What "exactly once" is measured by, from outside the job:

- the rows: every row is ``ready`` and its ``attempts`` (bumped by each claim, the only way a
  row reaches ``processing``, and the token ``ready`` is written under) is 1, except the killed
  file's, which is 2: the killed claim and the one that finished it;
- the workers' own stdout: across the three worker processes there is exactly one
  ``audio_ready`` line per file (logged only after the conditional UPDATE to ``ready``
  succeeded) naming the row's output key, and the killed worker has none for the killed file;
- storage: the objects are exactly the 200 sources and the 200 outputs the rows point to, and
  no partial upload is left;
- rq: all 200 jobs finished with outcome ``processed``; the killed job was rescued as abandoned
  and its retry took its own claim back at once (``previous_status`` ``processing``), so its
  ``AbandonedJobError`` is the one ``job_failed`` line of the run: no attempt was turned away
  as "being processed by another worker"; failed, started and scheduled registries are empty.

The kill is pinned to a moment when the victim's work horse holds a claim: its processes are
stopped (SIGSTOP) as soon as its log shows a claim, the row is checked to be ``processing``
under that claim, and then everything is SIGKILLed; otherwise they continue and the next claim
is tried. The victim is the worker that does not hold rq's scheduler lock, so retries are not
held up by that lock's 61 s expiry, which is rq's behaviour and not the audio job's.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

import psycopg
import pytest
import redis
from psycopg.rows import dict_row
from rq.job import Job, JobStatus
from rq.registry import FailedJobRegistry, ScheduledJobRegistry, StartedJobRegistry

from railyard.core.storage.local import LocalStore
from tests import audio_signals as sig
from tests.conftest import ROOT
from tests.e2e.conftest import Proc, child_env
from tests.e2e.test_abandoned import FAST_CLEANUP_ARGS, FAST_CLEANUP_ENV, descendants, kill_everything

pytestmark = [pytest.mark.faults, pytest.mark.timeout(360)]

FILES = 200
PRODUCERS = 4
SOURCE_SECONDS = (0.5, 0.6, 0.8, 1.0)  # above the 0.4 s minimum, short enough for 200 on two busy cores
CLAIMS_BEFORE_KILL = 40  # the victim is killed well into the run, with the queue still full

PRODUCER = """
import sys
from railyard.core.client import enqueue_audio
for file_id in sys.argv[1:]:
    print(file_id, enqueue_audio(file_id).id, flush=True)
"""


class LogTail:
    """A worker's JSON log lines read incrementally, so polling it often stays cheap."""

    def __init__(self, proc: Proc):
        self.proc = proc
        self.lines: list[dict[str, Any]] = []
        self._offset = 0

    def read(self) -> list[dict[str, Any]]:
        with open(self.proc.log_path, "rb") as log:
            log.seek(self._offset)
            data = log.read()
        complete = data[: data.rfind(b"\n") + 1]
        self._offset += len(complete)
        for raw in complete.decode(errors="replace").splitlines():
            with contextlib.suppress(ValueError):
                self.lines.append(json.loads(raw))
        return self.lines

    def events(self, name: str) -> list[dict[str, Any]]:
        return [line for line in self.read() if line.get("event") == name]


def sources() -> list[bytes]:
    return [
        sig.encode(sig.at_level(sig.speech_like(44100, seconds, channels=2, seed=i), -27), 44100, "wav")
        for i, seconds in enumerate(SOURCE_SECONDS)
    ]


def add_files(database_url: str, store: LocalStore) -> list[str]:
    """Upload the sources and insert their rows, as the services that own the files do."""
    datas = sources()
    keys = [f"uploads/{n:03d}.wav" for n in range(FILES)]
    for n, key in enumerate(keys):
        store.put_bytes(key, datas[n % len(datas)])
    insert = "INSERT INTO audio_files (source_key) VALUES (%s) RETURNING id::text"
    with psycopg.connect(database_url, autocommit=True) as conn:
        return [str(conn.execute(insert, [key]).fetchone()[0]) for key in keys]  # type: ignore[index]


def rows(database_url: str) -> dict[str, dict[str, Any]]:
    with psycopg.connect(database_url, row_factory=dict_row) as conn:
        found = conn.execute("SELECT id::text AS id, status, attempts, output_key FROM audio_files").fetchall()
    return {row["id"]: row for row in found}


def start_producers(
    redis_url: str, file_ids: list[str], tmp_path: Path, count: int = PRODUCERS
) -> list[subprocess.Popen[bytes]]:
    """``count`` separate Python processes calling the public producer API, each for its share of the files."""
    procs = []
    for n in range(count):
        with open(tmp_path / f"producer-{n}.out", "wb") as out:
            procs.append(
                subprocess.Popen(
                    [sys.executable, "-c", PRODUCER, *file_ids[n::count]],
                    env=child_env(REDIS_URL=redis_url),
                    stdout=out,
                    stderr=subprocess.STDOUT,
                    cwd=ROOT,
                )
            )
    return procs


def producer_jobs(procs: list[subprocess.Popen[bytes]], tmp_path: Path) -> dict[str, str]:
    """file id -> job id, as printed by the producers once they exited 0."""
    jobs: dict[str, str] = {}
    for n, proc in enumerate(procs):
        returncode = proc.wait(timeout=60)
        output = (tmp_path / f"producer-{n}.out").read_text()
        assert 0 == returncode, output
        for line in output.splitlines():
            file_id, job_id = line.split()
            jobs[file_id] = job_id
    return jobs


def signal_all(pids: list[int], sig_number: int) -> None:
    for pid in pids:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, sig_number)


def freeze_while_holding_a_claim(victim: Proc, database_url: str, timeout_s: float = 120) -> dict[str, Any]:
    """SIGSTOP the victim's processes at a moment its work horse holds a row's claim; its audio_claimed line."""
    tail = LogTail(victim)
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        lines = tail.read()
        finished = {line.get("job_id") for line in lines if line.get("event") in ("audio_ready", "job_failed")}
        claims = [line for line in lines if line.get("event") == "audio_claimed"]
        if len(claims) > CLAIMS_BEFORE_KILL and claims[-1]["job_id"] not in finished:
            claim = claims[-1]
            os.kill(victim.popen.pid, signal.SIGSTOP)  # first, so that it forks no new work horse
            pids = [victim.popen.pid, *descendants(victim.popen.pid)]
            signal_all(pids, signal.SIGSTOP)
            with psycopg.connect(database_url) as conn:
                status, attempts = conn.execute(
                    "SELECT status, attempts FROM audio_files WHERE id = %s", [claim["audio_file_id"]]
                ).fetchone()  # type: ignore[misc]
            if ("processing", claim["attempt"]) == (status, attempts):
                return claim
            signal_all(pids, signal.SIGCONT)
        time.sleep(0.01)
    raise AssertionError(f"the victim never held a claim long enough; log:\n{victim.text()[-3000:]}")


def wait_until(condition: Callable[[], bool], timeout_s: float, what: Callable[[], str]) -> None:
    deadline = time.monotonic() + timeout_s
    while not condition():
        assert time.monotonic() < deadline, what()
        time.sleep(0.5)


def test_killed_worker_mid_file_every_file_ends_ready_exactly_once(
    start_worker: Callable[..., Proc], database_url: str, redis_url: str, redis_conn: redis.Redis, tmp_path: Path
) -> None:
    sig.create_audio_table(database_url)
    store = LocalStore(tmp_path / "audio")
    file_ids = add_files(database_url, store)
    env = {
        "REDIS_URL": redis_url,
        "DATABASE_URL": database_url,
        "AUDIO_STORAGE_URL": str(store.root),
        "WORKER_QUEUES": "audio",
        **FAST_CLEANUP_ENV,
    }

    def worker(name: str) -> Proc:
        scratch = tmp_path / f"tmp-{name}"  # each worker's TMPDIR, where the job renders before uploading
        scratch.mkdir()
        return start_worker({**env, "TMPDIR": str(scratch)}, FAST_CLEANUP_ARGS)

    survivor = worker("a")
    survivor.wait_for(lambda line: line.get("event") == "Acquired scheduler lock for audio")
    victim = worker("b")
    producers = start_producers(redis_url, file_ids, tmp_path)
    claim = freeze_while_holding_a_claim(victim, database_url)
    kill_everything(victim.popen)
    killed_file, killed_job = claim["audio_file_id"], claim["job_id"]
    replacement = worker("c")
    jobs = producer_jobs(producers, tmp_path)
    assert sorted(file_ids) == sorted(jobs)
    assert killed_job == jobs[killed_file]

    def settled() -> bool:
        done = (JobStatus.FINISHED, JobStatus.FAILED)
        return all(Job.fetch(job_id, connection=redis_conn).get_status() in done for job_id in jobs.values())

    def progress() -> str:
        statuses = Counter(row["status"] for row in rows(database_url).values())
        return f"jobs still running: rows {dict(statuses)}; replacement's log:\n{replacement.text()[-3000:]}"

    wait_until(settled, timeout_s=240, what=progress)

    final = rows(database_url)
    assert {"ready": FILES} == Counter(row["status"] for row in final.values())
    assert {fid: 2 if fid == killed_file else 1 for fid in file_ids} == {fid: r["attempts"] for fid, r in final.items()}

    logs = {"a": LogTail(survivor), "b": LogTail(victim), "c": LogTail(replacement)}
    ready_lines = [line for tail in logs.values() for line in tail.events("audio_ready")]
    assert Counter(file_ids) == Counter(line["audio_file_id"] for line in ready_lines)
    assert {fid: r["output_key"] for fid, r in final.items()} == {
        line["audio_file_id"]: line["output_key"] for line in ready_lines
    }
    assert killed_file not in {line["audio_file_id"] for line in logs["b"].events("audio_ready")}

    failures = [line for tail in logs.values() for line in tail.events("job_failed")]
    assert [(killed_job, "AbandonedJobError", True)] == [
        (line["job_id"], line["error_type"], line["will_retry"]) for line in failures
    ]
    [retry] = [line for name in "ac" for line in logs[name].events("audio_claimed") if line["job_id"] == killed_job]
    assert (killed_file, 2, "processing") == (retry["audio_file_id"], retry["attempt"], retry["previous_status"])

    results = [Job.fetch(job_id, connection=redis_conn).return_value() for job_id in jobs.values()]
    assert {"processed": FILES} == Counter(result["outcome"] for result in results)  # type: ignore[index]
    for registry in (FailedJobRegistry, StartedJobRegistry, ScheduledJobRegistry):
        assert [] == registry("audio", connection=redis_conn).get_job_ids(cleanup=False), registry.__name__

    source_keys = [f"uploads/{n:03d}.wav" for n in range(FILES)]
    assert sorted(source_keys + [r["output_key"] for r in final.values()]) == [o.key for o in store.list()]
    assert [] == list(store.list_incomplete_uploads())
    for name in "ac":
        assert [] == list((tmp_path / f"tmp-{name}").glob("railyard-audio-*")), f"worker {name} left scratch files"


def work_horse_holding_a_claim(worker: Proc, timeout_s: float = 60) -> int:
    """The pid of the worker's work horse (the descendant leading a process group of its own) once it claimed a row."""
    tail = LogTail(worker)
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if tail.events("audio_claimed"):
            for pid in descendants(worker.popen.pid):
                with contextlib.suppress(OSError):
                    if os.getpgid(pid) == pid:
                        return pid
        time.sleep(0.01)
    raise AssertionError(f"no work horse with a claim within {timeout_s}s; log:\n{worker.text()[-3000:]}")


def test_killed_work_horse_the_retry_takes_its_claim_back_at_once(
    start_worker: Callable[..., Proc], database_url: str, redis_url: str, redis_conn: redis.Redis, tmp_path: Path
) -> None:
    """Only the work horse dies (the OOM killer's usual pick): the worker retries the job, and the retry takes
    back the claim the dead attempt left instead of being turned away until AUDIO_STALE_AFTER_S."""
    sig.create_audio_table(database_url)
    store = LocalStore(tmp_path / "audio")
    long_speech = sig.at_level(sig.speech_like(22050, 180), -27)  # a second or two of work after the claim
    store.put_bytes("uploads/long.wav", sig.encode(long_speech, 22050, "wav"))
    with psycopg.connect(database_url, autocommit=True) as conn:
        insert = "INSERT INTO audio_files (source_key) VALUES ('uploads/long.wav') RETURNING id::text"
        file_id = str(conn.execute(insert).fetchone()[0])  # type: ignore[index]
    env = {
        "REDIS_URL": redis_url,
        "DATABASE_URL": database_url,
        "AUDIO_STORAGE_URL": str(store.root),
        "WORKER_QUEUES": "audio",
        **FAST_CLEANUP_ENV,
    }
    worker = start_worker(env, FAST_CLEANUP_ARGS)
    producer = start_producers(redis_url, [file_id], tmp_path, count=1)
    [job_id] = producer_jobs(producer, tmp_path).values()

    horse = work_horse_holding_a_claim(worker)
    os.kill(horse, signal.SIGSTOP)
    with psycopg.connect(database_url) as conn:
        held = conn.execute("SELECT status, attempts FROM audio_files WHERE id = %s", [file_id]).fetchone()
    assert ("processing", 1) == held, "the horse was stopped while holding the claim"
    os.kill(horse, signal.SIGKILL)

    wait_until(
        lambda: Job.fetch(job_id, connection=redis_conn).get_status() in (JobStatus.FINISHED, JobStatus.FAILED),
        timeout_s=120,
        what=lambda: f"job not done; log:\n{worker.text()[-3000:]}",
    )
    job = Job.fetch(job_id, connection=redis_conn)
    assert JobStatus.FINISHED == job.get_status(), worker.text()[-3000:]
    assert "processed" == job.return_value()["outcome"]  # type: ignore[index]
    [final] = rows(database_url).values()
    assert ("ready", 2) == (final["status"], final["attempts"])
    tail = LogTail(worker)
    assert [(1, "pending"), (2, "processing")] == [
        (line["attempt"], line["previous_status"]) for line in tail.events("audio_claimed")
    ]
    assert [2] == [line["attempt"] for line in tail.events("audio_ready")]
    assert "Work-horse terminated unexpectedly" in worker.text()
    assert "LockBusyError" not in worker.text()
    assert [final["output_key"]] == [o.key for o in store.list("processed")]
    assert [] == list(store.list_incomplete_uploads())
