"""Waveform peaks and the true-peak meter give the same answer however the audio is cut into blocks."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.signal import resample_poly

from jobs.audio.truepeak import TruePeakMeter
from jobs.audio.waveform import PeakAccumulator


def blocks(signal: np.ndarray, sizes: list[int]) -> list[np.ndarray]:
    out, start, i = [], 0, 0
    while start < signal.shape[1]:
        size = sizes[i % len(sizes)]
        out.append(signal[:, start : start + size])
        start, i = start + size, i + 1
    return out


def test_waveform_peaks_by_span() -> None:
    """Ten spans of a ramp: each span's peak is its last sample; the other channel is louder at the end."""
    left = np.linspace(0, 1, 1000, endpoint=False)
    right = np.zeros(1000)
    right[-1] = 1.0
    acc = PeakAccumulator(1000, points=10)
    for block in blocks(np.stack([left, -right]), [333, 17, 250]):
        acc.add(block)
    expected = [round(0.099 + 0.1 * i, 4) for i in range(9)] + [1.0]
    assert expected == acc.peaks()
    assert acc.samples == 1000


@pytest.mark.parametrize("sizes", [[1024], [1], [4096, 7], [99_999]])
def test_waveform_is_independent_of_block_sizes(sizes: list[int]) -> None:
    rng = np.random.default_rng(3)
    signal = rng.uniform(-1, 1, (2, 20_000)) * np.linspace(0.01, 1, 20_000)
    whole = PeakAccumulator(20_000, points=200)
    whole.add(signal)
    split = PeakAccumulator(20_000, points=200)
    for block in blocks(signal, sizes):
        split.add(block)
    assert whole.peaks() == split.peaks()
    assert len(split.peaks()) == 200


def test_waveform_overrun_goes_to_the_last_span_and_shortfall_leaves_zeros() -> None:
    over = PeakAccumulator(100, points=4)
    over.add(np.r_[np.zeros(100), np.full(5, 0.5)])
    assert over.peaks() == [0.0, 0.0, 0.0, 0.5]
    short = PeakAccumulator(100, points=4)
    short.add(np.full(50, 0.25))
    assert short.peaks() == [0.25, 0.25, 0.0, 0.0]


@pytest.mark.parametrize(
    ("freq_ratio", "phase"),
    [(0.01, 0.0), (0.25, np.pi / 4), (0.3, 1.0), (0.45, 0.3)],
)
def test_true_peak_matches_8x_oversampling(freq_ratio: float, phase: float) -> None:
    """Sines up to 0.45 of the sample rate, phased so sample peaks miss the crest, read within 0.5 dB."""
    n = np.arange(48000)
    signal = 0.5 * np.sin(2 * np.pi * freq_ratio * n + phase)[np.newaxis, :]
    meter = TruePeakMeter()
    for block in blocks(signal, [1000, 37]):
        meter.add(block)
    reference = 20 * np.log10(np.abs(resample_poly(signal, 8, 1, axis=1)[:, 1000:-1000]).max())
    assert abs(reference - meter.dbtp) < 0.5
    assert meter.dbtp >= 20 * np.log10(np.abs(signal).max()) - 0.01


def test_true_peak_of_silence() -> None:
    meter = TruePeakMeter()
    meter.add(np.zeros((2, 1000)))
    assert meter.dbtp == -200.0
