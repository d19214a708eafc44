"""A linear FFmpeg filter graph fed one frame at a time, and what ebur128 leaves on frames."""

from __future__ import annotations

from collections.abc import Sequence

import av
import av.error
import av.filter

LOUDNESS_KEY = "lavfi.r128.I"


class FilterChain:
    """``abuffer -> filters... -> abuffersink``, shaped after the first frame it will get."""

    def __init__(self, template: av.AudioFrame, filters: Sequence[tuple[str, str]]):
        self._graph = av.filter.Graph()
        nodes = [
            self._graph.add_abuffer(
                format=template.format.name,
                sample_rate=template.sample_rate,
                layout=template.layout.name,
                time_base=template.time_base,
            )
        ]
        nodes += [self._graph.add(name, args) for name, args in filters]
        nodes.append(self._graph.add("abuffersink"))
        self._graph.link_nodes(*nodes).configure()

    def push(self, frame: av.AudioFrame | None) -> list[av.AudioFrame]:
        """Feed one frame (None to flush) and return every frame ready at the other end."""
        self._graph.push(frame)
        out: list[av.AudioFrame] = []
        while True:
            try:
                pulled = self._graph.pull()
            except (av.error.BlockingIOError, av.error.EOFError):
                return out
            if isinstance(pulled, av.AudioFrame):  # an audio graph yields nothing else
                out.append(pulled)


def convert(channels: int, rate: int) -> tuple[str, str]:
    """The filter that brings audio to ``channels`` (1 or 2) at ``rate``.

    Both passes must convert the same way: a downmix left to FFmpeg's automatic
    conversion can use another matrix, and loudness measured before would not hold.
    """
    return ("aresample", f"out_chlayout={layout_name(channels)}:osr={rate}")


def layout_name(channels: int) -> str:
    return "mono" if channels == 1 else "stereo"


def loudness_of(frame: av.AudioFrame) -> float | None:
    """Integrated loudness (LUFS) that an ebur128 filter with metadata=1 put on ``frame``."""
    value = frame.metadata.get(LOUDNESS_KEY)
    return float(value) if value is not None else None
