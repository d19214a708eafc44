"""The guard between Railyard and a command it runs: run as ``python -I -S childguard.py PARENT_PID ARGV...``.

It exists because a dead parent can clean up nothing, and ``PR_SET_PDEATHSIG`` reaches only
the direct child (it is cleared on fork), not a shell's own children. The guard:

- asks the kernel for SIGTERM when the thread that started it ends (``PR_SET_PDEATHSIG``),
  so Railyard dying, even by SIGKILL, stops the command;
- is a child subreaper (``PR_SET_CHILD_SUBREAPER``): whatever the command starts stays
  its descendant, and orphans are reaped here rather than left to init;
- starts the command in a process group of its own (with ``PR_SET_PDEATHSIG`` = SIGKILL,
  in case the guard itself is killed), passes its stdin, stdout and stderr through, and
  waits for it;
- when the command exits, or on SIGTERM, SIGKILLs the command's process group and any
  descendant left, and reaps them all.

So the guard exits only once every process of the command is gone, with the command's
exit status (or dying by the same signal). Standard library only, and quick to start.
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import signal
import sys

PR_SET_PDEATHSIG = 1
PR_SET_CHILD_SUBREAPER = 36
EXEC_FAILED_EXIT = 127

_libc = ctypes.CDLL(None, use_errno=True)
_state: dict[str, int | bool] = {"pid": 0, "stopping": False}


def _prctl(option: int, value: int) -> None:
    _libc.prctl(option, value, 0, 0, 0)


def _kill_group(pid: int) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pid, signal.SIGKILL)


def _on_stop(signum: int, frame: object) -> None:
    _state["stopping"] = True
    pid = int(_state["pid"])
    if pid:
        _kill_group(pid)


def _children() -> list[int]:
    pids: list[int] = []
    try:
        for task in os.listdir("/proc/self/task"):
            with open(f"/proc/self/task/{task}/children") as f:
                pids.extend(int(p) for p in f.read().split())
    except OSError:
        pass
    return pids


def _reap_all(group: int) -> None:
    """SIGKILL the command's group and every other descendant, until none is left to reap."""
    while True:
        _kill_group(group)
        for pid in _children():  # descendants that left the group (setsid) came back to us as orphans
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        try:
            os.waitpid(-1, 0)
        except ChildProcessError:
            return


def _start(argv: list[str]) -> int:
    pid = os.fork()
    if pid == 0:
        try:
            os.setpgid(0, 0)
            _prctl(PR_SET_PDEATHSIG, signal.SIGKILL)
            for sig in (signal.SIGTERM, signal.SIGHUP, signal.SIGINT):
                signal.signal(sig, signal.SIG_DFL)
            os.execvp(argv[0], argv)  # noqa: S606 -- the command's own argv, run as given, never through a shell
        except OSError as exc:
            os.write(2, f"cannot start {argv[0]!r}: {exc.strerror}\n".encode(errors="replace"))
        os._exit(EXEC_FAILED_EXIT)
    return pid


def main(args: list[str]) -> int:
    parent, argv = int(args[0]), args[1:]
    _prctl(PR_SET_PDEATHSIG, signal.SIGTERM)
    _prctl(PR_SET_CHILD_SUBREAPER, 1)
    for sig in (signal.SIGTERM, signal.SIGHUP):
        signal.signal(sig, _on_stop)
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # a terminal's Ctrl-C is the parent's to handle
    if os.getppid() != parent:  # the parent died before the death signal was armed
        return 128 + signal.SIGTERM
    pid = _start(argv)
    _state["pid"] = pid
    if _state["stopping"]:
        _kill_group(pid)
    _, status = os.waitpid(pid, 0)
    _reap_all(pid)
    if os.WIFSIGNALED(status):
        sig = signal.Signals(os.WTERMSIG(status))
        if sig not in (signal.SIGKILL, signal.SIGSTOP):
            signal.signal(sig, signal.SIG_DFL)
        os.kill(os.getpid(), sig)
    return os.waitstatus_to_exitcode(status)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
