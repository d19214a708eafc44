"""The audio job's pure decisions, case by case."""

from __future__ import annotations

import pytest

from jobs.audio import policy
from jobs.audio.policy import GainPlan


@pytest.mark.parametrize(
    ("source_hz", "output_format", "expected_hz"),
    [
        (8000, "aac", 44100),
        (11025, "aac", 11025),
        (16000, "aac", 44100),
        (22050, "aac", 22050),
        (32000, "mp3", 44100),
        (44100, "aac", 44100),
        (48000, "aac", 48000),
        (88200, "aac", 44100),
        (96000, "aac", 44100),
        (44100, "opus", 48000),
        (11025, "opus", 48000),
    ],
)
def test_output_sample_rate(source_hz: int, output_format: policy.OutputFormat, expected_hz: int) -> None:
    """Yoto's rates are kept, others become 44.1 kHz; Opus is always 48 kHz."""
    assert expected_hz == policy.output_sample_rate(source_hz, output_format)


@pytest.mark.parametrize(
    ("source_channels", "mono", "expected"),
    [(1, False, 1), (2, False, 2), (6, False, 2), (1, True, 1), (2, True, 1), (6, True, 1)],
)
def test_output_channels(source_channels: int, mono: bool, expected: int) -> None:
    assert expected == policy.output_channels(source_channels, mono)


@pytest.mark.parametrize(
    ("loudness", "sample_peak", "target", "ceiling", "expected"),
    [
        # quiet speech with headroom: plain gain
        (-30.0, -18.0, -16.0, -1.0, GainPlan(14.0, False, -2.0, 0.0)),
        # too loud: plain cut, never a limiter
        (-9.0, 0.0, -16.0, -1.0, GainPlan(-7.0, False, -2.0, 0.0)),
        # gain lands peaks exactly on the limit: no limiter
        (-20.0, -6.0, -16.0, -1.0, GainPlan(4.0, False, -2.0, 0.0)),
        # peaks would land 3 dB over the limit: limiter
        (-25.0, -8.0, -16.0, -1.0, GainPlan(9.0, True, -2.0, 0.0)),
        # limiting of exactly MAX_LIMITING_DB is still allowed
        (-30.0, -7.0, -16.0, -1.0, GainPlan(14.0, True, -2.0, 0.0)),
        # peaks 12 dB over: 9 dB limited, the rest taken off the gain
        (-30.0, -4.0, -16.0, -1.0, GainPlan(11.0, True, -2.0, 3.0)),
        # another target and ceiling
        (-20.0, -3.0, -14.0, -2.0, GainPlan(6.0, True, -3.0, 0.0)),
    ],
)
def test_plan_gain(loudness: float, sample_peak: float, target: float, ceiling: float, expected: GainPlan) -> None:
    assert expected == policy.plan_gain(loudness, sample_peak, target, ceiling)


PLAIN = GainPlan(10.0, False, -2.0, 0.0)
LIMITED = GainPlan(10.0, True, -2.0, 0.0)


@pytest.mark.parametrize(
    ("plan", "sample_peak", "after_lufs", "after_tp", "expected"),
    [
        (PLAIN, -15.0, -16.0, -3.0, None),  # on target
        (PLAIN, -15.0, -16.5, -3.0, None),  # within tolerance
        (PLAIN, -15.0, -15.6, -1.0, None),  # a peak exactly at the ceiling is fine
        (PLAIN, -15.0, -16.8, -4.0, GainPlan(10.8, False, -2.0, 0.0)),  # the encoder took 0.8 LU away
        (PLAIN, -15.0, -15.2, -4.0, GainPlan(9.2, False, -2.0, 0.0)),  # came out louder
        (PLAIN, -12.5, -16.8, -1.5, GainPlan(10.8, True, -2.0, 0.0)),  # the extra gain needs the limiter
        # peaks held at -5 dBFS overshot to -0.5 dBTP: limit 0.5 + 0.2 dB under -5
        (PLAIN, -15.0, -16.0, -0.5, GainPlan(10.0, True, -5.7, 0.0)),
        # the limiter held -2 dBFS and the output reached -0.6 dBTP
        (LIMITED, -10.0, -16.2, -0.6, GainPlan(10.0, True, -2.6, 0.0)),
        # a capped plan is judged against where it meant to land, not the target
        (GainPlan(11.0, True, -2.0, 3.0), -4.0, -19.2, -2.5, None),
    ],
)
def test_corrected_plan(
    plan: GainPlan, sample_peak: float, after_lufs: float, after_tp: float, expected: GainPlan | None
) -> None:
    """Sources measured at -26 LUFS (capped case: -30), target -16 LUFS, ceiling -1 dBTP."""
    actual = policy.corrected_plan(
        plan,
        loudness_before_lufs=-26.0 if plan.shortfall_db == 0 else -30.0,
        sample_peak_dbfs=sample_peak,
        loudness_after_lufs=after_lufs,
        true_peak_after_dbtp=after_tp,
        target_lufs=-16.0,
        ceiling_dbtp=-1.0,
    )
    assert expected == actual


