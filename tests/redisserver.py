"""A private ``redis-server`` process for tests that stop, restart or lock down Redis itself."""

from __future__ import annotations

import subprocess
from pathlib import Path
from typing import IO

from tests.ports import free_port, wait_for_port


class RedisServer:
    """One port and one data directory; ``restart`` brings back what the AOF file kept."""

    def __init__(self, workdir: Path, *extra_args: str):
        self.workdir = workdir
        self.port = free_port()
        self.extra_args = extra_args
        self.popen: subprocess.Popen[bytes] | None = None
        self._log: IO[bytes] | None = None

    def url(self, db: int = 0, password: str = "") -> str:
        auth = f":{password}@" if password else ""
        return f"redis://{auth}127.0.0.1:{self.port}/{db}"

    def start(self) -> None:
        self.workdir.mkdir(parents=True, exist_ok=True)
        self._log = self._log or open(self.workdir / "redis-server.log", "ab")  # noqa: SIM115 - closed by close()
        self.popen = subprocess.Popen(
            [
                "redis-server",
                "--port",
                str(self.port),
                "--bind",
                "127.0.0.1",
                "--dir",
                str(self.workdir),
                *self.extra_args,
            ],
            stdout=self._log,
            stderr=subprocess.STDOUT,
        )
        wait_for_port(self.port)

    def stop(self) -> None:
        """SIGTERM: Redis's own clean shutdown, which flushes the append-only file."""
        if self.popen is not None and self.popen.poll() is None:
            self.popen.terminate()
            self.popen.wait(timeout=30)

    def close(self) -> None:
        self.stop()
        if self._log is not None:
            self._log.close()

    def __enter__(self) -> RedisServer:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
