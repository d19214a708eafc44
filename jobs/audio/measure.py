"""First pass: decode the source and measure its integrated loudness and sample peak.

Loudness is measured in the channel layout and at the sample rate the output will
have: downmixing stereo to mono changes it, and so does dropping what lies above the
new Nyquist frequency.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import av
import numpy as np

from jobs.audio.decode import AudioDecoder, DecodeStats, SourceInfo, Tick
from jobs.audio.filters import FilterChain, convert, loudness_of

SILENT_DBFS = -200.0

# (source sample rate, source channels) -> (output sample rate, output channels)
ShapeRule = Callable[[int, int], tuple[int, int]]


@dataclass(frozen=True)
class Measurement:
    info: SourceInfo
    stats: DecodeStats
    sample_rate: int  # of the decoded source
    output_rate: int
    output_channels: int
    loudness_lufs: float  # as it will sound in the output's layout and rate
    sample_peak_dbfs: float

    @property
    def duration_s(self) -> float:
        return self.stats.samples / self.sample_rate if self.sample_rate else 0.0


def measure(
    file: Any,
    *,
    shape: ShapeRule,
    max_duration_s: float,
    tick: Tick | None = None,
    max_work: float = math.inf,
    size_bytes: int = 0,
) -> Measurement:
    """Decode the whole source once; ``max_work`` bounds the samples x channels it may cost."""
    loudness = -math.inf
    peak = 0.0
    rate, output_rate, output_channels = 0, 0, 0
    with AudioDecoder(file, max_duration_s=max_duration_s, max_work=max_work, size_bytes=size_bytes) as decoder:
        chain: FilterChain | None = None

        def take(frames: list[av.AudioFrame]) -> None:
            nonlocal loudness, peak
            for out in frames:
                peak = max(peak, float(np.abs(out.to_ndarray()).max(initial=0.0)))
                measured = loudness_of(out)
                loudness = loudness if measured is None else measured

        for frame in decoder.frames(tick):
            if chain is None:
                rate = frame.sample_rate
                output_rate, output_channels = shape(rate, frame.layout.nb_channels)
                chain = FilterChain(frame, [convert(output_channels, output_rate), ("ebur128", "metadata=1")])
            take(chain.push(frame))
        if chain is not None:
            take(chain.push(None))
        return Measurement(
            info=decoder.info,
            stats=decoder.stats,
            sample_rate=rate,
            output_rate=output_rate,
            output_channels=output_channels,
            loudness_lufs=loudness,
            sample_peak_dbfs=20 * math.log10(peak) if peak > 0 else SILENT_DBFS,
        )
