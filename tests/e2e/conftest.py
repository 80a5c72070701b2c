"""Real worker processes (`python -m steadymail worker`) against a real SMTP server."""

import json
import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest


@dataclass
class Workers:
    """Starts, kills and restarts `steadymail worker` processes, as a supervisor would."""

    env: dict[str, str]
    logdir: Path
    procs: dict[str, subprocess.Popen[bytes]] = field(default_factory=dict)
    starts: int = 0

    def start(self, name: str) -> subprocess.Popen[bytes]:
        self.starts += 1
        log = open(self.logdir / f"{name}.{self.starts}.log", "wb")  # noqa: SIM115
        proc = subprocess.Popen(
            [sys.executable, "-m", "steadymail", "worker"],
            env=self.env,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        self.procs[name] = proc
        return proc

    def kill(self, name: str, sig: signal.Signals = signal.SIGKILL) -> None:
        self.procs[name].send_signal(sig)
        if sig in (signal.SIGKILL, signal.SIGTERM):
            self.procs[name].wait(30)

    def logs(self) -> str:
        return "".join(p.read_text(errors="replace") for p in sorted(self.logdir.glob("*.log")))

    def stop_all(self) -> None:
        for p in self.procs.values():
            if p.poll() is None:
                p.send_signal(signal.SIGCONT)
                p.terminate()
        for p in self.procs.values():
            try:
                p.wait(30)
            except subprocess.TimeoutExpired:
                p.kill()


def region_env(
    db_url: str,
    smtp_port: int,
    tmp: Path,
    relay: dict[str, object] | None = None,
    **settings: object,
) -> dict[str, str]:
    """The environment of a `steadymail` process of a region under test: this one's without the
    caller's STEADYMAIL_*, plus the database, a data directory and a config file path (absent)
    under `tmp`, the relay at `smtp_port` (with `relay`'s options), and `settings` as
    STEADYMAIL_* variables."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("STEADYMAIL_")}
    env.update(
        {
            "STEADYMAIL_DATABASE_URL": db_url,
            "STEADYMAIL_DATA_DIR": str(tmp / "data"),
            "STEADYMAIL_CONFIG": str(tmp / "none.toml"),
            "STEADYMAIL_RELAYS": json.dumps(
                [{"host": "127.0.0.1", "port": smtp_port, **(relay or {})}]
            ),
            # The relay is the test's aiosmtpd, and example.com is nobody's verified domain.
            "STEADYMAIL_ALLOW_UNVERIFIED_DOMAINS": "true",
        }
    )
    env.update({f"STEADYMAIL_{k.upper()}": str(v) for k, v in settings.items()})
    return env


@pytest.fixture
def workers_for(tmp_path: Path) -> Iterator[object]:
    made: list[Workers] = []

    def make(db_url: str, smtp_port: int, **settings: object) -> Workers:
        env = region_env(db_url, smtp_port, tmp_path, **settings)
        logdir = tmp_path / "logs"
        logdir.mkdir(exist_ok=True)
        w = Workers(env, logdir)
        made.append(w)
        return w

    yield make
    for w in made:
        w.stop_all()


@dataclass
class UpPorts:
    api: int
    public: int
    sink: int


def up_env(**settings: object) -> tuple[dict[str, str], UpPorts]:
    """The environment for a `steadymail up` of one region with two workers on free ports
    (admin API, public listener, capture sink), plus `settings` as STEADYMAIL_* variables."""
    from tests.helpers import free_port

    ports = UpPorts(free_port(), free_port(), free_port())
    env = {k: v for k, v in os.environ.items() if not k.startswith("STEADYMAIL_")}
    env.update(
        {
            "STEADYMAIL_API_PORT": str(ports.api),
            "STEADYMAIL_PUBLIC_PORT": str(ports.public),
            "STEADYMAIL_SINK_PORT": str(ports.sink),
            "STEADYMAIL_INBOUND_PORT": str(free_port()),
            "STEADYMAIL_RELAYS": f'[{{"host": "127.0.0.1", "port": {ports.sink}}}]',
            "STEADYMAIL_WORKERS": "2",
        }
    )
    env.update({f"STEADYMAIL_{k.upper()}": str(v) for k, v in settings.items()})
    return env, ports
