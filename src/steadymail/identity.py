"""Which service slot a process fills, under any supervisor, and whether a host peer still runs.

A slot is the place a process fills (`worker-1`, `steadymail-worker@2`, `worker@pod-0`): a new
process in the slot of one that ended is a restart. It resolves, in order, from:

1. the `slot` setting (`STEADYMAIL_SLOT`; `steadymail up` sets it for its children);
2. systemd: the unit the process runs in and the host (`steadymail-worker@2 on box`;
   `INVOCATION_ID` set, unit read from /proc/self/cgroup);
3. Kubernetes (`KUBERNETES_SERVICE_HOST` set) or a container (/.dockerenv, /run/.containerenv,
   `container=`): `<service>@<hostname>`, the pod or container name, which survives a restart
   of the container;
4. the host: `<service>@<hostname>`.

For 2 to 4 several processes of one service may share the name (two `while true; do steadymail
worker; done` loops on one host), so each also takes the first free numbered lock file
(`…#2`, `…#3`) and holds it while it lives. The kernel drops the lock the moment the process
dies, SIGKILL included: a process that gets a lock knows that the previous holder *of that lock
file* is gone. Two hosts (or pods on one node's network) can share a hostname, so the lock
file's identity (boot, device, inode) goes with the instance, and only a predecessor that held
the same file counts as certainly gone.
"""

from __future__ import annotations

import contextlib
import fcntl
import functools
import logging
import os
import re
import socket
from dataclasses import dataclass
from pathlib import Path
from typing import IO

log = logging.getLogger("steadymail.identity")

_UNIT = re.compile(r"([A-Za-z0-9:_.\\@-]+\.service)$")
MAX_SLOTS = 256


@dataclass(frozen=True)
class Identity:
    """Where a process's slot came from; ``certain_successor`` when the slot's lock (or its
    systemd unit) guarantees that any earlier holder has ended."""

    slot: str
    source: str  # setting | systemd | kubernetes | container | host
    certain_successor: bool
    # `boot:device:inode` of the lock file held, so a successor can tell it is the same file.
    lock: str | None = None


def systemd_unit(environ: dict[str, str], cgroup_text: str) -> str | None:
    """The service unit this process runs in, when systemd started it."""
    if not environ.get("INVOCATION_ID"):
        return None
    for line in cgroup_text.splitlines():
        path = line.rsplit(":", 1)[-1]
        for part in reversed(path.split("/")):
            m = _UNIT.match(part)
            if m:
                return m.group(1)
    return None


def container_kind(environ: dict[str, str], root: Path = Path("/")) -> str | None:
    if environ.get("KUBERNETES_SERVICE_HOST"):
        return "kubernetes"
    if (
        environ.get("container")
        or (root / ".dockerenv").exists()
        or (root / "run/.containerenv").exists()
    ):
        return "container"
    return None


def base_slot(
    service: str,
    environ: dict[str, str],
    cgroup_text: str,
    hostname: str,
    root: Path = Path("/"),
) -> tuple[str, str]:
    """(slot name before numbering, its source) from what the supervisor provides."""
    unit = systemd_unit(environ, cgroup_text)
    if unit is not None:
        # Unit names repeat on every host of a fleet: the host makes the slot one place.
        return f"{unit.removesuffix('.service')} on {hostname}", "systemd"
    kind = container_kind(environ, root)
    return f"{service}@{hostname}", kind or "host"


_held: list[IO[bytes]] = []  # the slot locks this process holds, for its whole life


