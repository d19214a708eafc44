"""A throwaway unprivileged Unix user, for running scripts as a newcomer would (the tests run as root)."""

from __future__ import annotations

import contextlib
import os
import pwd
import secrets
import shutil
import signal
import subprocess
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

# Where an unprivileged user can write besides its home and the directories a test gives it.
SHARED_WRITABLE_DIRS = ("/tmp", "/var/tmp", "/dev/shm", "/run")  # noqa: S108  # searched, not written


@dataclass(frozen=True)
class UnixUser:
    name: str
    uid: int
    gid: int
    home: Path
    since: float = field(default_factory=time.time)  # files older than this are not this user's (uids are reused)
    dirs: list[Path] = field(default_factory=list)

    def mkdtemp(self, prefix: str) -> Path:
        """A new directory in /tmp owned by this user (pytest's tmp_path is private to root), removed with the user."""
        path = Path(tempfile.mkdtemp(prefix=prefix))
        self.dirs.append(path)
        os.chown(path, self.uid, self.gid)
        return path

    def run(self, args: list[str], **kwargs: Any) -> subprocess.CompletedProcess[str]:
        """``args`` as this user, without its groups or any of root's."""
        return subprocess.run(
            args, user=self.uid, group=self.gid, extra_groups=[], text=True, capture_output=True, check=False, **kwargs
        )

    def can_run(self, *args: str) -> bool:
        """Whether ``args`` runs and exits 0 as this user."""
        try:
            return 0 == self.run(list(args), timeout=120).returncode
        except OSError:  # not executable by this user
            return False

    def processes(self) -> list[int]:
        """Pids of this user's live processes (zombies excluded: they have exited)."""
        pids = []
        for status in Path("/proc").glob("[0-9]*/status"):
            with contextlib.suppress(OSError):
                fields = dict(line.split(":", 1) for line in status.read_text().splitlines() if ":" in line)
                if int(fields["Uid"].split()[0]) == self.uid and not fields["State"].strip().startswith("Z"):
                    pids.append(int(status.parent.name))
        return pids

    def files_in(self, *roots: str | Path) -> list[Path]:
        """Everything this user owns under ``roots``, changed since the user was made."""
        found: list[Path] = []
        for root in roots:
            out = subprocess.run(
                ["find", str(root), "-user", str(self.uid), "-newermt", f"@{self.since:.0f}"],
                capture_output=True,
                text=True,
                check=False,
            ).stdout
            found.extend(Path(line) for line in out.splitlines())
        return found


@contextlib.contextmanager
def temporary_user() -> Iterator[UnixUser]:
    """A new user with an empty home in /tmp; its processes, home and account go afterwards."""
    name = f"ry{secrets.token_hex(4)}"
    since = time.time() - 1  # find -newermt compares whole seconds
    home = Path(tempfile.mkdtemp(prefix=f"{name}-home-"))
    subprocess.run(
        ["useradd", "--no-create-home", "--home-dir", str(home), "--shell", "/bin/sh", "--user-group", name],
        check=True,
        capture_output=True,
    )
    entry = pwd.getpwnam(name)
    os.chown(home, entry.pw_uid, entry.pw_gid)
    user = UnixUser(name, entry.pw_uid, entry.pw_gid, home, since)
    try:
        yield user
    finally:
        for pid in user.processes():  # only this test's user: whatever it left running
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        deadline = time.monotonic() + 10
        while user.processes() and time.monotonic() < deadline:
            time.sleep(0.1)
        for path in user.dirs:
            shutil.rmtree(path, ignore_errors=True)
        for path in sorted(user.files_in(*SHARED_WRITABLE_DIRS), reverse=True):  # a later user may get this uid
            with contextlib.suppress(OSError):
                path.rmdir() if path.is_dir() and not path.is_symlink() else path.unlink()
        subprocess.run(["userdel", name], check=False, capture_output=True)
        shutil.rmtree(home, ignore_errors=True)
