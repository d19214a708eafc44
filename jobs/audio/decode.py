"""Open a source with PyAV and stream its audio frames, skipping the odd damaged packet.

Frames are re-stamped with a running sample count, so filters downstream see one
continuous stream whatever the container's timestamps say.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from fractions import Fraction
from types import TracebackType
from typing import Any

import av
import av.error
import numpy as np

from jobs.audio import policy
from jobs.audio.errors import AudioInputError, AudioLimitError

Tick = Callable[[], None]
EXACT_LENGTH_FORMATS = ("flac", "wav", "mp4", "ogg")  # MP3 and raw streams only estimate theirs


@dataclass(frozen=True)
class SourceInfo:
    container: str
    codec: str
    sample_rate: int
    channels: int
    declared_duration_s: float | None  # what the container says; decoding tells the truth
    exact_duration: bool  # the container states its length exactly rather than estimating it


@dataclass
class DecodeStats:
    packets: int = 0
    bad_packets: int = 0
    samples: int = 0
    truncated: bool = False


class AudioDecoder:
    """The first audio stream of a file, decoded frame by frame. Use as a context manager."""

    def __init__(self, file: Any, *, max_duration_s: float, max_work: float = math.inf, size_bytes: int = 0):
        try:
            self._container = av.open(file, mode="r", metadata_errors="ignore")
        except av.error.FFmpegError as exc:  # storage errors keep their own type through PyAV
            raise AudioInputError(
                f"the file is not audio that FFmpeg can read ({_reason(exc)}); "
                "upload an audio file such as MP3, M4A, WAV, FLAC or Ogg"
            ) from exc
        streams = self._container.streams.audio
        if not streams:
            self._container.close()
            raise AudioInputError("the file has no audio stream; upload an audio file")
        self._stream = streams[0]
        codec = self._stream.codec_context
        if codec is None:
            self._container.close()
            raise AudioInputError(
                "the file's audio is in an encoding FFmpeg cannot decode; export it again as MP3, M4A, WAV or FLAC"
            )
        declared = self._container.duration
        self.info = SourceInfo(
            container=self._container.format.name,
            codec=codec.name,
            sample_rate=int(codec.sample_rate or 0),
            channels=int(codec.channels or 0),
            declared_duration_s=declared / av.time_base if declared and declared > 0 else None,
            exact_duration=any(name in EXACT_LENGTH_FORMATS for name in self._container.format.name.split(",")),
        )
        self.max_duration_s = max_duration_s
        self.max_work = max_work
        self._size_bytes = size_bytes
        self.stats = DecodeStats()
        shape = policy.format_problem(sample_rate_hz=self.info.sample_rate, channels=self.info.channels)
        if shape:
            self._container.close()
            error = AudioLimitError if self.info.channels > policy.MAX_CHANNELS else AudioInputError
            raise error(shape)
        declared_s = self.info.declared_duration_s
        if declared_s is not None and declared_s > max_duration_s:
            self._container.close()
            raise AudioLimitError(policy.too_long_problem(max_duration_s, declared_s))
        expected = declared_s * self.info.sample_rate * self.info.channels if declared_s else None
        if expected is not None and expected > max_work:
            self._container.close()
            raise AudioLimitError(policy.work_problem(size_bytes, max_work, expected))
        # MP4 states each track's exact length (edit list) but FFmpeg still decodes the
        # encoder's padding after it; other containers' durations may be estimates.
        exact = "mp4" in self.info.container and self._stream.duration and self._stream.time_base
        self._exact_duration_s = float(self._stream.duration * self._stream.time_base) if exact else None

    def __enter__(self) -> AudioDecoder:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self._container.close()

    def frames(self, tick: Tick | None = None) -> Iterator[av.AudioFrame]:
        """Decoded frames in order; raises AudioLimitError as soon as the audio runs past the limit."""
        rate: int | None = None
        channels: int | None = None
        max_samples = math.inf
        packets = self._container.demux(self._stream)
        while True:
            try:
                packet = next(packets)
            except StopIteration:
                return
            except av.error.FFmpegError:
                # A damaged container: what decoded so far is kept and judged by the caller.
                self.stats.truncated = True
                self.stats.bad_packets += 1
                return
            if packet.size:
                self.stats.packets += 1
            try:
                decoded = self._stream.codec_context.decode(packet)
            except av.error.FFmpegError:
                self.stats.bad_packets += 1
                continue
            for frame in decoded:
                if rate is None:
                    rate, channels = frame.sample_rate, frame.layout.nb_channels
                    shape = policy.format_problem(sample_rate_hz=rate, channels=channels)
                    if shape:
                        raise (AudioLimitError if channels > policy.MAX_CHANNELS else AudioInputError)(shape)
                    max_samples = self.max_duration_s * rate
                elif frame.sample_rate != rate or frame.layout.nb_channels != channels:
                    raise AudioInputError(
                        "the audio changes sample rate or channel count part-way through; "
                        "export it again as one consistent track"
                    )
                if self._exact_duration_s is not None:
                    keep = round(self._exact_duration_s * rate) - self.stats.samples
                    if keep <= 0:
                        return
                    if keep < frame.samples:
                        frame = _head(frame, keep)
                frame.pts = self.stats.samples
                frame.time_base = Fraction(1, rate)
                self.stats.samples += frame.samples
                if self.stats.samples > max_samples:
                    raise AudioLimitError(policy.too_long_problem(self.max_duration_s))
                if self.stats.samples * (channels or 1) > self.max_work:
                    raise AudioLimitError(policy.work_problem(self._size_bytes, self.max_work))
                yield frame
            if tick is not None:
                tick()


def _reason(exc: BaseException) -> str:
    return getattr(exc, "strerror", None) or str(exc) or type(exc).__name__


def _head(frame: av.AudioFrame, samples: int) -> av.AudioFrame:
    """The first ``samples`` samples of ``frame``, as a new frame."""
    data: Any = frame.to_ndarray()
    width = samples if frame.format.is_planar else samples * frame.layout.nb_channels
    head = av.AudioFrame.from_ndarray(
        np.ascontiguousarray(data[:, :width]), format=frame.format.name, layout=frame.layout.name
    )
    head.sample_rate = frame.sample_rate
    return head
