"""Test audio made on the spot: signals with numpy, files with PyAV, checks with pyloudnorm.

Nothing here uses Railyard's audio code, so the checks are independent of it.
"""

from __future__ import annotations

import io
import struct
from dataclasses import dataclass
from fractions import Fraction

import av
import numpy as np
import numpy.typing as npt
import pyloudnorm
from scipy.signal import resample_poly

Signal = npt.NDArray[np.float32]  # shape (channels, samples), float in -1..1

# fixture format -> (container, codec)
FORMATS = {
    "wav": ("wav", "pcm_s16le"),
    "flac": ("flac", "flac"),
    "mp3": ("mp3", "libmp3lame"),
    "opus": ("ogg", "libopus"),
    "m4a": ("ipod", "aac"),
}


def _rng(seed: int) -> np.random.Generator:
    return np.random.default_rng(seed)


def at_level(signal: Signal, dbfs_rms: float) -> Signal:
    """Scale ``signal`` so that its RMS is ``dbfs_rms`` dB relative to full scale."""
    rms = float(np.sqrt(np.mean(np.square(signal, dtype=np.float64))))
    return (signal * (10 ** (dbfs_rms / 20) / rms)).astype(np.float32)


def tone(rate: int, seconds: float, freq: float = 440.0, channels: int = 2) -> Signal:
    t = np.arange(int(rate * seconds)) / rate
    mono = np.sin(2 * np.pi * freq * t)
    return np.tile(mono, (channels, 1)).astype(np.float32)


def noise(rate: int, seconds: float, channels: int = 2, seed: int = 1) -> Signal:
    """Pink-ish noise: white noise with a gentle low-pass, independent per channel."""
    white = _rng(seed).standard_normal((channels, int(rate * seconds)))
    kernel = np.ones(4) / 4
    return np.stack([np.convolve(ch, kernel, mode="same") for ch in white]).astype(np.float32)


def speech_like(rate: int, seconds: float, channels: int = 1, seed: int = 2) -> Signal:
    """Syllable-rate bursts of a voiced harmonic sound with pauses: speech's crest factor and gaps."""
    rng = _rng(seed)
    n = int(rate * seconds)
    t = np.arange(n) / rate
    pitch = 140 + 30 * np.sin(2 * np.pi * 0.7 * t)
    phase = 2 * np.pi * np.cumsum(pitch) / rate
    voiced = sum(np.sin(k * phase) / k for k in range(1, 12))
    syllables = np.clip(np.sin(2 * np.pi * 4 * t + rng.uniform(0, 6)), 0, None) ** 2
    phrases = (np.sin(2 * np.pi * 0.3 * t) > -0.6).astype(float)
    mono = voiced * syllables * phrases + 0.02 * rng.standard_normal(n)
    return np.tile(mono, (channels, 1)).astype(np.float32)


def silence(rate: int, seconds: float, channels: int = 2) -> Signal:
    return np.zeros((channels, int(rate * seconds)), dtype=np.float32)


def encode(signal: Signal, rate: int, fmt: str) -> bytes:
    """``signal`` as a file of format ``fmt`` (a key of FORMATS)."""
    container, codec = FORMATS[fmt]
    layout = "mono" if signal.shape[0] == 1 else "stereo"
    buffer = io.BytesIO()
    with av.open(buffer, "w", format=container) as out:
        stream = out.add_stream(codec, rate=48000 if codec == "libopus" else rate, layout=layout)
        for start in range(0, signal.shape[1], 4096):
            block = np.ascontiguousarray(np.clip(signal[:, start : start + 4096], -1, 1))
            frame = av.AudioFrame.from_ndarray(block, format="fltp", layout=layout)
            frame.sample_rate = rate
            frame.pts, frame.time_base = start, Fraction(1, rate)  # exact length in the container
            out.mux(stream.encode(frame))
        out.mux(stream.encode(None))
    return buffer.getvalue()


@dataclass(frozen=True)
class Decoded:
    container: str
    codec: str
    rate: int
    samples: Signal  # (channels, samples)

    @property
    def duration_s(self) -> float:
        return self.samples.shape[1] / self.rate

    def loudness_lufs(self) -> float:
        return float(pyloudnorm.Meter(self.rate).integrated_loudness(self.samples.T.astype(np.float64)))

    def true_peak_dbtp(self) -> float:
        """Peak of the signal oversampled 8x, a finer estimate than the 4x BS.1770 asks for."""
        up = resample_poly(self.samples.astype(np.float64), 8, 1, axis=1)
        return float(20 * np.log10(np.abs(up).max()))


def decode(data: bytes) -> Decoded:
    """Decode the first audio stream whole, as float samples at its own rate and layout."""
    with av.open(io.BytesIO(data)) as container:
        stream = container.streams.audio[0]
        resampler = av.AudioResampler(format="fltp")
        blocks = [out.to_ndarray() for frame in container.decode(stream) for out in resampler.resample(frame)]
        blocks += [out.to_ndarray() for out in resampler.resample(None)]
        rate = stream.codec_context.sample_rate
        samples = np.concatenate(blocks, axis=1).astype(np.float32)
        if "mp4" in container.format.name and stream.duration:
            # A player stops where the MP4 edit list says; FFmpeg decodes the encoder's padding too.
            samples = samples[:, : round(float(stream.duration * stream.time_base) * rate)]
        return Decoded(container.format.name, stream.codec_context.name, rate, samples)


def create_audio_table(database_url: str) -> None:
    """Create the audio table the way deployments do: by applying Railyard's own migrations."""
    from jobs.migrations import apply_builtin

    apply_builtin(database_url)


def wav_with_header(
    *, tag: int, channels: int, rate: int, byte_rate: int, align: int, bits: int, riff: int, data: int
) -> bytes:
    """A RIFF/WAVE header with the given fields, then a short real body of 16-bit noise."""
    body = (np.random.default_rng(7).integers(-8000, 8000, 4000, dtype=np.int16)).tobytes()
    fmt = struct.pack("<HHIIHH", tag, channels, rate, byte_rate, align, bits)
    return (
        b"RIFF"
        + struct.pack("<I", riff)
        + b"WAVEfmt "
        + struct.pack("<I", len(fmt))
        + fmt
        + b"data"
        + struct.pack("<I", data)
        + body
    )


def flac_with_streaminfo(
    *, rate: int, channels: int, bits: int, total: int, min_block: int, max_block: int, tail: bytes
) -> bytes:
    """fLaC with one STREAMINFO block holding the given fields (each within its bit width), then ``tail``."""
    info = (rate << 44) | ((channels - 1) << 41) | ((bits - 1) << 36) | total
    streaminfo = struct.pack(">HH", min_block, max_block) + b"\0" * 6 + info.to_bytes(8, "big") + b"\0" * 16
    return b"fLaC" + bytes([0x80]) + len(streaminfo).to_bytes(3, "big") + streaminfo + tail
