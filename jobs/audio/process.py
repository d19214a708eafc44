"""Process one audio file: claim its row, measure, render, check, upload, record.

The order gives the exactly-once effect: the row is claimed with a conditional
UPDATE; the output object is complete in storage before the row says ``ready``; a
failure of any kind leaves the row ``failed`` (or ``rejected``) with its reason, never
``processing``. A worker killed outright leaves its row ``processing``: the same job's
next attempt takes it back at once (the claim is remembered in the job, see
``jobs.audio.claim_memory``); any other job takes it over once ``AUDIO_STALE_AFTER_S`` has
passed without a heartbeat. Whoever takes a row over first discards the partial
outputs the dead attempt left, so the row's output is the only object it leaves.
"""

from __future__ import annotations

import hashlib
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Literal

import psycopg
import structlog

from jobs.audio import policy
from jobs.audio.claim_memory import ClaimMemory
from jobs.audio.config import AudioConfig
from jobs.audio.errors import AudioInputError, AudioLimitError, ClaimLostError
from jobs.audio.files import AudioFile, AudioFiles, Result
from jobs.audio.pipeline import normalise
from railyard.core.errors import LockBusyError, NotFoundError, RailyardError, RetryableError, first_line
from railyard.core.settings import Settings, redact_url
from railyard.core.storage import ObjectStore, StorageLocation, choose_part_size, open_store

log = structlog.get_logger()

HEARTBEAT_INTERVAL_S = 30.0
CONNECT_TIMEOUT_S = 10
UPLOAD_CHUNK_SIZE = 1024 * 1024

OutcomeKind = Literal["processed", "skipped", "failed", "rejected"]


@dataclass(frozen=True)
class Outcome:
    """What one run did; its dict is the RQ job's result."""

    audio_file_id: str
    outcome: OutcomeKind
    status: str  # the row's status afterwards
    detail: str | None = None
    result: dict[str, Any] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def process_file(
    settings: Settings,
    audio: AudioConfig,
    audio_file_id: int | str,
    *,
    store: ObjectStore | None = None,
    claims: ClaimMemory | None = None,
) -> Outcome:
    """Process ``audio_file_id`` with storage and database from the settings.

    ``claims`` remembers this job's claim across its attempts (the worker passes the RQ
    job's); without it a row left ``processing`` is taken over only once stale.
    """
    location = StorageLocation.parse(audio.storage_url)
    store = store or open_store(location, addressing_style=settings.s3_addressing_style)
    with _connect(settings.database_url) as conn:
        files = AudioFiles(conn, audio.table_parts)
        return Processor(files, store, location, audio, claims).run(str(audio_file_id))


@contextmanager
def _connect(database_url: str) -> Iterator[psycopg.Connection[Any]]:
    try:
        conn = psycopg.connect(database_url, autocommit=True, connect_timeout=CONNECT_TIMEOUT_S)
    except psycopg.OperationalError as exc:
        reason = first_line(exc)
        raise RetryableError(f"cannot connect to the database at {redact_url(database_url)}: {reason}") from exc
    with conn:
        yield conn


class Heartbeat:
    """Called often from the decode loops; touches the row every ``interval_s``."""

    def __init__(
        self,
        files: AudioFiles,
        file_id: str,
        token: int,
        interval_s: float = HEARTBEAT_INTERVAL_S,
        clock: Callable[[], float] = time.monotonic,
    ):
        self._files, self._id, self._token = files, file_id, token
        self._interval_s, self._clock = interval_s, clock
        self._last = clock()

    def __call__(self) -> None:
        now = self._clock()
        if now - self._last < self._interval_s:
            return
        self._last = now
        if not self._files.heartbeat(self._id, self._token):
            raise ClaimLostError(f"audio file {self._id} was taken over by another worker; this attempt stopped")


