"""Pure decisions of the audio job: output rate and channels, gain, limiter, limits, corruption.

No I/O here: each function is a table of cases in tests/unit/test_audio_policy.py.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from jobs.audio.config import OutputFormat

SUPPORTED_RATES_HZ = (11025, 22050, 44100, 48000)  # Yoto keeps these; anything else becomes 44.1 kHz
FALLBACK_RATE_HZ = 44100
OPUS_RATE_HZ = 48000  # Opus always runs at 48 kHz

# Sample peaks are limited this far below the true-peak ceiling: room for the
# inter-sample peaks of resampling and the overshoot of lossy encoding.
LOSSY_HEADROOM_DB = 1.0
# Past this much gain reduction a limiter audibly squashes speech; the track is
# left quieter than the target instead.
MAX_LIMITING_DB = 9.0
LOUDNESS_TOLERANCE_LU = 0.5  # an output further than this from its planned loudness is rendered again
PEAK_CORRECTION_MARGIN_DB = 0.2  # extra room taken when a render overshot the ceiling
TRUNCATION_SHARE = 0.02
TRUNCATION_SLACK_S = 0.1
SILENCE_LUFS = -60.0  # quieter than this, a track is treated as silent
MIN_DURATION_S = 0.4  # one BS.1770 gating block: shorter audio has no integrated loudness
CORRUPT_PACKET_SHARE = 0.01
CORRUPT_PACKETS_TOLERATED = 3

EXTENSIONS: dict[OutputFormat, str] = {"aac": "m4a", "mp3": "mp3", "opus": "opus"}


@dataclass(frozen=True)
class GainPlan:
    """How one track is brought to the target loudness."""

    gain_db: float
    limiter: bool
    limit_dbfs: float  # sample-peak ceiling the limiter holds, when it runs
    shortfall_db: float  # how far below the target the track will stay (0 unless limiting was capped)


def output_sample_rate(source_rate_hz: int, output_format: OutputFormat = "aac") -> int:
    """Supported rates are kept; anything else is resampled to 44.1 kHz (Opus: always 48 kHz)."""
    if output_format == "opus":
        return OPUS_RATE_HZ
    return source_rate_hz if source_rate_hz in SUPPORTED_RATES_HZ else FALLBACK_RATE_HZ


def output_channels(source_channels: int, mono: bool) -> int:
    """Mono stays mono; stereo stays stereo unless downmixing is asked; surround becomes stereo."""
    if mono or source_channels <= 1:
        return 1
    return 2


def plan_gain(loudness_lufs: float, sample_peak_dbfs: float, target_lufs: float, ceiling_dbtp: float) -> GainPlan:
    """Linear gain to the target, with a limiter only where the gain would push peaks past the ceiling.

    The limiter holds sample peaks ``LOSSY_HEADROOM_DB`` below the true-peak ceiling. If
    it would have to take off more than ``MAX_LIMITING_DB``, the gain is lowered instead.
    """
    limit_dbfs = ceiling_dbtp - LOSSY_HEADROOM_DB
    gain_db = target_lufs - loudness_lufs
    overshoot_db = sample_peak_dbfs + gain_db - limit_dbfs
    if overshoot_db <= 0:
        return GainPlan(gain_db=_round(gain_db), limiter=False, limit_dbfs=limit_dbfs, shortfall_db=0.0)
    shortfall_db = max(0.0, overshoot_db - MAX_LIMITING_DB)
    return GainPlan(
        gain_db=_round(gain_db - shortfall_db),
        limiter=True,
        limit_dbfs=limit_dbfs,
        shortfall_db=_round(shortfall_db),
    )


def corrected_plan(
    plan: GainPlan,
    *,
    loudness_before_lufs: float,
    sample_peak_dbfs: float,
    loudness_after_lufs: float,
    true_peak_after_dbtp: float,
    target_lufs: float,
    ceiling_dbtp: float,
) -> GainPlan | None:
    """A second plan when the encoded output missed the first one, or None when it is close enough.

    The encoder's low-pass takes energy away (hiss and noise lose most): the miss is
    added to the gain. Resampling and the encoder's overshoot add to peaks: the
    limiter is set below the level the first render held its sample peaks at, by the
    overshoot and a margin.
    """
    planned_lufs = target_lufs - plan.shortfall_db
    miss_lu = loudness_after_lufs - planned_lufs
    overshoot_db = true_peak_after_dbtp - ceiling_dbtp
    if abs(miss_lu) <= LOUDNESS_TOLERANCE_LU and overshoot_db <= 0:
        return None
    loudness = loudness_before_lufs + (miss_lu if abs(miss_lu) > LOUDNESS_TOLERANCE_LU else 0.0)
    ceiling = ceiling_dbtp
    if overshoot_db > 0:
        held_dbfs = sample_peak_dbfs + plan.gain_db
        if plan.limiter:
            held_dbfs = min(held_dbfs, plan.limit_dbfs)
        limit_dbfs = held_dbfs - overshoot_db - PEAK_CORRECTION_MARGIN_DB
        ceiling = min(ceiling_dbtp, limit_dbfs + LOSSY_HEADROOM_DB)
    return plan_gain(loudness, sample_peak_dbfs, target_lufs, ceiling)


def limit_problem(
    *, size_bytes: int | None = None, duration_s: float | None = None, max_bytes: int, max_duration_s: float
) -> str | None:
    """Why a source is over the limits (a sentence for the row), or None."""
    if size_bytes is not None and size_bytes > max_bytes:
        return (
            f"the file is {_size(size_bytes)}, over the {_size(max_bytes)} limit (AUDIO_MAX_BYTES); "
            "upload a smaller or more compressed file"
        )
    if duration_s is not None and duration_s > max_duration_s:
        return too_long_problem(max_duration_s, duration_s)
    return None


# What a decoder is asked to believe. Past these, a header is lying or the file is not something a
# listener can be given (FFmpeg itself fails on them, some with MemoryError).
MAX_SAMPLE_RATE_HZ = 384_000
MAX_CHANNELS = 8  # 7.1 surround
# Decoded work (samples x channels) a source may cost: a compressed file expands by at most this per
# stored byte (Opus at 6 kbit/s, the most compact real speech, expands ~64x), with a floor for small files.
MAX_DECODED_PER_BYTE = 128
MIN_DECODED_BUDGET = 10 * 60 * 48_000 * 2  # ten minutes of 48 kHz stereo


def format_problem(*, sample_rate_hz: int, channels: int) -> str | None:
    """Why a stream's declared shape cannot be processed (a sentence for the row), or None."""
    if not 0 < sample_rate_hz <= MAX_SAMPLE_RATE_HZ:
        return (
            f"the file claims a sample rate of {sample_rate_hz} Hz, which no real audio has (at most "
            f"{MAX_SAMPLE_RATE_HZ} Hz); the file is damaged or not audio: export it again, e.g. at 44.1 or 48 kHz"
        )
    if not 0 < channels <= MAX_CHANNELS:
        return f"the audio has {channels} channels; at most {MAX_CHANNELS} are supported: export it as mono or stereo"
    return None


