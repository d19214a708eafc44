"""Audio job benchmark: speed (x real time) and peak RSS of the normalising pipeline.

Compares, on the same synthetic 10-minute stereo 44.1 kHz track in the same run:
  pipeline  the job's media work (measure, render to AAC, check; storage reads through
            the local store), as jobs.audio.pipeline.normalise runs it
  floor     decode + loudness measurement alone (the first pass)
  ffmpeg    Debian's ffmpeg doing single-pass `-af loudnorm` to AAC 128 kbps
and reports the pipeline's peak RSS on a 60-minute track. Each run is its own child
process, pinned to one core, so its CPU time and peak RSS are its own.

    .venv/bin/python bench/audio_bench.py [--minutes 10] [--long-minutes 60]

Installs ffmpeg with apt when it is missing and this runs as root.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
RATE = 44100
BLOCK_S = 10
# Single-pass dynamic loudnorm works at 192 kHz: -ar brings the output back to 44.1 kHz.
FFMPEG_ARGS = ["-af", "loudnorm=I=-16:TP=-1:LRA=11", "-ar", "44100", "-c:a", "aac", "-b:a", "128k"]


def write_track(path: Path, minutes: float) -> None:
    """A music-like track: chords, a voice-like part and noise, varying in level, streamed to WAV."""
    import av
    import numpy as np

    rng = np.random.default_rng(7)
    layout = "stereo"
    with av.open(str(path), "w", format="wav") as out:
        stream = out.add_stream("pcm_s16le", rate=RATE, layout=layout)
        total = int(minutes * 60 * RATE)
        for start in range(0, total, BLOCK_S * RATE):
            n = min(BLOCK_S * RATE, total - start)
            t = (start + np.arange(n)) / RATE
            chord = sum(np.sin(2 * np.pi * f * t) for f in (220.0, 277.2, 329.6)) / 3
            voice = np.sin(2 * np.pi * 150 * t + 3 * np.sin(2 * np.pi * 5 * t)) * (np.sin(2 * np.pi * 3 * t) > 0)
            swell = 0.3 + 0.25 * np.sin(2 * np.pi * t / 47)
            left = swell * (0.6 * chord + 0.3 * voice) + 0.02 * rng.standard_normal(n)
            right = swell * (0.5 * chord + 0.4 * voice) + 0.02 * rng.standard_normal(n)
            block = (0.5 * np.stack([left, right])).astype(np.float32)
            frame = av.AudioFrame.from_ndarray(block, format="fltp", layout=layout)
            frame.sample_rate = RATE
            out.mux(stream.encode(frame))
        out.mux(stream.encode(None))


def run_pipeline(source: Path, out_dir: Path) -> dict[str, float]:
    from jobs.audio.config import AudioConfig
    from jobs.audio.pipeline import normalise
    from railyard.core.storage.local import LocalStore

    store = LocalStore(source.parent)
    done = normalise(
        store,
        source.name,
        source.stat().st_size,
        AudioConfig(storage_url=str(source.parent)),
        out_dir / "out.m4a",
    )
    return {
        "loudness_after_lufs": done.analysis.loudness_lufs,
        "true_peak_after_dbtp": round(done.analysis.true_peak_dbtp, 2),
        "renders": done.renders,
    }


def run_floor(source: Path) -> dict[str, float]:
    from jobs.audio.measure import measure
    from jobs.audio.reader import StorageReader
    from railyard.core.storage.local import LocalStore

    store = LocalStore(source.parent)
    with StorageReader(store, source.name, source.stat().st_size) as reader:
        measured = measure(reader, shape=lambda rate, channels: (rate, channels), max_duration_s=float("inf"))
    return {"loudness_lufs": measured.loudness_lufs}


@dataclass
class Run:
    name: str
    wall_s: float
    cpu_s: float
    peak_rss_mb: float
    audio_s: float
    extra: dict[str, float]

    @property
    def speed_x(self) -> float:
        return self.audio_s / self.wall_s

    @property
    def cpu_speed_x(self) -> float:
        return self.audio_s / self.cpu_s


def child(argv: list[str], name: str, audio_s: float) -> Run:
    """Run argv pinned to one core; wall time, CPU time and peak RSS from the kernel's accounting."""
    started = time.monotonic()
    proc = subprocess.Popen(["taskset", "-c", "0", *argv], stdout=subprocess.PIPE, text=True)
    out = proc.stdout.read() if proc.stdout else ""
    _, status, usage = os.wait4(proc.pid, 0)
    wall = time.monotonic() - started
    if os.waitstatus_to_exitcode(status) != 0:
        raise SystemExit(f"{name} failed with exit status {os.waitstatus_to_exitcode(status)}")
    last = out.strip().rpartition("\n")[2]
    extra = json.loads(last) if last.startswith("{") else {}
    return Run(name, wall, usage.ru_utime + usage.ru_stime, usage.ru_maxrss / 1024, audio_s, extra)


