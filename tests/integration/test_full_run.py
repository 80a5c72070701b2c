"""A green `make test` means everything ran: it requires PostgreSQL (and promtool, systemd-analyze,
the NAB subset), `scripts/ensure-postgres` fails when PostgreSQL cannot be reached, and a run that
requires PostgreSQL fails, rather than skips, when it does not answer."""

import os
import shutil
import subprocess
import sys
from pathlib import Path

from tests.helpers import free_port

REPO = Path(__file__).resolve().parents[2]
REQUIRED = ["PG", "PROMTOOL", "SYSTEMD", "NAB", "CHROMIUM", "SPAMASSASSIN", "POSTFIX"]
# The ensure scripts `make test` runs, in its order.
ENSURE = [
    "ensure-postgres",
    "ensure-promtool",
    "ensure-systemd-analyze",
    "ensure-chromium",
    "ensure-spamassassin",
    "ensure-postfix",
]


def _fake_checkout(tmp_path: Path, postgres_ok: bool) -> Path:
    """The Makefile beside stand-ins for the ensure scripts and the venv's pytest, which write
    down that they ran (pytest: with which STEADYMAIL_REQUIRE_* it ran)."""
    root = tmp_path / "checkout"
    (root / "scripts").mkdir(parents=True)
    (root / "venv" / "bin").mkdir(parents=True)
    shutil.copy(REPO / "Makefile", root / "Makefile")
    (root / "pyproject.toml").write_text("")
    log = root / "ran.log"
    for name in ENSURE:
        status = 1 if name == "ensure-postgres" and not postgres_ok else 0
        script = root / "scripts" / name
        script.write_text(f"#!/bin/sh\necho {name} >> {log}\nexit {status}\n")
        script.chmod(0o755)
    pytest_stub = root / "venv" / "bin" / "pytest"
    pytest_stub.write_text(
        "#!/bin/sh\necho pytest"
        + "".join(f" {n}=$STEADYMAIL_REQUIRE_{n}" for n in REQUIRED)
        + f" >> {log}\n"
    )
    pytest_stub.chmod(0o755)
    # Newer than pyproject.toml: make sees the venv as installed and does not rebuild it.
    (root / "venv" / "bin" / "steadymail").write_text("")
    os.utime(root / "pyproject.toml", (1, 1))
    return root


def _make_test(root: Path) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("STEADYMAIL_")}
    return subprocess.run(
        ["make", "-s", "test", "VENV=venv"],
        cwd=root,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_make_test_requires_everything_and_stops_without_postgres(tmp_path: Path) -> None:
    root = _fake_checkout(tmp_path, postgres_ok=True)
    out = _make_test(root)
    assert out.returncode == 0, out.stdout + out.stderr
    ran = (root / "ran.log").read_text().splitlines()
    assert ran == [*ENSURE, "pytest " + " ".join(f"{n}=1" for n in REQUIRED)]

    root = _fake_checkout(tmp_path / "down", postgres_ok=False)
    out = _make_test(root)
    assert out.returncode != 0
    assert (root / "ran.log").read_text().splitlines() == ["ensure-postgres"]


def test_ensure_postgres_fails_when_nothing_answers() -> None:
    port = free_port()  # nothing listens there, and no local cluster is configured for it
    out = subprocess.run(
        [str(REPO / "scripts" / "ensure-postgres")],
        env={**os.environ, "PG_PORT": str(port), "PG_WAIT": "1"},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert out.returncode != 0
    assert f"did not come up on 127.0.0.1:{port}" in out.stderr


def _pytest_against_dead_postgres(require: bool) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("STEADYMAIL_")}
    env["STEADYMAIL_TEST_PG"] = f"postgresql://postgres@127.0.0.1:{free_port()}/postgres"
    if require:
        env["STEADYMAIL_REQUIRE_PG"] = "1"
    return subprocess.run(
        [
            sys.executable,
            "-m",
            "pytest",
            "-p",
            "no:cacheprovider",
            "-q",
            "tests/integration/store/test_migrations.py",
            "-k",
            "postgresql",
        ],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )


def test_a_run_that_requires_postgres_fails_without_it() -> None:
    out = _pytest_against_dead_postgres(require=True)
    assert out.returncode == 1, out.stdout[-3000:]
    assert "STEADYMAIL_REQUIRE_PG=1 requires it" in out.stdout, out.stdout[-3000:]
    assert " skipped" not in out.stdout.splitlines()[-1], out.stdout[-3000:]


def test_a_run_that_does_not_require_postgres_skips_and_says_so() -> None:
    out = _pytest_against_dead_postgres(require=False)
    assert out.returncode == 0, out.stdout[-3000:]
    assert "skipped" in out.stdout.splitlines()[-1], out.stdout[-3000:]
    assert "NOT A FULL RUN" in out.stdout, out.stdout[-3000:]