class Processor:
    def __init__(
        self,
        files: AudioFiles,
        store: ObjectStore,
        location: StorageLocation,
        audio: AudioConfig,
        claims: ClaimMemory | None = None,
    ):
        self.files = files
        self.store = store
        self.location = location
        self.audio = audio
        self.claims = claims

    def run(self, file_id: str) -> Outcome:
        with structlog.contextvars.bound_contextvars(audio_file_id=file_id):
            return self._run(file_id)

    def _run(self, file_id: str) -> Outcome:
        row = self.files.get(file_id)
        if row is None:
            raise NotFoundError(
                f"no audio file with id {file_id!r} in table {self.audio.table}; check the id against that table"
            )
        replacing: str | None = None
        if row.status == "ready":
            skip_reason = self._still_ready(row)
            if skip_reason:
                log.info("audio_skipped", reason=skip_reason)
                return Outcome(file_id, "skipped", "ready", skip_reason, {"output_key": row.output_key})
            replacing = row.source_sha256
        own_token = self.claims.recall(file_id) if self.claims is not None else None
        claimed = self.files.claim(
            file_id, stale_after_s=self.audio.stale_after_s, replacing_sha256=replacing, own_token=own_token
        )
        if claimed is None:
            return self._not_claimed(file_id)
        token = claimed.attempts
        started = time.monotonic()
        try:
            if self.claims is not None:
                # Before anything else, the log line included: a retry of this job takes the claim back at once
                # only if it was remembered. Killed before this line, the retry waits for AUDIO_STALE_AFTER_S.
                self.claims.remember(file_id, token)
            log.info("audio_claimed", attempt=token, previous_status=row.status)
            if row.status == "processing":
                self._discard_partial_outputs(file_id)
            result = self._process(claimed, token)
        except AudioLimitError as exc:
            return self._finish(file_id, token, "rejected", exc)
        except AudioInputError as exc:
            return self._finish(file_id, token, "failed", exc)
        except ClaimLostError:
            raise
        except BaseException as exc:
            self._release(file_id, token, exc)
            raise
        if not self.files.finish_ready(file_id, token, result):
            raise ClaimLostError(f"audio file {file_id} was taken over by another worker before it was recorded")
        elapsed_s = time.monotonic() - started
        log.info(
            "audio_ready",
            output_key=result.output_key,
            duration_s=result.duration_ms / 1000,
            loudness_before_lufs=result.loudness_before_lufs,
            loudness_after_lufs=result.loudness_after_lufs,
            true_peak_after_dbtp=result.true_peak_after_dbtp,
            gain_db=result.gain_db,
            elapsed_s=round(elapsed_s, 3),
            speed_x=round(result.duration_ms / 1000 / elapsed_s, 1) if elapsed_s > 0 else None,
        )
        if claimed.output_key and claimed.output_key != result.output_key:
            self._delete_quietly(claimed.output_key)
        summary = asdict(result)
        del summary["waveform_peaks"]  # 200 numbers belong in the row, not in job results
        return Outcome(file_id, "processed", "ready", None, summary)

    def _still_ready(self, row: AudioFile) -> str | None:
        """Why a ``ready`` row needs no work, or None when its source changed or its output is gone."""
        if not row.output_key or self.store.head(self.location.key(row.output_key)) is None:
            return None
        try:
            digest = hashlib.sha256()
            for chunk in self.store.iter_get(self.location.key(row.source_key)):
                digest.update(chunk)
        except NotFoundError:
            return "already processed; the source is no longer stored"
        if digest.hexdigest() == row.source_sha256:
            return "already processed from the same source (sha256 unchanged)"
        return None

    def _not_claimed(self, file_id: str) -> Outcome:
        current = self.files.get(file_id)
        if current is None:
            raise NotFoundError(f"audio file {file_id!r} was deleted while this job started")
        if current.status == "ready":
            log.info("audio_skipped", reason="processed by another worker")
            reason = "processed by another worker"
            return Outcome(file_id, "skipped", "ready", reason, {"output_key": current.output_key})
        raise LockBusyError(
            f"audio file {file_id} is being processed by another worker (attempt {current.attempts}); "
            f"if that worker died, its claim expires after {self.audio.stale_after_s} s and a retry takes over"
        )

    def _process(self, row: AudioFile, token: int) -> Result:
        audio = self.audio
        key = self.location.key(row.source_key)
        info = self.store.head(key)
        if info is None:
            raise AudioInputError(
                f"the source {row.source_key!r} is not in {self.location}; upload it before enqueueing"
            )
        if info.size == 0:
            raise AudioInputError("the file is empty (0 bytes); upload it again")
        over = policy.limit_problem(
            size_bytes=info.size, max_bytes=audio.max_bytes, max_duration_s=audio.max_duration_s
        )
        if over:
            raise AudioLimitError(over)
        tick = Heartbeat(self.files, row.id, token)
        with tempfile.TemporaryDirectory(prefix="railyard-audio-") as tmp:
            out_path = Path(tmp) / f"output.{policy.EXTENSIONS[audio.output_format]}"
            done = normalise(self.store, key, info.size, audio, out_path, tick)
            out_key = policy.output_key(row.id, done.sha256, audio.output_format)
            size = self._upload(out_path, self.location.key(out_key))
        log.info("audio_uploaded", output_key=out_key, bytes=size)
        measured, analysis = done.measured, done.analysis
        return Result(
            source_sha256=done.sha256,
            source_bytes=info.size,
            source_format=measured.info.container.split(",")[0],
            output_key=out_key,
            format=audio.output_format,
            duration_ms=analysis.duration_ms,
            sample_rate=analysis.sample_rate,
            channels=analysis.channels,
            loudness_before_lufs=round(measured.loudness_lufs, 2),
            loudness_after_lufs=round(analysis.loudness_lufs, 2),
            true_peak_after_dbtp=round(analysis.true_peak_dbtp, 2),
            gain_db=done.plan.gain_db,
            waveform_peaks=analysis.peaks,
        )

    def _upload(self, path: Path, key: str) -> int:
        size = path.stat().st_size
        with self.store.open_upload(key, part_size=choose_part_size(size)) as upload, path.open("rb") as source:
            while chunk := source.read(UPLOAD_CHUNK_SIZE):
                upload.write(chunk)
            upload.complete()
        return size

    def _finish(self, file_id: str, token: int, status: Literal["failed", "rejected"], exc: Exception) -> Outcome:
        reason = str(exc)
        if not self.files.finish(file_id, token, status, reason):
            raise ClaimLostError(f"audio file {file_id} was taken over by another worker before it was recorded")
        log.warning(f"audio_{status}", error=reason)
        return Outcome(file_id, status, status, reason)

    def _release(self, file_id: str, token: int, exc: BaseException) -> None:
        """Leave the row ``failed`` with the reason; the job's retry (if any) claims it again."""
        reason = " ".join(str(exc).split()) or type(exc).__name__
        if isinstance(exc, RailyardError) and exc.retryable:
            reason = f"temporary error, retried while attempts remain: {reason}"
        elif not isinstance(exc, RailyardError):
            reason = f"internal error ({type(exc).__name__}): {reason}"
        try:
            self.files.finish(file_id, token, "failed", reason)
        except (RailyardError, psycopg.Error) as db_exc:
            # The row stays `processing`: this job's next attempt takes it back, any other once it is stale.
            log.warning("audio_release_failed", error=str(db_exc))

    def _discard_partial_outputs(self, file_id: str) -> None:
        """Abort the uploads a dead attempt left under this file's outputs; it can no longer complete them."""
        prefix = self.location.key(policy.output_prefix(file_id)) + "/"  # so file 1 never touches file 10's
        for upload in list(self.store.list_incomplete_uploads(prefix)):
            self.store.abort_incomplete_upload(upload)
            log.info("audio_partial_output_discarded", output_key=upload.key)

    def _delete_quietly(self, key: str) -> None:
        try:
            self.store.delete(self.location.key(key))
        except RailyardError as exc:
            log.warning("audio_old_output_not_deleted", output_key=key, error=str(exc))
