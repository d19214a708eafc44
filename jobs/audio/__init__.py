"""Audio processing: loudness-normalised, Yoto-ready audio from uploaded files.

Other services insert a row in the audio files table, upload the source under
AUDIO_STORAGE_URL and enqueue ``jobs.audio.process_audio(audio_file_id)`` on queue
``audio``. See docs/audio.md.
"""

from __future__ import annotations

from typing import Any

from jobs.audio.config import AudioConfig
from railyard.core.settings import Settings


def process_audio(audio_file_id: int | str) -> dict[str, Any]:
    """RQ job: measure, normalise and encode one audio file, and record the outcome in its row."""
    from jobs.audio.claim_memory import JobMetaClaims
    from jobs.audio.process import process_file  # PyAV loads only where audio is processed

    claims = JobMetaClaims.of_current_job()
    return process_file(Settings.from_env(), AudioConfig.from_env(), audio_file_id, claims=claims).as_dict()
