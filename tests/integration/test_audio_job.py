"""The audio job end to end in-process: real PostgreSQL, local and S3 storage, PyAV.

Every output is checked independently of the code under test: decoded by PyAV,
loudness by pyloudnorm, true peak by 8x oversampling with scipy.
"""

from __future__ import annotations

import hashlib
import io
import signal
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import av
import numpy as np
import psycopg
import pytest
from psycopg.rows import dict_row
from rq import Queue
from rq.job import Job

from jobs.audio.claim_memory import META_KEY as CLAIM_META_KEY
from jobs.audio.claim_memory import JobMetaClaims
from jobs.audio.config import AudioConfig
from jobs.audio.errors import ClaimLostError
from jobs.audio.files import AudioFiles
from jobs.audio.process import Heartbeat, process_file
from railyard.core.errors import LockBusyError, NotFoundError, PermanentError, RetryableError, StorageError
from railyard.core.settings import Settings
from railyard.core.storage import ObjectStore, StorageLocation, open_store
from railyard.core.storage.base import READ_CHUNK_SIZE
from railyard.core.storage.local import LocalStore
from tests import audio_signals as sig

TARGET_LUFS = -16.0
CEILING_DBTP = -1.0


@dataclass
class Env:
    settings: Settings
    audio: AudioConfig
    store: ObjectStore
    location: StorageLocation

    def upload(self, key: str, data: bytes) -> None:
        self.store.put_bytes(self.location.key(key), data)

    def insert(self, source_key: str) -> str:
        with psycopg.connect(self.settings.database_url, autocommit=True) as conn:
            row = conn.execute("INSERT INTO audio_files (source_key) VALUES (%s) RETURNING id::text", [source_key])
            return str(row.fetchone()[0])  # type: ignore[index]

    def row(self, file_id: str) -> dict[str, Any]:
        with psycopg.connect(self.settings.database_url, autocommit=True, row_factory=dict_row) as conn:
            found = conn.execute("SELECT * FROM audio_files WHERE id = %s", [file_id]).fetchone()
        assert found is not None
        return found

    def output(self, file_id: str) -> bytes:
        return self.store.get_bytes(self.location.key(self.row(file_id)["output_key"]))

    def process(self, file_id: str, claims: JobMetaClaims | None = None, **overrides: Any) -> dict[str, Any]:
        audio = replace(self.audio, **overrides)
        return process_file(self.settings, audio, file_id, store=self.store, claims=claims).as_dict()


@pytest.fixture
def env(database_url: str, tmp_path: Path) -> Env:
    sig.create_audio_table(database_url)
    location = StorageLocation.parse(str(tmp_path / "audio"))
    return Env(
        Settings(database_url=database_url),
        AudioConfig(storage_url=str(tmp_path / "audio")),
        LocalStore(tmp_path / "audio"),
        location,
    )


def check_output(data: bytes, *, seconds: float, rate: int, channels: int) -> sig.Decoded:
    """Plays as AAC in MP4, at the target loudness, under the ceiling, as long as the source."""
    out = sig.decode(data)
    assert "mp4" in out.container and out.codec == "aac"
    assert (rate, channels) == (out.rate, out.samples.shape[0])
    assert abs(out.loudness_lufs() - TARGET_LUFS) <= 1.0
    assert out.true_peak_dbtp() < CEILING_DBTP
    assert abs(out.duration_s - seconds) <= 0.05
    return out


CASES = [
    # name, signal, source rate, RMS level (dBFS), source format, expected output rate
    ("speech-mono-8k-wav-quiet", lambda r: sig.speech_like(r, 3), 8000, -32, "wav", 44100),
    ("speech-mono-16k-mp3", lambda r: sig.speech_like(r, 3), 16000, -24, "mp3", 44100),
    ("tone-stereo-22k-flac", lambda r: sig.tone(r, 3), 22050, -20, "flac", 22050),
    ("noise-stereo-44k-m4a", lambda r: sig.noise(r, 3), 44100, -35, "m4a", 44100),
    ("speech-stereo-48k-opus-loud", lambda r: sig.speech_like(r, 3, channels=2), 48000, -10, "opus", 48000),
    ("noise-stereo-96k-wav", lambda r: sig.noise(r, 3), 96000, -18, "wav", 44100),
    ("tone-mono-44k-wav-very-loud", lambda r: sig.tone(r, 3, freq=1000, channels=1), 44100, -4, "wav", 44100),
    ("speech-mono-11k-flac", lambda r: sig.speech_like(r, 3), 11025, -28, "flac", 11025),
    ("speech-stereo-44k-mp3-faint", lambda r: sig.speech_like(r, 3, channels=2), 44100, -45, "mp3", 44100),
]