def _take_lock(path: Path) -> str | None:
    """The lock file's identity when this process now holds it, else None."""
    f = open(path, "ab")  # noqa: SIM115 - held open until the process ends
    try:
        fcntl.flock(f.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        f.close()
        return None
    _held.append(f)
    st = os.fstat(f.fileno())
    return f"{_boot_id()}:{st.st_dev}:{st.st_ino}"


def numbered_slot(base: str, region: str, lock_dir: Path) -> tuple[str, str | None]:
    """The first of ``base``, ``base#2``, … whose lock is free, and the held lock's identity."""
    safe = re.sub(r"[^A-Za-z0-9_.@-]", "_", f"{region}.{base}")
    try:
        lock_dir.mkdir(parents=True, exist_ok=True)
        for n in range(1, MAX_SLOTS + 1):
            lock = _take_lock(lock_dir / f"{safe}.{n}.lock")
            if lock is not None:
                return (base if n == 1 else f"{base}#{n}"), lock
    except OSError as e:
        log.warning(
            "event=slot_lock_unavailable slot=%s dir=%s error=%r "
            "(a restart in this slot is then known by missed heartbeats, not at once)",
            base,
            lock_dir,
            str(e),
        )
    # No lock directory we can write to: the name alone, and no certainty about predecessors.
    return base, None


def resolve(
    service: str,
    region: str,
    explicit: str,
    lock_dir: Path,
    environ: dict[str, str] | None = None,
) -> Identity:
    """This process's slot (see the module docstring for the order)."""
    if explicit:
        return Identity(explicit, "setting", False)
    env = dict(os.environ if environ is None else environ)
    cgroup = ""
    with contextlib.suppress(OSError):
        cgroup = Path("/proc/self/cgroup").read_text()
    base, source = base_slot(service, env, cgroup, socket.gethostname())
    slot, lock = numbered_slot(base, region, lock_dir)
    return Identity(slot, source, lock is not None, lock)


def _boot_id() -> str:
    with contextlib.suppress(OSError):
        return Path("/proc/sys/kernel/random/boot_id").read_text().strip()
    return ""


@functools.cache
def _boot_and_pidns() -> str:
    """This process's boot and PID namespace: fixed for its life, read once."""
    boot = _boot_id()
    ns = ""
    with contextlib.suppress(OSError):
        ns = str(os.stat("/proc/self/ns/pid").st_ino)
    return f"{boot}:{ns}"


def _stat_fields(pid: int) -> list[str] | None:
    try:
        text = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    # The command name may hold spaces and parentheses: the fields start after the last ')'.
    return text[text.rfind(")") + 2 :].split()


def process_key(pid: int | None = None) -> str | None:
    """`boot:pidns:starttime` of a process (this one by default): the same only for the same
    process, never for a later one that reuses its PID. None where /proc is missing."""
    fields = _stat_fields(os.getpid() if pid is None else pid)
    if fields is None or len(fields) < 20:
        return None
    return f"{_boot_and_pidns()}:{fields[19]}"


def same_pid_space(key: str | None) -> bool:
    """Whether a process with this key ran in this process's boot and PID namespace."""
    if not key:
        return False
    return key.rsplit(":", 1)[0] == _boot_and_pidns()


def process_gone(pid: int, key: str | None) -> bool:
    """True when the process is certainly no longer running: no such PID, a zombie (it ended
    and only waits to be reaped), or another process that reused the PID."""
    fields = _stat_fields(pid)
    if fields is None:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return True
        except PermissionError:
            return False
        return False
    if fields[0] in ("Z", "X"):
        return True
    return key is not None and process_key(pid) != key


def stopped(pid: int) -> bool:
    """True while the process is stopped by a signal (SIGSTOP, SIGTSTP: state T). A debugger's
    tracing stop (state t) is not: a person is looking at it."""
    fields = _stat_fields(pid)
    return fields is not None and fields[0] == "T"


def runs_steadymail(pid: int) -> bool:
    """Whether the process runs this program (`steadymail …` or `python -m steadymail …`)."""
    try:
        argv = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
    except OSError:
        return False
    return any(a == b"steadymail" or a.endswith(b"/steadymail") for a in argv[:3])


def sqlite_writer_pid(database: Path) -> int | None:
    """A PID holding an exclusive lock of a SQLite database in WAL mode, from /proc/locks.

    The write lock (byte 120 of the -shm file, https://sqlite.org/walformat.html) is held for
    a whole write transaction; the others (checkpoint, recovery, the read marks while the WAL
    restarts, the database file itself) only for moments, but a process stopped inside one of
    those moments holds even readers. Shared (READ) locks are every connection's, never
    returned."""
    files = []
    for name in (f"{database}-shm", str(database)):
        try:
            st = os.stat(name)
        except OSError:
            continue
        files.append(f"{os.major(st.st_dev):02x}:{os.minor(st.st_dev):02x}:{st.st_ino}")
    try:
        locks = Path("/proc/locks").read_text()
    except OSError:
        return None
    for line in locks.splitlines():
        # "1: POSIX  ADVISORY  WRITE 29550 fe:00:2148928 120 120"
        parts = line.split()
        if len(parts) >= 6 and parts[1] == "POSIX" and parts[3] == "WRITE" and parts[5] in files:
            with contextlib.suppress(ValueError):
                return int(parts[4])
    return None
