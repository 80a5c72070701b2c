"""`steadymail nab cv` as a user runs it, on the platform's own incident corpus in the repo."""

import os
import subprocess
import sys
from pathlib import Path

from typer.testing import CliRunner

from steadymail.cli.main import app as cli

CORPUS = Path(__file__).resolve().parents[3] / "data" / "platform-corpus"


def nab(*args: str, tmp_path: Path) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("STEADYMAIL_")}
    env.update(
        {"STEADYMAIL_DATA_DIR": str(tmp_path), "STEADYMAIL_CONFIG": str(tmp_path / "none.toml")}
    )
    return subprocess.run(
        [sys.executable, "-m", "steadymail", "nab", *args],
        env={**env, "COLUMNS": "200"},
        capture_output=True,
        text=True,
        timeout=300,
    )


def test_cv_prints_each_fold_and_the_pooled_score(tmp_path: Path) -> None:
    r = nab("cv", "--corpus", str(CORPUS), "--folds", "3", "--detector", "ewma", tmp_path=tmp_path)
    assert r.returncode == 0, r.stderr
    out = r.stdout
    assert "ewma: 3 setting(s) of its constants, 3 folds" in out
    fold_rows = [line for line in out.splitlines() if line.startswith("│") and "alpha=" in line]
    assert len(fold_rows) == 3
    for profile in ("standard", "reward_low_FP_rate", "reward_low_FN_rate"):
        assert f"{profile}: held-out pooled " in out
        assert f"{profile}: default constants at the production threshold 0.6" in out


def test_cv_refuses_what_it_cannot_do(tmp_path: Path) -> None:
    # The command's own errors, through the real entry point (one line, exit status 2).
    r = nab("cv", "--corpus", str(tmp_path), "--detector", "ewma", tmp_path=tmp_path)
    assert r.returncode == 2 and "not a NAB corpus" in r.stderr
    r = nab("cv", "--corpus", str(CORPUS), "--folds", "99", "--detector", "ewma", tmp_path=tmp_path)
    assert r.returncode == 2 and "99 folds for" in r.stderr
    # Its options' errors, in process (Typer's usage errors, exit status 2).
    runner = CliRunner(env={"COLUMNS": "200"})  # one line, whatever the terminal
    r = runner.invoke(cli, ["nab", "cv", "--corpus", str(CORPUS), "--detector", "nope"])
    assert r.exit_code == 2 and "unknown detector 'nope'" in r.output
    r = runner.invoke(cli, ["nab", "cv", "--corpus", str(CORPUS), "--folds", "1"])
    assert r.exit_code == 2 and "greater than or equal to 2" in r.output
