"""Third pass: decode the encoded file and measure what a listener will get.

Loudness, true peak, length and waveform come from the output itself, after the
encoder's low-pass and overshoot, so the row states facts about the file it points to.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import av
import numpy.typing as npt

from jobs.audio.decode import AudioDecoder, Tick
from jobs.audio.filters import FilterChain, loudness_of
from jobs.audio.truepeak import TruePeakMeter
from jobs.audio.waveform import PeakAccumulator

NO_LIMIT_S = float("inf")


@dataclass(frozen=True)
class OutputAnalysis:
    container: str
    codec: str
    sample_rate: int
    channels: int
    duration_ms: int
    loudness_lufs: float
    true_peak_dbtp: float
    peaks: list[float]


def analyse(path: Path, *, expected_samples: int, tick: Tick | None = None) -> OutputAnalysis:
    waveform = PeakAccumulator(expected_samples)
    true_peak = TruePeakMeter()
    loudness = -math.inf

    def take(frame: av.AudioFrame) -> None:
        nonlocal loudness
        samples = planar(frame)
        waveform.add(samples)
        true_peak.add(samples)
        measured = loudness_of(frame)
        loudness = loudness if measured is None else measured

    with AudioDecoder(str(path), max_duration_s=NO_LIMIT_S) as decoder:
        chain: FilterChain | None = None
        for frame in decoder.frames(tick):
            if chain is None:
                chain = FilterChain(frame, [("ebur128", "metadata=1")])
            for out in chain.push(frame):
                take(out)
        if chain is not None:
            for out in chain.push(None):
                take(out)
        info = decoder.info
        decoded = decoder.stats.samples
    rate = info.sample_rate
    # Players stop where the container says (an MP4 edit list drops the encoder's padding).
    declared = info.declared_duration_s
    duration_s = min(declared, decoded / rate) if declared else decoded / rate
    return OutputAnalysis(
        container=info.container,
        codec=info.codec,
        sample_rate=rate,
        channels=info.channels,
        duration_ms=round(duration_s * 1000),
        loudness_lufs=loudness,
        true_peak_dbtp=true_peak.dbtp,
        peaks=waveform.peaks(),
    )


def planar(frame: av.AudioFrame) -> npt.NDArray[Any]:
    """A frame's samples as (channels, samples), whether its format is planar or packed."""
    samples: npt.NDArray[Any] = frame.to_ndarray()
    channels = frame.layout.nb_channels
    if frame.format.is_planar or channels == 1:
        return samples
    return samples.reshape(-1, channels).T