@pytest.mark.parametrize(("name", "make", "rate", "level", "fmt", "out_rate"), CASES, ids=[c[0] for c in CASES])
def test_normalises_every_kind_of_source(
    env: Env, name: str, make: Any, rate: int, level: float, fmt: str, out_rate: int
) -> None:
    signal = sig.at_level(make(rate), level)
    source = sig.encode(signal, rate, fmt)
    env.upload(f"uploads/{name}.{fmt}", source)
    file_id = env.insert(f"uploads/{name}.{fmt}")

    result = env.process(file_id)

    assert (result["outcome"], result["status"]) == ("processed", "ready")
    row = env.row(file_id)
    out = check_output(env.output(file_id), seconds=signal.shape[1] / rate, rate=out_rate, channels=signal.shape[0])
    assert hashlib.sha256(source).hexdigest() == row["source_sha256"]
    assert f"processed/{file_id}/{row['source_sha256'][:16]}.m4a" == row["output_key"]
    assert (out_rate, signal.shape[0], "aac", 1, None) == (
        row["sample_rate"],
        row["channels"],
        row["format"],
        row["attempts"],
        row["error"],
    )
    assert abs(row["duration_ms"] - signal.shape[1] * 1000 / rate) <= 50
    # What the row says about the output agrees with the independent measurement.
    assert abs(row["loudness_after_lufs"] - out.loudness_lufs()) <= 0.3
    assert abs(row["true_peak_after_dbtp"] - out.true_peak_dbtp()) <= 0.3
    assert abs(row["loudness_before_lufs"] - sig.decode(source).loudness_lufs()) <= 1.0
    peaks = row["waveform_peaks"]
    assert len(peaks) == 200 and all(0 <= p <= 1 for p in peaks)
    assert abs(max(peaks) - float(np.abs(out.samples).max())) <= 0.02


def test_mp3_output_downmixed_to_mono(env: Env) -> None:
    signal = sig.at_level(sig.speech_like(48000, 3, channels=2), -26)
    env.upload("a.flac", sig.encode(signal, 48000, "flac"))
    file_id = env.insert("a.flac")
    env.process(file_id, output_format="mp3", mono=True)
    out = sig.decode(env.output(file_id))
    assert (out.codec.startswith("mp3"), out.rate, out.samples.shape[0]) == (True, 48000, 1)
    assert env.row(file_id)["output_key"].endswith(".mp3")
    assert abs(out.loudness_lufs() - TARGET_LUFS) <= 1.0


def test_opus_output(env: Env) -> None:
    signal = sig.at_level(sig.noise(44100, 3), -30)
    env.upload("a.wav", sig.encode(signal, 44100, "wav"))
    file_id = env.insert("a.wav")
    env.process(file_id, output_format="opus", target_lufs=-14.0)
    out = sig.decode(env.output(file_id))
    assert (out.container, out.codec, out.rate, out.samples.shape[0]) == ("ogg", "opus", 48000, 2)
    assert abs(out.loudness_lufs() - -14.0) <= 1.0
    assert abs(out.duration_s - 3.0) <= 0.05


