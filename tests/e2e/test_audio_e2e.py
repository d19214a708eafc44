"""The audio job as users run it: the ``railyard audio`` commands and two real ``rq worker`` processes."""

from __future__ import annotations

import os
import subprocess
import time
from pathlib import Path
from typing import Any

import psycopg
import pytest
import redis
from psycopg.rows import dict_row
from rq import Queue, Worker
from rq.job import Job, JobStatus

from railyard.core.client import enqueue_audio
from railyard.core.storage.local import LocalStore
from tests import audio_signals as sig
from tests.conftest import ROOT, VENV_BIN


@pytest.fixture
def audio_env(database_url: str, redis_url: str, tmp_path: Path) -> dict[str, str]:
    sig.create_audio_table(database_url)
    return {
        **os.environ,
        "PATH": f"{VENV_BIN}:{os.environ.get('PATH', '')}",
        "DATABASE_URL": database_url,
        "REDIS_URL": redis_url,
        "AUDIO_STORAGE_URL": str(tmp_path / "audio"),
        "WORKER_QUEUES": "audio",
        "LOG_FORMAT": "json",
    }


def add_file(env: dict[str, str], key: str, data: bytes) -> str:
    LocalStore(env["AUDIO_STORAGE_URL"]).put_bytes(key, data)
    with psycopg.connect(env["DATABASE_URL"], autocommit=True) as conn:
        row = conn.execute("INSERT INTO audio_files (source_key) VALUES (%s) RETURNING id::text", [key]).fetchone()
    assert row is not None
    return str(row[0])


def row(env: dict[str, str], file_id: str) -> dict[str, Any]:
    with psycopg.connect(env["DATABASE_URL"], row_factory=dict_row) as conn:
        found = conn.execute("SELECT * FROM audio_files WHERE id = %s", [file_id]).fetchone()
    assert found is not None
    return found


def railyard(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(VENV_BIN / "railyard"), *args], env=env, cwd=ROOT, capture_output=True, text=True, timeout=60
    )


def speech_wav(seconds: float) -> bytes:
    return sig.encode(sig.at_level(sig.speech_like(44100, seconds, channels=2), -27), 44100, "wav")


def test_cli_processes_a_file_now(audio_env: dict[str, str]) -> None:
    file_id = add_file(audio_env, "uploads/story.wav", speech_wav(3))
    done = railyard(audio_env, "audio", "process", file_id)
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith(f"audio file {file_id}: processed (status ready)\noutput    processed/{file_id}/")
    assert "-> -16.0 LUFS" in done.stdout or "-> -15.9 LUFS" in done.stdout or "-> -16.1 LUFS" in done.stdout
    assert row(audio_env, file_id)["status"] == "ready"

    again = railyard(audio_env, "audio", "process", file_id, "--json")
    assert again.returncode == 0
    assert '"outcome": "skipped"' in again.stdout


def test_cli_reports_a_failed_file_and_an_unknown_id(audio_env: dict[str, str]) -> None:
    file_id = add_file(audio_env, "uploads/notes.mp3", b"not audio at all\n" * 50)
    failed = railyard(audio_env, "audio", "process", file_id)
    assert failed.returncode == 1
    assert f"error: audio file {file_id} failed: the file is not audio that FFmpeg can read" in failed.stderr
    assert row(audio_env, file_id)["status"] == "failed"

    unknown = railyard(audio_env, "audio", "process", "404")
    assert unknown.returncode == 1
    assert "error: no audio file with id '404' in table audio_files;" in unknown.stderr
    assert "Traceback" not in unknown.stderr


HOSTILE = {"tag": 1, "channels": 2, "rate": 44100, "byte_rate": 176400, "align": 4, "bits": 16, "riff": 0, "data": 8000}


