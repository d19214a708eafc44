"""The media work on one stored source: measure, plan, render, check, render again if needed.

Streams from the storage layer twice (three times when a correction is needed) and
writes the encoded output to ``out_path``. Knows nothing of rows or claims.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import av.error
import structlog

from jobs.audio import policy
from jobs.audio.analyse import OutputAnalysis, analyse
from jobs.audio.config import AudioConfig
from jobs.audio.decode import Tick
from jobs.audio.errors import AudioInputError
from jobs.audio.measure import Measurement, measure
from jobs.audio.reader import SourceChangedError, StorageReader
from jobs.audio.render import RenderSpec, render
from railyard.core.errors import RailyardError
from railyard.core.storage import ObjectStore

log = structlog.get_logger()


@dataclass(frozen=True)
class Normalised:
    sha256: str
    measured: Measurement
    plan: policy.GainPlan
    analysis: OutputAnalysis
    renders: int


def normalise(
    store: ObjectStore, key: str, size: int, audio: AudioConfig, out_path: Path, tick: Tick | None = None
) -> Normalised:
    """Normalise the object ``key`` (``size`` bytes) into ``out_path``.

    Whatever FFmpeg's decoders and filter graphs refuse ends as AudioInputError with a
    sentence for the uploader: the file is at fault, not the job.
    """
    try:
        return _normalise(store, key, size, audio, out_path, tick)
    except RailyardError:
        raise
    except (av.error.FFmpegError, MemoryError, ValueError, OverflowError, ArithmeticError) as exc:
        # e.g. a MemoryError configuring a filter graph for an absurd header, an invalid argument
        raise AudioInputError(policy.undecodable_problem(_reason(exc))) from exc


def _reason(exc: BaseException) -> str:
    text = " ".join(str(exc).split())
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


def _normalise(
    store: ObjectStore, key: str, size: int, audio: AudioConfig, out_path: Path, tick: Tick | None
) -> Normalised:

    def shape(rate: int, channels: int) -> tuple[int, int]:
        return policy.output_sample_rate(rate, audio.output_format), policy.output_channels(channels, audio.mono)

    with StorageReader(store, key, size) as reader:
        measured = measure(
            reader,
            shape=shape,
            max_duration_s=audio.max_duration_s,
            tick=tick,
            max_work=policy.decode_budget(size, audio.max_duration_s),
            size_bytes=size,
        )
        sha256 = reader.sha256()
    check_content(measured)
    log.info(
        "audio_measured",
        source_format=measured.info.container,
        codec=measured.info.codec,
        duration_s=round(measured.duration_s, 3),
        loudness_lufs=measured.loudness_lufs,
        sample_peak_dbfs=round(measured.sample_peak_dbfs, 2),
        bad_packets=measured.stats.bad_packets,
    )
    plan = policy.plan_gain(measured.loudness_lufs, measured.sample_peak_dbfs, audio.target_lufs, audio.true_peak_dbtp)

    def render_once(plan: policy.GainPlan) -> OutputAnalysis:
        spec = RenderSpec(
            gain_db=plan.gain_db,
            limiter=plan.limiter,
            limit_dbfs=plan.limit_dbfs,
            sample_rate=measured.output_rate,
            channels=measured.output_channels,
            output_format=audio.output_format,
            bitrate_kbps=audio.bitrate_kbps,
        )
        with StorageReader(store, key, size) as reader:
            written = render(reader, spec, out_path, max_duration_s=audio.max_duration_s, tick=tick)
            if reader.sha256() != sha256:
                raise SourceChangedError(f"the source {key!r} changed while it was being processed")
        return analyse(out_path, expected_samples=written, tick=tick)

    analysis = render_once(plan)
    correct = _corrector(measured, audio)
    correction = correct(plan, analysis)
    if correction is None:
        return Normalised(sha256, measured, plan, analysis, renders=1)
    log.info(
        "audio_render_corrected",
        loudness_after_lufs=analysis.loudness_lufs,
        true_peak_after_dbtp=round(analysis.true_peak_dbtp, 2),
        gain_db=plan.gain_db,
        new_gain_db=correction.gain_db,
        limiter=correction.limiter,
    )
    analysis = render_once(correction)
    if correct(correction, analysis) is not None:
        log.warning(
            "audio_off_target",
            loudness_after_lufs=analysis.loudness_lufs,
            true_peak_after_dbtp=round(analysis.true_peak_dbtp, 2),
        )
    return Normalised(sha256, measured, correction, analysis, renders=2)


def _corrector(
    measured: Measurement, audio: AudioConfig
) -> Callable[[policy.GainPlan, OutputAnalysis], policy.GainPlan | None]:
    def correct(plan: policy.GainPlan, analysis: OutputAnalysis) -> policy.GainPlan | None:
        return policy.corrected_plan(
            plan,
            loudness_before_lufs=measured.loudness_lufs,
            sample_peak_dbfs=measured.sample_peak_dbfs,
            loudness_after_lufs=analysis.loudness_lufs,
            true_peak_after_dbtp=analysis.true_peak_dbtp,
            target_lufs=audio.target_lufs,
            ceiling_dbtp=audio.true_peak_dbtp,
        )

    return correct


def check_content(measured: Measurement) -> None:
    """Raise AudioInputError when the decoded source cannot be normalised."""
    stats, info = measured.stats, measured.info
    if policy.too_corrupt(stats.bad_packets, stats.packets):
        raise AudioInputError(
            f"the file is damaged: {stats.bad_packets} of {stats.packets} packets could not be decoded; "
            "export or upload it again"
        )
    if info.exact_duration and stats.samples and policy.truncated(info.declared_duration_s, measured.duration_s):
        raise AudioInputError(
            f"the file is damaged or cut short: {measured.duration_s:.1f} s of its {info.declared_duration_s:.1f} s "
            "could be decoded; upload it again"
        )
    problem = policy.content_problem(
        samples=stats.samples, sample_rate_hz=measured.sample_rate or 1, loudness_lufs=measured.loudness_lufs
    )
    if problem:
        raise AudioInputError(problem)