@pytest.mark.parametrize(
    ("size", "duration", "expected"),
    [
        (999_999_999, 17_999.0, None),
        (1_000_000_000, 18_000.0, None),
        (1_200_000_000, 60.0, "the file is 1.2 GB, over the 1.0 GB limit (AUDIO_MAX_BYTES); upload a smaller"),
        (10, 18_001.0, "the audio is 5:00:01 long, over the 5:00:00 limit (AUDIO_MAX_DURATION_S)"),
        (None, 75.0, None),
    ],
)
def test_limit_problem(size: int | None, duration: float, expected: str | None) -> None:
    actual = policy.limit_problem(size_bytes=size, duration_s=duration, max_bytes=1_000_000_000, max_duration_s=18_000)
    if expected is None:
        assert actual is None
    else:
        assert actual is not None and actual.startswith(expected)


def test_too_long_problem_without_a_known_length() -> None:
    expected = "the audio is longer than the 0:02 limit (AUDIO_MAX_DURATION_S); split it into shorter tracks"
    assert expected == policy.too_long_problem(2.0)


@pytest.mark.parametrize(
    ("samples", "loudness", "expected_start"),
    [
        (44100 * 3, -23.0, None),
        (0, -70.0, "no audio could be decoded from the file"),
        (44100 // 4, -20.0, "the audio is 0.25 s long, too short"),
        (44100 * 3, -70.0, "the audio is silent"),
        (44100 * 3, -60.5, "the audio is silent"),
        (44100 * 3, float("-inf"), "the audio is silent"),
        (44100 * 3, -59.5, None),
    ],
)
def test_content_problem(samples: int, loudness: float, expected_start: str | None) -> None:
    actual = policy.content_problem(samples=samples, sample_rate_hz=44100, loudness_lufs=loudness)
    if expected_start is None:
        assert actual is None
    else:
        assert actual is not None and actual.startswith(expected_start)


@pytest.mark.parametrize(
    ("bad", "total", "expected"),
    [(0, 100, False), (3, 10, False), (4, 1000, False), (4, 100, True), (11, 1000, True), (50, 0, True)],
)
def test_too_corrupt(bad: int, total: int, expected: bool) -> None:
    """A handful of bad packets is skipped; more than 1% means the file is damaged."""
    assert expected == policy.too_corrupt(bad, total)


@pytest.mark.parametrize(
    ("declared", "decoded", "expected"),
    [(None, 1.0, False), (10.0, 10.0, False), (10.0, 9.71, False), (10.0, 9.68, True), (4.0, 1.6, True)],
)
def test_truncated(declared: float | None, decoded: float, expected: bool) -> None:
    """2% and 0.1 s of slack, for encoders' padding and rounding."""
    assert expected == policy.truncated(declared, decoded)


@pytest.mark.parametrize(
    ("output_format", "expected"),
    [
        ("aac", "processed/42/0123456789abcdef.m4a"),
        ("mp3", "processed/42/0123456789abcdef.mp3"),
        ("opus", "processed/42/0123456789abcdef.opus"),
    ],
)
def test_output_key(output_format: policy.OutputFormat, expected: str) -> None:
    assert expected == policy.output_key("42", "0123456789abcdef" + "0" * 48, output_format)
