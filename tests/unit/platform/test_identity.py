"""A process's slot under any supervisor, and whether a host peer still runs."""

import os
import subprocess
import sys
from pathlib import Path

import pytest

from steadymail import identity
from tests.helpers import wait_until

CGROUP_V2 = "0::/system.slice/system-steadymail\\x2dworker.slice/steadymail-worker@2.service\n"
CGROUP_V1 = (
    "12:pids:/system.slice/steadymail-api.service\n"
    "1:name=systemd:/system.slice/steadymail-api.service\n"
)


def test_systemd_unit_comes_from_the_cgroup_only_under_systemd() -> None:
    env = {"INVOCATION_ID": "abc"}
    assert identity.systemd_unit(env, CGROUP_V2) == "steadymail-worker@2.service"
    assert identity.systemd_unit(env, CGROUP_V1) == "steadymail-api.service"
    # A login shell also lives in a .scope or user unit; without INVOCATION_ID it is no service.
    assert identity.systemd_unit({}, CGROUP_V2) is None
    assert identity.systemd_unit(env, "0::/user.slice/session-3.scope\n") is None


def test_the_base_slot_follows_the_supervisor(tmp_path: Path) -> None:
    sysd = identity.base_slot("worker", {"INVOCATION_ID": "x"}, CGROUP_V2, "h", tmp_path)
    # Unit names repeat on every host of a fleet: the host is part of the slot.
    assert sysd == ("steadymail-worker@2 on h", "systemd")
    k8s = identity.base_slot("worker", {"KUBERNETES_SERVICE_HOST": "10.0.0.1"}, "", "w-0", tmp_path)
    assert k8s == ("worker@w-0", "kubernetes")
    (tmp_path / ".dockerenv").touch()
    assert identity.base_slot("api", {}, "", "c0ffee", tmp_path) == ("api@c0ffee", "container")
    bare = tmp_path / "bare"
    bare.mkdir()
    assert identity.base_slot("worker", {}, "", "box", bare) == ("worker@box", "host")


def test_an_explicit_slot_wins(tmp_path: Path) -> None:
    ident = identity.resolve("worker", "R1", "worker-3", tmp_path, {"INVOCATION_ID": "x"})
    assert ident == identity.Identity("worker-3", "setting", False)


# The holder lives until the test kills it: it waits on its stdin, not a clock.
_HOLD = """
import sys
from pathlib import Path
from steadymail import identity
slot, lock = identity.numbered_slot("worker@box", "R1", Path(sys.argv[1]))
print(slot, lock is not None, flush=True)
sys.stdin.read()
"""


def _holder(lock_dir: Path) -> tuple[subprocess.Popen[str], str]:
    p = subprocess.Popen(
        [sys.executable, "-c", _HOLD, str(lock_dir)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    assert p.stdout is not None
    slot, locked = p.stdout.readline().split()
    assert locked == "True"
    return p, slot


def test_numbered_slots_are_held_while_a_process_lives_and_freed_when_it_dies(
    tmp_path: Path,
) -> None:
    a, slot_a = _holder(tmp_path)
    b, slot_b = _holder(tmp_path)
    try:
        assert (slot_a, slot_b) == ("worker@box", "worker@box#2")
        a.kill()  # SIGKILL: no clean-up runs, the kernel drops the lock
        a.wait()
        c, slot_c = _holder(tmp_path)
        try:
            # The successor takes the dead process's slot, not a third one.
            assert slot_c == "worker@box"
        finally:
            c.kill()
            c.wait()
    finally:
        b.kill()
        b.wait()


def test_a_slot_without_a_lock_directory_says_so_in_the_log(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    blocked = tmp_path / "a-file"
    blocked.write_text("")  # the lock directory would have to be inside a file
    with caplog.at_level("WARNING", logger="steadymail.identity"):
        slot, lock = identity.numbered_slot("worker@box", "R1", blocked / "slots")
    assert (slot, lock) == ("worker@box", None)  # the name alone, no certainty
    assert any(
        "event=slot_lock_unavailable slot=worker@box" in m and str(blocked) in m
        for m in caplog.messages
    ), caplog.messages


def test_process_gone_sees_exits_zombies_and_reused_pids() -> None:
    me = identity.process_key()
    assert me is not None and identity.same_pid_space(me)
    assert not identity.process_gone(os.getpid(), me)
    child = subprocess.Popen(
        [sys.executable, "-c", "import sys; sys.stdin.read()"], stdin=subprocess.PIPE
    )
    key = identity.process_key(child.pid)
    assert key is not None and not identity.process_gone(child.pid, key)
    # The same PID with another start time is another process: ours is gone.
    assert identity.process_gone(child.pid, key.rsplit(":", 1)[0] + ":1")
    child.kill()
    # A zombie until reaped: already gone.
    wait_until(lambda: identity.process_gone(child.pid, key), 10, "the killed child gone")
    child.wait()
    assert identity.process_gone(child.pid, key)


@pytest.mark.parametrize("key", ["other-boot:1:5", None])
def test_a_process_of_another_boot_or_namespace_is_not_judged_here(key: str | None) -> None:
    assert not identity.same_pid_space(key)
