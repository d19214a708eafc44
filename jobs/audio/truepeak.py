"""True-peak meter (ITU-R BS.1770 Annex 2): the peak of the signal oversampled 4x.

Streams blocks shaped (channels, samples) and keeps the last few samples of each
block so that the interpolation runs across block boundaries. FFmpeg's ebur128 filter
reports peaks with three decimals of a linear value, too coarse for quiet tracks,
hence this meter.
"""

from __future__ import annotations

import math

import numpy as np
import numpy.typing as npt
from numpy.lib.stride_tricks import sliding_window_view

OVERSAMPLING = 4
TAPS_PER_PHASE = 12  # 48 taps in all, as in the standard's example filter
KAISER_BETA = 8.0
SILENT_DBTP = -200.0


def _phases() -> npt.NDArray[np.float32]:
    taps = OVERSAMPLING * TAPS_PER_PHASE
    n = np.arange(taps)
    kernel = np.sinc((n - (taps - 1) / 2) / OVERSAMPLING) * np.kaiser(taps, KAISER_BETA)
    phases = np.stack([kernel[p::OVERSAMPLING] for p in range(OVERSAMPLING)])
    phases /= phases.sum(axis=1, keepdims=True)  # unity gain at DC for every phase
    # Reversed so that a sliding window times the matrix is a convolution.
    return np.ascontiguousarray(phases[:, ::-1].T, dtype=np.float32)


PHASES = _phases()  # shape (TAPS_PER_PHASE, OVERSAMPLING)
# No interpolated value exceeds the largest nearby sample by more than this factor, so a
# block whose sample peak times it stays under the peak found so far can be skipped.
GAIN_BOUND = float(np.abs(PHASES).sum(axis=0).max())


class TruePeakMeter:
    def __init__(self) -> None:
        self._tail: npt.NDArray[np.float32] | None = None
        self._peak = 0.0

    def add(self, block: npt.NDArray[np.floating]) -> None:
        """Take one block shaped (channels, samples)."""
        block = np.asarray(block, dtype=np.float32)
        if block.ndim == 1:
            block = block[np.newaxis, :]
        if block.shape[1] == 0:
            return
        if self._tail is None or self._tail.shape[0] != block.shape[0]:
            self._tail = np.zeros((block.shape[0], TAPS_PER_PHASE - 1), dtype=np.float32)
        joined = np.concatenate([self._tail, block], axis=1)
        self._tail = joined[:, -(TAPS_PER_PHASE - 1) :]
        if float(np.abs(joined).max()) * GAIN_BOUND <= self._peak:
            return
        windows = sliding_window_view(joined, TAPS_PER_PHASE, axis=1)
        interpolated = windows @ PHASES
        self._peak = max(self._peak, float(np.abs(interpolated).max()), float(np.abs(block).max()))

    @property
    def linear(self) -> float:
        return self._peak

    @property
    def dbtp(self) -> float:
        return 20 * math.log10(self._peak) if self._peak > 0 else SILENT_DBTP