@pytest.mark.parametrize(
    ("fields", "source_key", "said"),
    [
        ({"rate": 2**31 - 1}, "uploads/absurd-rate.wav", "failed: the file claims a sample rate of 2147483647 Hz"),
        ({"channels": 64}, "uploads/64ch.wav", "rejected: the audio has 64 channels; at most 8 are supported"),
        (None, "uploads", "failed: the source 'uploads' is not in "),
    ],
)
def test_cli_hostile_inputs_end_with_a_sentence_and_no_traceback(
    audio_env: dict[str, str], fields: dict[str, int] | None, source_key: str, said: str
) -> None:
    """The cases that used to print a raw traceback: a header FFmpeg chokes on, a key naming a directory."""
    if fields is None:
        LocalStore(audio_env["AUDIO_STORAGE_URL"]).put_bytes("uploads/other.wav", b"x")
        with psycopg.connect(audio_env["DATABASE_URL"], autocommit=True) as conn:
            found = conn.execute("INSERT INTO audio_files (source_key) VALUES (%s) RETURNING id::text", [source_key])
            file_id = str(found.fetchone()[0])  # type: ignore[index]
    else:
        file_id = add_file(audio_env, source_key, sig.wav_with_header(**{**HOSTILE, **fields}))
    done = railyard(audio_env, "audio", "process", file_id)
    assert 1 == done.returncode
    assert f"error: audio file {file_id} {said}" in done.stderr
    assert "Traceback" not in done.stderr
    assert said.split(":")[0] == row(audio_env, file_id)["status"]


def test_cli_enqueue_applies_the_registry_policy(audio_env: dict[str, str], redis_conn: redis.Redis) -> None:
    file_id = add_file(audio_env, "uploads/story.wav", speech_wav(1))
    done = railyard(audio_env, "audio", "enqueue", file_id)
    assert done.returncode == 0, done.stderr
    queue = Queue("audio", connection=redis_conn)
    assert queue.count == 1
    job = queue.jobs[0]
    assert f"queued audio file {file_id} as job {job.id} on queue audio" == done.stdout.strip()
    assert ("jobs.audio.process_audio", {"audio_file_id": file_id}, 1800, 4) == (
        job.func_name,
        job.kwargs,
        job.timeout,
        job.retries_left,
    )

    unknown = railyard(audio_env, "audio", "enqueue", "404")
    assert unknown.returncode == 1
    assert "error: no audio file with id '404' in table audio_files; nothing was queued" in unknown.stderr
    assert queue.count == 1


def test_two_workers_given_the_same_file_process_it_once(
    audio_env: dict[str, str], redis_conn: redis.Redis, tmp_path: Path
) -> None:
    """Both workers take a job for the same id at the same moment: one processes, the other stands aside."""
    file_id = add_file(audio_env, "uploads/long-story.wav", speech_wav(20))
    logs = [tmp_path / f"worker{i}.log" for i in (1, 2)]
    argv = ["rq", "worker", "--config", "worker.rq_config", "--worker-class", "worker.RailyardWorker"]
    workers = []
    for log in logs:
        with open(log, "wb") as out:
            workers.append(subprocess.Popen(argv, env=audio_env, cwd=ROOT, stdout=out, stderr=subprocess.STDOUT))
    try:
        deadline = time.monotonic() + 30
        while len(Worker.all(connection=redis_conn)) < 2:
            assert time.monotonic() < deadline, "workers did not start: " + logs[0].read_text()[-2000:]
            time.sleep(0.1)
        jobs = [enqueue_audio(file_id, redis_conn), enqueue_audio(file_id, redis_conn)]
        deadline = time.monotonic() + 60
        while not all(_settled(job) for job in jobs):
            assert time.monotonic() < deadline, "jobs did not finish: " + logs[0].read_text()[-2000:]
            time.sleep(0.2)
    finally:
        for proc in workers:
            proc.terminate()
        for proc in workers:
            proc.wait(timeout=30)

    log_text = "".join(log.read_text() for log in logs)
    outcomes = sorted(_outcome(job, log_text) for job in jobs)
    assert outcomes in (["busy", "processed"], ["processed", "skipped"])
    final = row(audio_env, file_id)
    assert (final["status"], final["attempts"]) == ("ready", 1)
    outputs = list(LocalStore(audio_env["AUDIO_STORAGE_URL"]).list("processed/"))
    assert [final["output_key"]] == [o.key for o in outputs]
    worked_on = [log for log in logs if '"event": "audio_claimed"' in log.read_text()]
    assert len(worked_on) == 1


def _settled(job: Job) -> bool:
    job.refresh()
    return job.get_status() in (JobStatus.FINISHED, JobStatus.FAILED, JobStatus.SCHEDULED)


def _outcome(job: Job, log_text: str) -> str:
    """processed/skipped from the job's result, or busy: turned away and scheduled for a retry."""
    if job.get_status() == JobStatus.FINISHED:
        return str(job.return_value()["outcome"])  # type: ignore[index]
    assert job.get_status() == JobStatus.SCHEDULED
    assert '"error_type": "LockBusyError"' in log_text and '"will_retry": true' in log_text
    return "busy"
