"""Child processes of the stack: spawn each in its own session, stop whole process groups.

Every component runs in its own session (``start_new_session``), so its process group id equals
its pid and a signal to the group reaches every process it forked that did not leave the group.
Processes that did leave (or were re-parented) are found by their recorded descendants and by
command lines that mention the run directory.
"""

from __future__ import annotations

import contextlib
import logging
import os
import signal
import subprocess
import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import psutil

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Launch:
    """How to start one long-running child (or one one-shot setup command)."""

    argv: Sequence[str]
    env: Mapping[str, str] = field(default_factory=dict)
    """Added to the inherited environment."""
    user: str | None = None
    """Run as this system user (only when we are root)."""
    cwd: Path | None = None
    session_nice: int | None = None
    """The nice value of the child's session as a whole (Linux's autogroup), which it and
    everything it forks share. Linux shares busy cores between sessions first and only then
    between the processes of one session, so a process's own nice value weighs only against its
    session's other processes. ``None`` leaves the session at 0 like every other one. A value
    below 0 needs ``CAP_SYS_NICE``; without it the child runs at 0 and a warning says so."""


def spawn(launch: Launch, log_path: Path) -> subprocess.Popen[bytes]:
    """Start ``launch`` in a new session, stdout and stderr appended to ``log_path``."""
    log_path.parent.mkdir(parents=True, exist_ok=True)
    env = {**os.environ, **launch.env}
    with log_path.open("ab") as out:
        out.write(f"\n--- {time.strftime('%F %T')} exec {' '.join(launch.argv)}\n".encode())
        out.flush()
        child = subprocess.Popen(
            list(launch.argv),
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
            env=env,
            cwd=launch.cwd,
            start_new_session=True,
            user=launch.user,
            group=_group_of(launch.user),
            extra_groups=[] if launch.user else None,
        )
    if launch.session_nice is not None:
        set_session_nice(child.pid, launch.session_nice)
    return child


def set_session_nice(pid: int, nice: int) -> bool:
    """Give the session of ``pid`` (it leads a new one) the nice value ``nice``; False where the
    kernel has no autogroups (not Linux, or built without them) or refuses it."""
    path = Path(f"/proc/{pid}/autogroup")
    try:
        path.write_text(f"{nice}\n")
    except FileNotFoundError:
        return False
    except OSError as exc:  # EPERM/EACCES below 0 without CAP_SYS_NICE
        log.warning("session of pid %s stays at nice 0, not %s: %s", pid, nice, exc)
        return False
    return True


def _group_of(user: str | None) -> int | None:
    if user is None:
        return None
    import pwd

    return pwd.getpwnam(user).pw_gid


def same_process(pid: int | None, create_time: float | None) -> psutil.Process | None:
    """The live process ``pid`` if it is the one recorded (same start time), else ``None``."""
    if pid is None:
        return None
    try:
        proc = psutil.Process(pid)
        if create_time is not None and abs(proc.create_time() - create_time) > 0.5:
            return None
        if proc.status() == psutil.STATUS_ZOMBIE:
            return None
        return proc
    except psutil.Error:
        return None


def create_time_of(pid: int) -> float | None:
    try:
        return float(psutil.Process(pid).create_time())
    except psutil.Error:
        return None


def tree(pid: int) -> list[psutil.Process]:
    """``pid`` and all its descendants that are alive now."""
    try:
        root = psutil.Process(pid)
        return [root, *root.children(recursive=True)]
    except psutil.Error:
        return []


def group_members(pgid: int) -> list[psutil.Process]:
    members = []
    for proc in psutil.process_iter():
        with contextlib.suppress(psutil.Error, OSError):
            if os.getpgid(proc.pid) == pgid:
                members.append(proc)
    return members


def processes_mentioning(paths: Iterable[str]) -> list[psutil.Process]:
    """Live processes (not this one) whose command line contains any of ``paths``."""
    needles = [p for p in paths if p]
    found = []
    me = os.getpid()
    for proc in psutil.process_iter(["cmdline"]):
        if proc.pid == me:
            continue
        cmdline = " ".join(proc.info.get("cmdline") or [])
        if any(needle in cmdline for needle in needles):
            found.append(proc)
    return found


def _alive(procs: Iterable[psutil.Process]) -> list[psutil.Process]:
    alive = []
    for proc in procs:
        with contextlib.suppress(psutil.Error):
            if proc.is_running() and proc.status() != psutil.STATUS_ZOMBIE:
                alive.append(proc)
    return alive


def terminate(
    procs: Sequence[psutil.Process],
    *,
    pgid: int | None = None,
    sig: int = signal.SIGTERM,
    grace_s: float = 10.0,
    signal_group: bool = True,
) -> list[psutil.Process]:
    """Stop ``procs`` (the first is the main process) and SIGKILL what is left after ``grace_s``.

    ``sig`` goes to the process group ``pgid`` and every process in ``procs`` when
    ``signal_group``, else only to the main process (which then stops its own children).
    Returns the processes that survived even SIGKILL (normally none).
    """
    if signal_group and pgid is not None:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(pgid, sig)
    for proc in procs if signal_group else procs[:1]:
        with contextlib.suppress(psutil.Error):
            proc.send_signal(sig)
    _, alive = psutil.wait_procs(_alive(procs), timeout=grace_s)
    if pgid is not None:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(pgid, signal.SIGKILL)
    for proc in alive:
        log.warning("pid %s did not stop within %.0f s; killing it", proc.pid, grace_s)
        with contextlib.suppress(psutil.Error):
            proc.kill()
    _, survivors = psutil.wait_procs(_alive(alive), timeout=5)
    return list(survivors)


def rss_bytes(pid: int) -> int:
    """Resident memory of ``pid`` and all its descendants."""
    total = 0
    for proc in tree(pid):
        with contextlib.suppress(psutil.Error):
            total += proc.memory_info().rss
    return total


def log_tail(path: Path | str | None, lines: int = 20) -> str:
    if path is None:
        return ""
    try:
        with Path(path).open("rb") as handle:
            handle.seek(0, os.SEEK_END)
            handle.seek(max(0, handle.tell() - 64 * 1024))
            text = handle.read().decode("utf-8", errors="replace")
    except OSError:
        return ""
    return "\n".join(text.splitlines()[-lines:])


def cpu_seconds(pid: int) -> float | None:
    """CPU time (user + system) ``pid`` and its live descendants have used so far; ``None``
    when ``pid`` is gone. A descendant that exits meanwhile is left out."""
    total = 0.0
    procs = tree(pid)
    if not procs:
        return None
    for proc in procs:
        try:
            times = proc.cpu_times()
        except psutil.Error:
            continue
        total += times.user + times.system
    return total