def decode_budget(size_bytes: int, max_duration_s: float) -> float:
    """How many samples x channels decoding a source of ``size_bytes`` may cost before it is refused."""
    longest = max_duration_s * MAX_SAMPLE_RATE_HZ * 2
    return min(longest, max(MIN_DECODED_BUDGET, size_bytes * MAX_DECODED_PER_BYTE))


def work_problem(size_bytes: int, budget: float, expected: float | None = None) -> str:
    """The sentence for a source that expands to more decoded audio than its size can justify."""
    amount = f" to {expected / 1e9:.1f} billion samples" if expected else ""
    return (
        f"the {_size(size_bytes)} file expands{amount}, more than {budget / 1e9:.2f} billion samples (all channels) "
        "that a file of its size may cost to decode (an unusually high sample rate, or long stretches of digital "
        "silence); export it at 44.1 or 48 kHz, or split it into shorter tracks"
    )


def undecodable_problem(reason: str) -> str:
    """The sentence for a file FFmpeg refused part-way (decoder or filter graph)."""
    return (
        f"the audio could not be decoded and processed ({reason}); the file is damaged or in an unusual format: "
        "export it again as MP3, M4A, WAV or FLAC"
    )


def too_long_problem(max_duration_s: float, duration_s: float | None = None) -> str:
    """The sentence for audio over the duration limit (its full length is not always known)."""
    limit = _duration(max_duration_s)
    if duration_s:
        over = f"is {_duration(duration_s)} long, over the {limit} limit"
    else:
        over = f"is longer than the {limit} limit"
    return f"the audio {over} (AUDIO_MAX_DURATION_S); split it into shorter tracks"


def content_problem(*, samples: int, sample_rate_hz: int, loudness_lufs: float) -> str | None:
    """Why decoded audio cannot be normalised (a sentence for the row), or None."""
    if samples <= 0:
        return "no audio could be decoded from the file (damaged, or not audio); upload a file that plays"
    duration_s = samples / sample_rate_hz
    if duration_s < MIN_DURATION_S:
        return f"the audio is {duration_s:.2f} s long, too short to measure its loudness (at least {MIN_DURATION_S} s)"
    if not math.isfinite(loudness_lufs) or loudness_lufs < SILENCE_LUFS:
        return f"the audio is silent (quieter than {SILENCE_LUFS:g} LUFS); check the recording"
    return None


def too_corrupt(bad_packets: int, packets: int) -> bool:
    """A few undecodable packets are skipped (players do the same); more means a damaged file."""
    if bad_packets <= CORRUPT_PACKETS_TOLERATED:
        return False
    return bad_packets > CORRUPT_PACKET_SHARE * max(packets, 1)


def truncated(declared_s: float | None, decoded_s: float) -> bool:
    """Whether much less audio decoded than an exact container length (FLAC, WAV, MP4, Ogg) promised."""
    if declared_s is None:
        return False
    return decoded_s < declared_s * (1 - TRUNCATION_SHARE) - TRUNCATION_SLACK_S


def output_prefix(audio_file_id: str) -> str:
    """The folder of every output of one file, relative to AUDIO_STORAGE_URL."""
    return f"processed/{audio_file_id}"


def output_key(audio_file_id: str, source_sha256: str, output_format: OutputFormat) -> str:
    """Where the processed file goes, relative to AUDIO_STORAGE_URL; one key per source content."""
    return f"{output_prefix(audio_file_id)}/{source_sha256[:16]}.{EXTENSIONS[output_format]}"


def _round(value: float) -> float:
    return round(value, 2)


def _size(size_bytes: int) -> str:
    for unit, scale in (("GB", 1_000_000_000), ("MB", 1_000_000), ("kB", 1_000)):
        if size_bytes >= scale:
            return f"{size_bytes / scale:.1f} {unit}"
    return f"{size_bytes} bytes"


def _duration(seconds: float) -> str:
    minutes, secs = divmod(round(seconds), 60)
    hours, minutes = divmod(minutes, 60)
    return f"{hours}:{minutes:02d}:{secs:02d}" if hours else f"{minutes}:{secs:02d}"