def ensure_ffmpeg() -> str:
    found = shutil.which("ffmpeg")
    if found:
        return found
    if os.geteuid() != 0:
        raise SystemExit("ffmpeg is not installed and this is not root: apt-get install ffmpeg, then run again")
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    subprocess.run(["apt-get", "update", "-qq"], check=True, env=env)
    subprocess.run(["apt-get", "install", "-y", "-qq", "ffmpeg"], check=True, env=env, stdout=subprocess.DEVNULL)
    return shutil.which("ffmpeg") or "ffmpeg"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--minutes", type=float, default=10.0)
    parser.add_argument("--long-minutes", type=float, default=60.0)
    parser.add_argument("--child", choices=["pipeline", "floor"], help=argparse.SUPPRESS)
    parser.add_argument("--source", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()

    if args.child:
        with tempfile.TemporaryDirectory() as tmp:
            result = run_pipeline(args.source, Path(tmp)) if args.child == "pipeline" else run_floor(args.source)
        print(json.dumps(result))
        return

    ffmpeg = ensure_ffmpeg()
    version = subprocess.run([ffmpeg, "-version"], capture_output=True, text=True).stdout.split("\n")[0]
    me = [sys.executable, __file__]
    with tempfile.TemporaryDirectory(prefix="railyard-audio-bench-") as tmp:
        work = Path(tmp)
        track = work / "src" / "track.wav"
        track.parent.mkdir()
        write_track(track, args.minutes)
        audio_s = args.minutes * 60
        print(f"track: {args.minutes:g} min stereo 44.1 kHz WAV, {track.stat().st_size / 1e6:.0f} MB; {version}")
        runs = [
            child([*me, "--child", "floor", "--source", str(track)], "floor: decode + measure", audio_s),
            child([*me, "--child", "pipeline", "--source", str(track)], "pipeline (Railyard)", audio_s),
            child(
                [ffmpeg, "-v", "error", "-y", "-i", str(track), *FFMPEG_ARGS, str(work / "ffmpeg.m4a")],
                "ffmpeg -af loudnorm",
                audio_s,
            ),
        ]
        track.unlink()
        long_track = work / "src" / "long.wav"
        write_track(long_track, args.long_minutes)
        long_run = child(
            [*me, "--child", "pipeline", "--source", str(long_track)],
            f"pipeline, {args.long_minutes:g} min",
            args.long_minutes * 60,
        )

    print(f"{'run':<26}{'x real time':>12}{'x per CPU-s':>12}{'peak RSS MB':>13}")
    for run in [*runs, long_run]:
        print(f"{run.name:<26}{run.speed_x:>12.1f}{run.cpu_speed_x:>12.1f}{run.peak_rss_mb:>13.0f}")
    floor, pipeline, ffmpeg_run = runs
    print(f"pipeline output: {pipeline.extra}")
    print(
        f"pipeline vs floor:  {pipeline.cpu_speed_x / floor.cpu_speed_x:.2f}x the speed, "
        f"{pipeline.peak_rss_mb / floor.peak_rss_mb:.2f}x the peak RSS"
    )
    print(
        f"pipeline vs ffmpeg: {pipeline.cpu_speed_x / ffmpeg_run.cpu_speed_x:.2f}x the speed, "
        f"{pipeline.peak_rss_mb / ffmpeg_run.peak_rss_mb:.2f}x the peak RSS"
    )
    print(
        f"{args.long_minutes:g}-minute track: peak RSS {long_run.peak_rss_mb:.0f} MB "
        f"({long_run.peak_rss_mb / pipeline.peak_rss_mb:.2f}x the {args.minutes:g}-minute track's)"
    )


if __name__ == "__main__":
    main()
