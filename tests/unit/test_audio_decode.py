"""Decoding limits that do not depend on what the container claims."""

from __future__ import annotations

import io

import pytest

from jobs.audio.decode import AudioDecoder
from jobs.audio.errors import AudioLimitError
from tests import audio_signals as sig


class Stream:
    """A file that can only be read forwards, like a pipe: FFmpeg cannot look at its end."""

    def __init__(self, data: bytes):
        self._data = io.BytesIO(data)

    def read(self, size: int) -> bytes:
        return self._data.read(size)


def test_duration_limit_is_enforced_while_decoding_when_no_length_is_declared() -> None:
    data = sig.encode(sig.at_level(sig.tone(48000, 4), -20), 48000, "opus")
    with AudioDecoder(Stream(data), max_duration_s=2.0) as decoder:
        assert decoder.info.declared_duration_s is None
        with pytest.raises(AudioLimitError, match=r"^the audio is longer than the 0:02 limit \(AUDIO_MAX_DURATION_S\)"):
            for _ in decoder.frames():
                pass
        assert 2.0 < decoder.stats.samples / 48000 < 2.1


def test_mp4_padding_after_the_stated_length_is_dropped() -> None:
    """AAC pads its last frame; the MP4 edit list says where the audio ends, and decoding stops there."""
    data = sig.encode(sig.at_level(sig.tone(8000, 3), -20), 8000, "m4a")
    with AudioDecoder(io.BytesIO(data), max_duration_s=10) as decoder:
        total = sum(frame.samples for frame in decoder.frames())
    assert total == 3 * 8000
