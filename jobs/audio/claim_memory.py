"""The claim a job made on a row, remembered across its attempts in the RQ job's meta.

rq starts a job's next attempt only after the previous one failed or its worker was
found dead (abandoned), so a claim recorded by an earlier attempt of the same job
belongs to an attempt that is over. Its retry takes that claim back at once instead of
waiting ``AUDIO_STALE_AFTER_S`` for the dead attempt's heartbeats to go stale, which a
short retry backoff would not outlast.
"""

from __future__ import annotations

from typing import Any, Protocol

from rq import get_current_job
from rq.job import Job

META_KEY = "railyard_audio_claim"


class ClaimMemory(Protocol):
    def recall(self, file_id: str) -> int | None:
        """The token of the claim an earlier attempt made on ``file_id``, if any."""

    def remember(self, file_id: str, token: int) -> None:
        """Record the claim this attempt holds, before any work is done under it."""


class JobMetaClaims:
    """A :class:`ClaimMemory` kept in one RQ job's meta (saved at once: the attempt may be killed next)."""

    def __init__(self, job: Job):
        self.job = job

    @classmethod
    def of_current_job(cls) -> JobMetaClaims | None:
        """For the job running in this work horse; None outside a worker (the CLI)."""
        job = get_current_job()
        return None if job is None else cls(job)

    def recall(self, file_id: str) -> int | None:
        entry: Any = self.job.meta.get(META_KEY)
        if isinstance(entry, dict) and entry.get("audio_file_id") == file_id and isinstance(entry.get("token"), int):
            return int(entry["token"])
        return None

    def remember(self, file_id: str, token: int) -> None:
        self.job.meta[META_KEY] = {"audio_file_id": file_id, "token": token}
        self.job.save_meta()