def test_s3_source_with_index_at_the_end(env: Env, bucket: str) -> None:
    """An M4A whose index follows the audio is read from S3 with ranged reads, no temp file."""
    location = StorageLocation.parse(f"s3://{bucket}/audio")
    s3 = Env(
        env.settings,
        replace(env.audio, storage_url=str(location)),
        open_store(location, addressing_style="path"),
        location,
    )
    signal = sig.at_level(sig.speech_like(44100, 4, channels=2), -23)
    source = sig.encode(signal, 44100, "m4a")
    assert source.index(b"moov") > source.index(b"mdat")
    s3.upload("uploads/story.m4a", source)
    file_id = s3.insert("uploads/story.m4a")
    result = s3.process(file_id)
    assert result["outcome"] == "processed"
    check_output(s3.output(file_id), seconds=4.0, rate=44100, channels=2)


def text_as_mp3() -> bytes:
    return b"Once upon a time there was a story that was never recorded.\n" * 20


def damaged_flac() -> bytes:
    """The first 40% intact, the rest overwritten with random bytes."""
    good = sig.encode(sig.at_level(sig.noise(44100, 4), -20), 44100, "flac")
    keep = len(good) * 4 // 10
    return good[:keep] + np.random.default_rng(5).integers(0, 256, len(good) - keep, dtype=np.uint8).tobytes()


def garbage_flac() -> bytes:
    """A valid header and nothing decodable after it."""
    good = sig.encode(sig.at_level(sig.noise(44100, 4), -20), 44100, "flac")
    return good[:4096] + np.random.default_rng(6).integers(0, 256, len(good) - 4096, dtype=np.uint8).tobytes()


def video_without_audio() -> bytes:
    buffer = io.BytesIO()
    with av.open(buffer, "w", format="mp4") as out:
        stream = out.add_stream("mpeg4", rate=10)
        stream.width, stream.height, stream.pix_fmt = 64, 48, "yuv420p"
        for _ in range(10):
            frame = av.VideoFrame.from_ndarray(np.zeros((48, 64, 3), dtype=np.uint8), format="rgb24")
            out.mux(stream.encode(frame))
        out.mux(stream.encode(None))
    return buffer.getvalue()


def hostile_wav(**fields: int) -> bytes:
    base = {"tag": 1, "channels": 2, "rate": 44100, "byte_rate": 176400, "align": 4, "bits": 16, "riff": 0}
    return sig.wav_with_header(**{**base, "data": 8000, **fields})


BAD_INPUTS = [
    ("empty.mp3", lambda: b"", {}, "failed", "the file is empty (0 bytes)"),
    ("story.mp3", text_as_mp3, {}, "failed", "the file is not audio that FFmpeg can read"),
    ("damaged.flac", damaged_flac, {}, "failed", "the file is damaged or cut short: 1.6 s of its 4.0 s"),
    ("garbage.flac", garbage_flac, {}, "failed", "no audio could be decoded from the file"),
    ("video.mp4", video_without_audio, {}, "failed", "the file has no audio stream"),
    ("silence.wav", lambda: sig.encode(sig.silence(44100, 3), 44100, "wav"), {}, "failed", "the audio is silent"),
    ("click.wav", lambda: sig.encode(sig.tone(44100, 0.2), 44100, "wav"), {}, "failed", "the audio is 0.20 s long"),
    (
        "long.wav",
        lambda: sig.encode(sig.at_level(sig.tone(8000, 4), -20), 8000, "wav"),
        {"max_duration_s": 2.0},
        "rejected",
        "the audio is 0:04 long, over the 0:02 limit (AUDIO_MAX_DURATION_S)",
    ),
    (
        "long.opus",
        lambda: sig.encode(sig.at_level(sig.tone(48000, 4), -20), 48000, "opus"),
        {"max_duration_s": 2.0},
        "rejected",
        "the audio is 0:04 long, over the 0:02 limit (AUDIO_MAX_DURATION_S)",
    ),
    # Headers FFmpeg used to fail on with MemoryError / an invalid argument: an "internal error" and an alert.
    ("absurd-rate.wav", lambda: hostile_wav(rate=2**31 - 1), {}, "failed", "the file claims a sample rate of"),
    ("64-channels.wav", lambda: hostile_wav(channels=64), {}, "rejected", "the audio has 64 channels; at most 8"),
    (
        "big.wav",
        lambda: sig.encode(sig.at_level(sig.tone(8000, 1), -20), 8000, "wav"),
        {"max_bytes": 10_000},
        "rejected",
        "the file is 32.1 kB, over the 10.0 kB limit (AUDIO_MAX_BYTES)",
    ),
]


