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
        first, last = self._span(self.samples), self._span(self.samples + count - 1)
        # Span k starts at sample ceil(k * expected / points); samples past the expected
        # length (a resampler's rounding) fall into the last span.
        spans = np.arange(first, last + 1)
        starts = -(-spans[1:] * self.expected // self.points) - self.samples
        maxima = np.maximum.reduceat(mono, np.r_[0, starts])
        self._peaks[first : last + 1] = np.maximum(self._peaks[first : last + 1], maxima)
        self.samples += count

    def _span(self, sample: int) -> int:
        return min(sample * self.points // self.expected, self.points - 1)

    def peaks(self) -> list[float]:
        """The values, 0..1, rounded to 4 places; spans never reached (a short track) are 0."""
        return [round(float(v), 4) for v in np.clip(self._peaks, 0.0, 1.0)]
