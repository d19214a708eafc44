"""Waveform peaks for a player's progress bar, gathered from streamed blocks of audio.

The track is cut into ``points`` equal spans of its expected length; each value is the
largest absolute sample in its span, 0..1. Blocks arrive one at a time, so memory
stays at ``points`` floats whatever the track's length.
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

DEFAULT_POINTS = 200


class PeakAccumulator:
    def __init__(self, expected_samples: int, points: int = DEFAULT_POINTS):
        if points <= 0:
            raise ValueError("points must be positive")
        self.points = points
        self.expected = max(int(expected_samples), 1)
        self.samples = 0
        self._peaks = np.zeros(points, dtype=np.float64)

    def add(self, block: npt.NDArray[np.floating]) -> None:
        """Take one block shaped (channels, samples) or (samples,)."""
        if block.size == 0:
            return
        mono = np.abs(block).max(axis=0) if block.ndim == 2 else np.abs(block)
        count = mono.shape[0]
        positions = np.arange(self.samples, self.samples + count, dtype=np.int64)
        # Samples past the expected length (a resampler's rounding) fall into the last span.
        spans = np.minimum(positions * self.points // self.expected, self.points - 1)
        starts = np.flatnonzero(np.r_[True, spans[1:] != spans[:-1]])
        maxima = np.maximum.reduceat(mono, starts)
        np.maximum.at(self._peaks, spans[starts], maxima)
        self.samples += count

    def peaks(self) -> list[float]:
        """The values, 0..1, rounded to 4 places; spans never reached (a short track) are 0."""
        return [round(float(v), 4) for v in np.clip(self._peaks, 0.0, 1.0)]