@pytest.mark.parametrize(("name", "make", "overrides", "status", "message"), BAD_INPUTS, ids=[b[0] for b in BAD_INPUTS])
def test_bad_input_is_recorded_not_retried(
    env: Env, name: str, make: Any, overrides: dict[str, Any], status: str, message: str
) -> None:
    """The row gets the status and a reason; the job ends normally, so nothing retries it."""
    env.upload(f"uploads/{name}", make())
    file_id = env.insert(f"uploads/{name}")
    result = env.process(file_id, **overrides)
    row = env.row(file_id)
    assert (status, status, status) == (result["outcome"], result["status"], row["status"])
    assert row["error"].startswith(message), row["error"]
    assert row["output_key"] is None
    assert list(env.store.list(env.location.key("processed"))) == []


def test_a_source_key_naming_a_directory_fails_with_a_sentence(env: Env) -> None:
    env.upload("uploads/folder/inside.mp3", b"x")
    file_id = env.insert("uploads/folder")
    assert "failed" == env.process(file_id)["outcome"]
    assert env.row(file_id)["error"].startswith("the source 'uploads/folder' is not in ")


def test_missing_source_object(env: Env) -> None:
    file_id = env.insert("uploads/never-uploaded.mp3")
    env.process(file_id)
    row = env.row(file_id)
    assert row["status"] == "failed"
    assert row["error"].startswith("the source 'uploads/never-uploaded.mp3' is not in ")


@pytest.mark.parametrize("file_id", ["999", "not-a-number"])
def test_unknown_id_is_a_permanent_error(env: Env, file_id: str) -> None:
    with pytest.raises(PermanentError) as caught:
        env.process(file_id)
    assert repr(file_id) in str(caught.value)
    if file_id == "999":
        assert isinstance(caught.value, NotFoundError)
        assert "no audio file with id '999' in table audio_files" in str(caught.value)


def upload_speech(env: Env, key: str = "uploads/s.wav", level: float = -25) -> tuple[str, bytes]:
    data = sig.encode(sig.at_level(sig.speech_like(22050, 2), level), 22050, "wav")
    env.upload(key, data)
    return env.insert(key), data


def test_ready_file_with_same_source_is_skipped_and_a_new_source_replaces_it(env: Env) -> None:
    file_id, _ = upload_speech(env)
    env.process(file_id)
    first = env.row(file_id)
    first_output = env.output(file_id)

    again = env.process(file_id)
    assert (again["outcome"], again["status"]) == ("skipped", "ready")
    assert first == env.row(file_id)

    env.upload("uploads/s.wav", sig.encode(sig.at_level(sig.noise(22050, 2), -30), 22050, "wav"))
    replaced = env.process(file_id)
    second = env.row(file_id)
    assert replaced["outcome"] == "processed"
    assert second["attempts"] == 2
    assert first["source_sha256"] != second["source_sha256"]
    assert first["output_key"] != second["output_key"]
    assert env.output(file_id) != first_output
    assert env.store.head(env.location.key(first["output_key"])) is None  # the old output is cleaned up


def test_ready_file_whose_source_was_deleted_is_skipped(env: Env) -> None:
    file_id, _ = upload_speech(env)
    env.process(file_id)
    env.store.delete(env.location.key("uploads/s.wav"))
    result = env.process(file_id)
    assert (result["outcome"], result["detail"]) == ("skipped", "already processed; the source is no longer stored")
    assert env.row(file_id)["status"] == "ready"


