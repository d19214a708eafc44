"""Every child process a job starts (pg_dump, pg_restore, pg_dumpall, MIGRATE_COMMAND) runs through here.

    with childproc.start(argv, env=env, stdout=subprocess.PIPE) as child:
        ...read child.stdout...
        code = child.wait()
    # here every process the command started is gone

The command runs under a guard (``railyard/core/childguard.py``) in a session and process group of
its own. Leaving the ``with`` block for any reason (an error, the job's timeout, SIGTERM
turned into an exception) ends the whole group and waits until it is gone, so a lock
held around the block is released only after the last process of the command exited.
If Railyard itself dies, even by SIGKILL, the kernel tells the guard, which ends the
group. The guard's death signal fires when the *thread* that started it ends: the
block keeps that thread busy until the group is gone, so it always outlives the child.

stderr is drained by a thread (a full pipe would stall the command) and its last
``STDERR_KEEP_BYTES`` kept for the error message; ``error_line`` picks the line to show.
"""

from __future__ import annotations

import contextlib
import errno
import os
import shutil
import signal
import subprocess
import sys
import threading
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from types import TracebackType
from typing import IO

from railyard.core.errors import RetryableError

GUARD = Path(__file__).resolve().parent / "childguard.py"
STDERR_KEEP_BYTES = 16 * 1024
GUARD_EXIT_WAIT_S = 10.0  # the guard needs milliseconds; past this it is SIGKILLed (its command dies with it)
DRAIN_JOIN_S = 10.0

PIPE = subprocess.PIPE
DEVNULL = subprocess.DEVNULL
STDOUT = subprocess.STDOUT

StreamSpec = int | IO[bytes] | None


class ChildTimeoutError(RetryableError):
    """A command ran longer than it was given; its whole process group was ended."""


def start(
    argv: Sequence[str],
    *,
    env: Mapping[str, str],
    stdin: StreamSpec = DEVNULL,
    stdout: StreamSpec = PIPE,
    stderr: StreamSpec = PIPE,
    on_stderr_line: Callable[[bytes], None] | None = None,
) -> Child:
    """Start ``argv`` in its own process group; use the result as a context manager.

    ``stdin``/``stdout`` take what subprocess.Popen takes. ``stderr`` is PIPE (drained and
    its tail kept, each line also passed to ``on_stderr_line``) or STDOUT (merged). Raises
    FileNotFoundError / PermissionError when ``argv[0]`` cannot be run.
    """
    if not argv:
        raise ValueError("no command to run")
    _check_runnable(argv[0], env)
    proc = subprocess.Popen(
        [sys.executable, "-I", "-S", str(GUARD), str(os.getpid()), *argv],
        stdin=stdin,
        stdout=stdout,
        stderr=stderr,
        env=dict(env),
        start_new_session=True,
    )
    return Child(proc, os.path.basename(argv[0]), on_stderr_line)


def _check_runnable(program: str, env: Mapping[str, str]) -> None:
    found = shutil.which(program, path=env.get("PATH", os.defpath))
    if found:
        return
    exists = os.path.exists(program) if os.sep in program else False
    code = errno.EACCES if exists else errno.ENOENT
    raise (PermissionError if exists else FileNotFoundError)(code, os.strerror(code), program)


class Child:
    """A running command under its guard; ``pid`` is the guard's."""

    def __init__(self, proc: subprocess.Popen[bytes], name: str, on_stderr_line: Callable[[bytes], None] | None):
        self._proc = proc
        self.name = name
        self.pid = proc.pid
        self.stdin: IO[bytes] | None = proc.stdin
        self.stdout: IO[bytes] | None = proc.stdout
        self._stderr = bytearray()
        self._on_line = on_stderr_line
        self._drain: threading.Thread | None = None
        if proc.stderr is not None:
            self._drain = threading.Thread(target=self._drain_stderr, name=f"{name}-stderr", daemon=True)
            self._drain.start()

    def __enter__(self) -> Child:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    @property
    def returncode(self) -> int | None:
        return self._proc.returncode

    def poll(self) -> int | None:
        return self._proc.poll()

    def wait(self, timeout_s: float | None = None) -> int:
        """Wait until the command and everything it started are gone; return the exit status
        (negative: killed by that signal). Past ``timeout_s`` the group is ended and
        ChildTimeoutError raised."""
        try:
            code = self._proc.wait(timeout=timeout_s)
        except subprocess.TimeoutExpired:
            self.stop()
            raise ChildTimeoutError(
                f"{self.name} did not finish within {timeout_s:g} s; it and every process it started were stopped"
            ) from None
        self._join_drain()
        return code

    def stop(self) -> None:
        """End the command's whole process group now and wait until it is gone."""
        if self._proc.poll() is None:
            try:
                self._proc.send_signal(signal.SIGTERM)  # the guard SIGKILLs the group, reaps it, then exits
                self._proc.wait(timeout=GUARD_EXIT_WAIT_S)
            except subprocess.TimeoutExpired:
                self._proc.kill()
                self._proc.wait()
        self._join_drain()

    def close(self) -> None:
        """Stop the group if it is still running, then close the pipes."""
        self.stop()
        for pipe in (self._proc.stdin, self._proc.stdout, self._proc.stderr):
            if pipe is not None:
                with contextlib.suppress(BrokenPipeError):
                    pipe.close()

    def stderr_text(self) -> str:
        """The last STDERR_KEEP_BYTES the command wrote to stderr."""
        return self._stderr.decode(errors="replace")

    def error_line(self) -> str:
        """The stderr line that says what went wrong (see ``error_line``)."""
        return error_line(self.stderr_text())

    def _drain_stderr(self) -> None:
        assert self._proc.stderr is not None
        for line in self._proc.stderr:
            self._stderr += line
            del self._stderr[:-STDERR_KEEP_BYTES]
            if self._on_line is not None:
                self._on_line(line)

    def _join_drain(self) -> None:
        if self._drain is not None:
            self._drain.join(timeout=DRAIN_JOIN_S)


def error_line(text: str) -> str:
    """The line of a tool's output that says what went wrong: the first mentioning an error, else the last."""
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    return next((line for line in lines if "error" in line.lower()), lines[-1] if lines else "")
