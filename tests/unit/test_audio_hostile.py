"""Hostile audio through the whole media pipeline: generated WAV and FLAC headers with extreme fields,
and random bytes under audio names. Each ends processed, or refused with a sentence for the uploader
(AudioInputError: the row becomes ``failed``; AudioLimitError: ``rejected``), within a time and
memory bound; nothing else escapes.
"""

from __future__ import annotations

import resource
import time
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from jobs.audio import policy
from jobs.audio.config import AudioConfig
from jobs.audio.errors import AudioInputError, AudioLimitError
from jobs.audio.pipeline import normalise
from railyard.core.storage.local import LocalStore
from tests import audio_signals as sig

TIME_BOUND_S = 10.0
RSS_GROWTH_BOUND_KB = 512 * 1024  # peak resident set may grow by at most this much over the whole test
AUDIO = AudioConfig(max_duration_s=600)
U32 = st.integers(0, 2**32 - 1)
U16 = st.integers(0, 2**16 - 1)


WAVS = st.builds(
    sig.wav_with_header,
    tag=st.sampled_from([1, 3, 0xFFFE, 0, 2, 0x55, 0xFFFF]),
    channels=st.sampled_from([0, 1, 2, 3, 8, 9, 64, 255, 65535]),
    rate=st.sampled_from([0, 1, 8000, 44100, 192000, 384001, 2**31 - 1, 2**32 - 1]),
    byte_rate=U32,
    align=U16,
    bits=st.sampled_from([0, 1, 8, 16, 24, 32, 64, 65535]),
    riff=U32,
    data=st.sampled_from([0, 8000, 2**31, 2**32 - 1]),
)
FLACS = st.builds(
    sig.flac_with_streaminfo,
    rate=st.sampled_from([0, 1, 8000, 44100, 192000, 655350, 2**20 - 1]),
    channels=st.integers(1, 8),
    bits=st.sampled_from([4, 8, 16, 24, 32]),
    total=st.sampled_from([0, 1, 44100 * 60, 2**36 - 1]),
    min_block=U16,
    max_block=U16,
    tail=st.binary(max_size=512),
)
RANDOM = st.binary(min_size=1, max_size=4096)


def run(data: bytes, tmp: Path, name: str) -> str:
    """Normalise ``data``; return which documented state it ended in."""
    store = LocalStore(tmp / "store")
    store.put_bytes(name, data)
    try:
        normalise(store, name, len(data), AUDIO, tmp / "out.m4a")
    except AudioLimitError as exc:
        assert str(exc), "a refusal carries a sentence"
        return "rejected"
    except AudioInputError as exc:
        assert str(exc), "a refusal carries a sentence"
        return "failed"
    return "processed"


def check(data: bytes, tmp: Path, name: str) -> None:
    t0 = time.monotonic()
    state = run(data, tmp, name)
    assert state in ("processed", "failed", "rejected")
    assert time.monotonic() - t0 < TIME_BOUND_S


@pytest.fixture(scope="module")
def rss_before() -> int:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss


FUZZ = settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])


@FUZZ
@given(data=WAVS)
def test_wav_headers_with_extreme_fields(tmp_path: Path, data: bytes, rss_before: int) -> None:
    check(data, tmp_path, "upload.wav")
    assert resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - rss_before < RSS_GROWTH_BOUND_KB


@FUZZ
@given(data=FLACS)
def test_flac_headers_with_extreme_fields(tmp_path: Path, data: bytes, rss_before: int) -> None:
    check(data, tmp_path, "upload.flac")
    assert resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - rss_before < RSS_GROWTH_BOUND_KB


@FUZZ
@given(data=RANDOM, name=st.sampled_from(["a.mp3", "a.m4a", "a.wav", "a.flac", "a.ogg", "a.opus"]))
def test_random_bytes_under_audio_names(tmp_path: Path, data: bytes, name: str, rss_before: int) -> None:
    check(data, tmp_path, name)
    assert resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - rss_before < RSS_GROWTH_BOUND_KB


@pytest.mark.parametrize(
    ("fields", "state", "fragment"),
    [
        ({"rate": 2**31 - 1}, "failed", "claims a sample rate of 2147483647 Hz"),
        ({"channels": 64}, "rejected", "the audio has 64 channels; at most 8 are supported"),
    ],
)
def test_the_headers_that_used_to_be_internal_errors(tmp_path: Path, fields: dict[str, int], state: str, fragment):
    base = {
        "tag": 1,
        "channels": 2,
        "rate": 44100,
        "byte_rate": 176400,
        "align": 4,
        "bits": 16,
        "riff": 0,
        "data": 8000,
    }
    data = sig.wav_with_header(**{**base, **fields})
    store = LocalStore(tmp_path / "store")
    store.put_bytes("x.wav", data)
    error = AudioLimitError if state == "rejected" else AudioInputError
    with pytest.raises(error, match=fragment):
        normalise(store, "x.wav", len(data), AUDIO, tmp_path / "out.m4a")


def test_a_small_file_that_decodes_to_hours_is_rejected_before_it_is_decoded(tmp_path: Path) -> None:
    """A FLAC stating 4.9 hours at 192 kHz in a few bytes: refused from its header, at once."""
    data = sig.flac_with_streaminfo(
        rate=192000, channels=2, bits=16, total=int(4.9 * 3600 * 192000), min_block=4096, max_block=4096, tail=b""
    )
    store = LocalStore(tmp_path / "store")
    store.put_bytes("bomb.flac", data)
    t0 = time.monotonic()
    with pytest.raises(AudioLimitError, match=r"file expands to 6.8 billion samples, more than 0.06 billion"):
        normalise(store, "bomb.flac", len(data), AudioConfig(), tmp_path / "out.m4a")
    assert time.monotonic() - t0 < 2


@pytest.mark.parametrize(
    ("size", "expected"),
    [
        (1_000, policy.MIN_DECODED_BUDGET),
        (1_000_000, 1_000_000 * policy.MAX_DECODED_PER_BYTE),
        (10**12, 600 * policy.MAX_SAMPLE_RATE_HZ * 2),
    ],
)
def test_decode_budget(size: int, expected: float) -> None:
    assert expected == policy.decode_budget(size, 600)