def test_claim_is_exclusive_until_it_goes_stale(env: Env) -> None:
    """A second worker is turned away; once heartbeats stop for too long, a retry takes over."""
    file_id, _ = upload_speech(env)
    with psycopg.connect(env.settings.database_url, autocommit=True) as conn:
        files = AudioFiles(conn, ("audio_files",))
        first = files.claim(file_id, stale_after_s=300)
        assert first is not None and first.attempts == 1
        assert files.claim(file_id, stale_after_s=300) is None

        with pytest.raises(LockBusyError, match=f"audio file {file_id} is being processed by another worker"):
            env.process(file_id)

        conn.execute("UPDATE audio_files SET updated_at = now() - interval '301 seconds' WHERE id = %s", [file_id])
        result = env.process(file_id)
        assert result["outcome"] == "processed"
        assert env.row(file_id)["attempts"] == 2
        # The presumed-dead first worker can no longer write anything.
        assert not files.heartbeat(file_id, first.attempts)
        assert not files.finish(file_id, first.attempts, "failed", "late")
    assert env.row(file_id)["status"] == "ready"


def test_heartbeat_keeps_the_claim_fresh_and_notices_a_takeover(env: Env) -> None:
    file_id, _ = upload_speech(env)
    now = [0.0]
    with psycopg.connect(env.settings.database_url, autocommit=True) as conn:
        files = AudioFiles(conn, ("audio_files",))
        claimed = files.claim(file_id, stale_after_s=300)
        assert claimed is not None
        conn.execute("UPDATE audio_files SET updated_at = now() - interval '200 seconds' WHERE id = %s", [file_id])
        beat = Heartbeat(files, file_id, claimed.attempts, interval_s=30, clock=lambda: now[0])
        now[0] = 10.0
        beat()  # too soon: nothing written
        assert files.claim(file_id, stale_after_s=150) is not None  # so a stricter worker could take over...
        now[0] = 40.0
        with pytest.raises(ClaimLostError, match="taken over by another worker"):
            beat()  # ...and the first worker learns it at its next heartbeat


KILLED_UPLOADS = """
import os, signal, sys
from railyard.core.storage.local import LocalStore
store = LocalStore(sys.argv[1])
uploads = [store.open_upload(key) for key in sys.argv[2:]]
for upload in uploads:
    upload.write(b"the first half of an output")
os.kill(os.getpid(), signal.SIGKILL)
"""


def killed_attempt(env: Env, redis_conn: Any, file_id: str, *more_uploads: str) -> Job:
    """What an attempt SIGKILLed mid-upload leaves: the row claimed, the claim in its job, a partial output.

    ``more_uploads`` are keys of other uploads in progress at that moment, left in storage as well.
    """
    job = Queue("audio", connection=redis_conn).enqueue("jobs.audio.process_audio", kwargs={"audio_file_id": file_id})
    with psycopg.connect(env.settings.database_url, autocommit=True) as conn:
        claimed = AudioFiles(conn, ("audio_files",)).claim(file_id, stale_after_s=300)
    assert claimed is not None
    JobMetaClaims(job).remember(file_id, claimed.attempts)
    keys = [env.location.key(f"processed/{file_id}/0123456789abcdef.m4a"), *more_uploads]
    died = subprocess.run([sys.executable, "-c", KILLED_UPLOADS, str(env.location), *keys], check=False)
    assert -signal.SIGKILL == died.returncode
    assert sorted(keys) == [u.key for u in env.store.list_incomplete_uploads()]
    return job


def test_the_retry_of_a_killed_attempt_takes_its_claim_back_at_once(env: Env, redis_conn: Any) -> None:
    """Only the same job's next attempt reclaims a fresh claim, and it discards the dead attempt's partial output."""
    file_id, _ = upload_speech(env)
    neighbour = env.location.key(f"processed/{file_id}0/fedcba9876543210.m4a")  # file 10's, when this is file 1
    job = killed_attempt(env, redis_conn, file_id, neighbour)
    other = Queue("audio", connection=redis_conn).enqueue("jobs.audio.process_audio", kwargs={"audio_file_id": file_id})

    with pytest.raises(LockBusyError, match="is being processed by another worker"):
        env.process(file_id, claims=JobMetaClaims(Job.fetch(other.id, connection=redis_conn)))
    with pytest.raises(LockBusyError):
        env.process(file_id)  # no job at all (the CLI): waits for the claim to go stale
    result = env.process(file_id, claims=JobMetaClaims(Job.fetch(job.id, connection=redis_conn)))

    assert ("processed", "ready") == (result["outcome"], result["status"])
    row = env.row(file_id)
    assert ("ready", 2) == (row["status"], row["attempts"])
    assert [row["output_key"]] == [o.key for o in env.store.list(env.location.key("processed"))]
    assert [neighbour] == [u.key for u in env.store.list_incomplete_uploads()]
    assert {"audio_file_id": file_id, "token": 2} == Job.fetch(job.id, connection=redis_conn).meta[CLAIM_META_KEY]


