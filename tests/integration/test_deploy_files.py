"""deploy/: the Prometheus rules pass promtool (syntax and their unit tests), and every metric
the rules and the Grafana dashboard use is one the platform exports at /metrics."""

import json
import re
import shutil
import subprocess
from pathlib import Path

from prometheus_client import REGISTRY, generate_latest

import steadymail.metrics  # noqa: F401 - defines the platform's metrics in the registry
from tests.helpers import need

DEPLOY = Path(__file__).resolve().parents[2] / "deploy"
PROMTOOL = shutil.which("promtool")
_SUFFIXES = ("_bucket", "_count", "_sum", "_total", "_created")


def _family(name: str) -> str:
    for suffix in _SUFFIXES:
        if name.endswith(suffix):
            return name[: -len(suffix)]
    return name


def _exported() -> set[str]:
    text = generate_latest(REGISTRY).decode()
    return {_family(m) for m in re.findall(r"^# TYPE (steadymail_\w+)", text, re.M)}


def _used(text: str) -> set[str]:
    return {_family(m) for m in re.findall(r"\b(steadymail_[a-z_]+)", text)}


def test_rules_pass_promtool_check_and_unit_tests() -> None:
    need("PROMTOOL", PROMTOOL is not None, "promtool not installed (scripts/ensure-promtool)")
    assert PROMTOOL is not None
    rules = DEPLOY / "prometheus"
    for args in (
        ["check", "rules", "steadymail-rules.yml"],
        ["test", "rules", "steadymail-rules.test.yml"],
        ["check", "config", "prometheus.yml"],
    ):
        out = subprocess.run([PROMTOOL, *args], cwd=rules, capture_output=True, text=True)
        assert out.returncode == 0, out.stdout + out.stderr


def test_rules_and_dashboard_only_use_exported_metrics() -> None:
    exported = _exported()
    rules = (DEPLOY / "prometheus" / "steadymail-rules.yml").read_text()
    dashboard = json.loads((DEPLOY / "grafana" / "steadymail-dashboard.json").read_text())
    exprs = " ".join(t["expr"] for p in dashboard["panels"] for t in p["targets"])
    for where, used in (("rules", _used(rules)), ("dashboard", _used(exprs))):
        assert used, f"{where} use no steadymail metric"
        assert used <= exported, f"{where} use metrics nobody exports: {used - exported}"
    # Every exported metric has a panel.
    assert exported <= _used(exprs), exported - _used(exprs)