def test_a_remembered_claim_taken_over_since_is_left_to_its_new_owner(env: Env, redis_conn: Any) -> None:
    file_id, _ = upload_speech(env)
    job = killed_attempt(env, redis_conn, file_id)
    with psycopg.connect(env.settings.database_url, autocommit=True) as conn:
        conn.execute("UPDATE audio_files SET updated_at = now() - interval '301 seconds' WHERE id = %s", [file_id])
        assert AudioFiles(conn, ("audio_files",)).claim(file_id, stale_after_s=300) is not None  # a live new owner

    with pytest.raises(LockBusyError, match=f"audio file {file_id} is being processed by another worker"):
        env.process(file_id, claims=JobMetaClaims(Job.fetch(job.id, connection=redis_conn)))
    assert ("processing", 2) == (env.row(file_id)["status"], env.row(file_id)["attempts"])


class FlakyStore(LocalStore):
    """Fails reads of one key after some bytes, a given number of times."""

    def __init__(self, root: Path, key: str, failures: int):
        super().__init__(root)
        self.key, self.failures = key, failures

    def iter_get(self, key: str, chunk_size: int = READ_CHUNK_SIZE, *, start: int = 0) -> Iterator[bytes]:
        for i, chunk in enumerate(super().iter_get(key, chunk_size, start=start)):
            if key == self.key and self.failures and i == 1:
                self.failures -= 1
                raise StorageError(f"S3 server error at s3://bucket/{key}: SlowDown")
            yield chunk


def test_transient_storage_error_leaves_the_row_failed_and_retryable(env: Env, tmp_path: Path) -> None:
    data = sig.encode(sig.at_level(sig.noise(44100, 10), -25), 44100, "wav")
    env.upload("uploads/n.wav", data)
    file_id = env.insert("uploads/n.wav")
    env.store = FlakyStore(tmp_path / "audio", env.location.key("uploads/n.wav"), failures=1)

    with pytest.raises(RetryableError, match="SlowDown"):
        env.process(file_id)
    row = env.row(file_id)
    assert row["status"] == "failed"
    assert row["error"].startswith("temporary error, retried while attempts remain: S3 server error")

    assert env.process(file_id)["outcome"] == "processed"  # the retry
    assert (env.row(file_id)["status"], env.row(file_id)["attempts"]) == ("ready", 2)


class NoUploadStore(LocalStore):
    """Reads work; every upload fails as a storage outage would."""

    def open_upload(self, key: str, *, part_size: int = 0, concurrency: int = 4) -> Any:
        raise StorageError(f"S3 server error at s3://bucket/{key}: ServiceUnavailable")


def test_row_is_never_ready_without_its_output(env: Env, tmp_path: Path) -> None:
    file_id, _ = upload_speech(env)
    env.store = NoUploadStore(tmp_path / "audio")
    with pytest.raises(StorageError, match="ServiceUnavailable"):
        env.process(file_id)
    row = env.row(file_id)
    assert (row["status"], row["output_key"]) == ("failed", None)
    assert list(env.store.list(env.location.key("processed"))) == []


def test_enqueue_audio_reaches_redis_from_the_environment(
    redis_url: str, redis_conn: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    from rq import Queue

    from railyard.core.client import enqueue_audio

    monkeypatch.setenv("REDIS_URL", redis_url)
    job = enqueue_audio(7)
    queued = Queue("audio", connection=redis_conn).jobs
    assert [job.id] == [j.id for j in queued]
    assert (
        queued[0].func_name,
        queued[0].kwargs,
        queued[0].timeout,
    ) == ("jobs.audio.process_audio", {"audio_file_id": 7}, 1800)
