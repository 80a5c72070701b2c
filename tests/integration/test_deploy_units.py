"""deploy/systemd and deploy/kubernetes: the units pass `systemd-analyze verify` and keep the
restart and graceful-stop conventions, the manifests probe the endpoints each process serves,
and every command the units and manifests run is one the real CLI has."""

import os
import re
import shlex
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from steadymail.config import Settings
from steadymail.tracking.keys import load_tracking_secrets
from tests.helpers import need

DEPLOY = Path(__file__).resolve().parents[2] / "deploy"
SYSTEMD = DEPLOY / "systemd"
KUBERNETES = DEPLOY / "kubernetes"
# Where the units expect the installed console script (deploy/README.md, "systemd").
INSTALLED = "/opt/steadymail/venv/bin/steadymail"

UNITS = sorted(p for p in SYSTEMD.iterdir() if p.suffix in (".service", ".target"))
SERVICES = [p for p in UNITS if p.suffix == ".service"]
WORKER_TEMPLATE = SYSTEMD / "steadymail-worker@.service"

Directives = dict[str, dict[str, list[str]]]
Doc = dict[str, Any]


def _directives(path: Path) -> Directives:
    """A unit file as {section: {key: [values]}}; keys may repeat, so no configparser."""
    sections: Directives = {}
    current: dict[str, list[str]] | None = None
    for raw in path.read_text().splitlines():
        line = raw.strip()
        if not line or line[0] in "#;":
            continue
        if line.startswith("[") and line.endswith("]"):
            current = sections.setdefault(line[1:-1], {})
            continue
        assert current is not None, f"{path.name}: {line!r} is outside any section"
        key, _, value = line.partition("=")
        current.setdefault(key.strip(), []).append(value.strip())
    return sections


def _seconds(span: str) -> float:
    """A systemd time span ("90", "90s", "1min 30s") in seconds."""
    units = {"": 1.0, "s": 1.0, "sec": 1.0, "ms": 0.001, "m": 60.0, "min": 60.0, "h": 3600.0}
    parts = re.findall(r"(\d+(?:\.\d+)?)\s*([a-z]*)", span)
    assert parts, f"not a time span: {span!r}"
    return sum(float(n) * units[unit] for n, unit in parts)


def _unit_argvs(path: Path) -> list[list[str]]:
    """The argv of every Exec*= line, without systemd's prefixes (-, @, +, !, :)."""
    out = []
    for key, values in _directives(path).get("Service", {}).items():
        if key.startswith("Exec"):
            out += [shlex.split(v.lstrip("-@+!:")) for v in values]
    return out


def _manifests() -> list[tuple[str, Doc]]:
    docs = []
    for path in sorted(KUBERNETES.glob("*.yaml")):
        docs += [(path.name, d) for d in yaml.safe_load_all(path.read_text()) if d is not None]
    return docs


def _find(kind: str, name: str) -> Doc:
    found = [d for _, d in _manifests() if d["kind"] == kind and d["metadata"]["name"] == name]
    assert len(found) == 1, f"expected one {kind} {name}, found {len(found)}"
    return found[0]


def _pod_spec(doc: Doc) -> Doc:
    spec: Doc = doc["spec"]["template"]["spec"]
    return spec


def _containers(doc: Doc) -> list[Doc]:
    spec = _pod_spec(doc)
    return [*spec.get("initContainers", []), *spec["containers"]]


def _env(container: Doc) -> dict[str, str]:
    return {e["name"]: e.get("value", "") for e in container.get("env", [])}


def _http_probe(container: Doc, probe: str) -> tuple[str, int]:
    """(path, port number) of a container's httpGet probe; a named port is looked up."""
    get = container[probe]["httpGet"]
    port = get["port"]
    if isinstance(port, str):
        named = {p["name"]: p["containerPort"] for p in container.get("ports", [])}
        port = named[port]
    return get["path"], int(port)


def _selects(selector: Doc, labels: dict[str, str]) -> bool:
    match = selector["matchLabels"]
    return bool(match) and all(labels.get(k) == v for k, v in match.items())


def _setting(env_name: str) -> str:
    return env_name.removeprefix("STEADYMAIL_").lower()


def _manifest_argvs() -> list[list[str]]:
    out = []
    for _, doc in _manifests():
        if "template" not in doc.get("spec", {}):
            continue
        for c in _containers(doc):
            out.append([*c.get("command", []), *c.get("args", [])])
    return out


def _cli_args() -> list[tuple[str, ...]]:
    """Every distinct steadymail command line (without the executable) units and pods run."""
    argvs = [a for unit in SERVICES for a in _unit_argvs(unit)] + _manifest_argvs()
    return sorted({tuple(a[1:]) for a in argvs if a and Path(a[0]).name == "steadymail"})


# --- systemd ---------------------------------------------------------------------------------


def test_the_units_are_all_there() -> None:
    names = {p.name for p in UNITS}
    for service in ("api", "monitor", "inbound", "control", "worker@"):
        assert f"steadymail-{service}.service" in names, names


def _systemd_tool(name: str) -> str:
    """A tool of Debian's systemd package: skipped without it, unless required (make test)."""
    path = shutil.which(name)
    need("SYSTEMD", path is not None, f"{name} not installed (scripts/ensure-systemd-analyze)")
    assert path is not None
    return path


def test_units_pass_systemd_analyze_verify(tmp_path: Path) -> None:
    systemd_analyze = _systemd_tool("systemd-analyze")
    # verify checks that every Exec*= binary exists and is executable: point the copies at the
    # console script of the venv running this test instead of the production path.
    steadymail = Path(sys.executable).parent / "steadymail"
    assert steadymail.is_file(), f"no console script at {steadymail}"
    for unit in UNITS:
        text = unit.read_text()
        assert unit.suffix != ".service" or INSTALLED in text, f"{unit.name} runs no {INSTALLED}"
        (tmp_path / unit.name).write_text(text.replace(INSTALLED, str(steadymail)))
    # A template is checked as such and as one instance, so %i is expanded as in production.
    names = [u.name for u in UNITS] + [u.name.replace("@.", "@1.") for u in UNITS if "@." in u.name]
    # --man=no: no man pages in a slim container. --recursive-errors=no: check our units only,
    # not the distribution's units they are ordered after (network-online.target, ...).
    # User=steadymail is kept as it is: verify (systemd 252) does not look users up (the service
    # manager does that only when it starts the process), so it passes where no such user exists.
    # verify runs its own manager in test mode: no running systemd is needed, root or not.
    args = ["verify", "--man=no", "--recursive-errors=no", *[f"./{n}" for n in names]]
    out = subprocess.run(
        [systemd_analyze, *args],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        # An inherited debug level would bury the findings in the manager's chatter.
        env={**os.environ, "SYSTEMD_LOG_LEVEL": "info", "SYSTEMD_LOG_COLOR": "0"},
        timeout=120,
    )
    printed = out.stdout + out.stderr
    ours = [ln for ln in printed.splitlines() if "steadymail" in ln or str(tmp_path) in ln]
    assert out.returncode == 0, printed
    assert not ours, "\n".join(ours)


def test_sysusers_creates_the_user_the_units_run_as(tmp_path: Path) -> None:
    sysusers = _systemd_tool("systemd-sysusers")
    (tmp_path / "etc").mkdir()
    out = subprocess.run(
        [sysusers, f"--root={tmp_path}", "--dry-run", SYSTEMD / "steadymail-sysusers.conf"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert out.returncode == 0, out.stdout + out.stderr
    assert "Creating user 'steadymail'" in out.stdout + out.stderr


@pytest.mark.parametrize("unit", SERVICES, ids=lambda p: p.name)
def test_service_restarts_and_stops_gracefully(unit: Path) -> None:
    d = _directives(unit)
    service, section = d["Service"], d["Unit"]
    assert service["Restart"] == ["always"]
    assert service["RestartSec"] == ["1"]
    # The monitor counts crash loops; systemd must never give up on a unit.
    assert section["StartLimitIntervalSec"] == ["0"]
    assert service["KillSignal"] == ["SIGTERM"]
    (timeout,) = service["TimeoutStopSec"]
    assert _seconds(timeout) >= 60, f"TimeoutStopSec={timeout} is shorter than a send window"
    assert any(
        a[0] == INSTALLED and a[1:] == ["report-exit"]
        for a in map(shlex.split, service.get("ExecStopPost", []))
    ), "no ExecStopPost running `steadymail report-exit`"
    for argv in _unit_argvs(unit):
        assert argv[0] == INSTALLED, argv
    assert service["User"] == ["steadymail"]
    assert "STEADYMAIL_CONFIG=/etc/steadymail/steadymail.toml" in service["Environment"]
    assert service["EnvironmentFile"] == ["-/etc/steadymail/steadymail.env"]
    assert service["WorkingDirectory"] == ["/var/lib/steadymail"]
    for key, value in {
        "NoNewPrivileges": "yes",
        "ProtectSystem": "strict",
        "ProtectHome": "yes",
        "PrivateTmp": "yes",
        "ReadWritePaths": "/var/lib/steadymail",
    }.items():
        assert service[key] == [value], key


def test_worker_template_leaves_the_slot_to_the_unit_name() -> None:
    service = _directives(WORKER_TEMPLATE)["Service"]
    assert shlex.split(service["ExecStart"][0]) == [INSTALLED, "worker"]
    # The worker derives its slot from its unit name; any STEADYMAIL_SLOT would override that.
    active = [ln for ln in WORKER_TEMPLATE.read_text().splitlines() if not ln.startswith("#")]
    assert not [ln for ln in active if "STEADYMAIL_SLOT" in ln], active
    assert not [e for e in service.get("EnvironmentFile", []) if "%" in e]


@pytest.mark.parametrize("unit", ["steadymail-worker@.service", "steadymail-monitor.service"])
def test_health_port_is_offered_commented_out(unit: str) -> None:
    text = (SYSTEMD / unit).read_text()
    assert "#Environment=STEADYMAIL_HEALTH_PORT=0" in text
    assert "STEADYMAIL_HEALTH_PORT" not in "".join(
        v for v in _directives(SYSTEMD / unit)["Service"].get("Environment", [])
    )


# --- Kubernetes -------------------------------------------------------------------------------


def test_kustomization_lists_every_manifest() -> None:
    kustomization = yaml.safe_load((KUBERNETES / "kustomization.yaml").read_text())
    files = {p.name for p in KUBERNETES.glob("*.yaml")} - {"kustomization.yaml"}
    assert sorted(kustomization["resources"]) == sorted(files)


def test_manifests_parse_and_workloads_select_their_own_pods() -> None:
    docs = _manifests()
    assert {d["kind"] for _, d in docs} >= {
        "Namespace",
        "ConfigMap",
        "Secret",
        "StatefulSet",
        "Deployment",
        "Service",
        "PodDisruptionBudget",
    }
    for name, doc in docs:
        assert doc.get("apiVersion") and doc.get("kind"), name
        if doc["kind"] in ("StatefulSet", "Deployment"):
            labels = doc["spec"]["template"]["metadata"]["labels"]
            assert _selects(doc["spec"]["selector"], labels), doc["metadata"]["name"]
            for c in _containers(doc):
                assert c["image"] == "steadymail:0.1.0", c["name"]
                assert c["resources"]["requests"] and c["resources"]["limits"], c["name"]


def test_config_and_secret_are_settings(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    config = _find("ConfigMap", "steadymail-config")["data"]
    secret = _find("Secret", "steadymail-secrets")["stringData"]
    # Settings ignores unknown variables, so a misspelt name would be lost without a word.
    names = {*config, *secret}
    for _, doc in _manifests():
        if "template" in doc.get("spec", {}):
            names |= {n for c in _containers(doc) for n in _env(c)}
    for unit in SERVICES:
        for line in _directives(unit)["Service"].get("Environment", []):
            names |= {w.split("=", 1)[0] for w in shlex.split(line)}
    for line in (SYSTEMD / "steadymail.env.example").read_text().splitlines():
        if line and not line.startswith("#"):
            names.add(line.split("=", 1)[0])
    # STEADYMAIL_CONFIG names the TOML file; it is not a setting itself.
    unknown = [
        n
        for n in names - {"STEADYMAIL_CONFIG"}
        if not n.startswith("STEADYMAIL_") or _setting(n) not in Settings.model_fields
    ]
    assert not unknown, unknown
    # A slot in the shared configuration would put every process in the same slot.
    assert "STEADYMAIL_SLOT" not in names
    assert "STEADYMAIL_DATABASE_URL" in secret and "STEADYMAIL_DATABASE_URL" not in config
    # Placeholders only; the signing key names one of the (fake) keys.
    assert all("FAKE" in v for k, v in secret.items() if k != "STEADYMAIL_TRACKING_SIGNING_KEY")
    for key, value in {**config, **secret}.items():
        monkeypatch.setenv(key, value)
    monkeypatch.setenv("STEADYMAIL_DATA_DIR", str(tmp_path))
    monkeypatch.setenv("STEADYMAIL_CONFIG", str(tmp_path / "none.toml"))
    settings = Settings()
    assert settings.resolved_database_url().startswith("postgresql://")
    assert settings.relays and settings.region == config["STEADYMAIL_REGION"]
    # Every pod must sign links with the same keys: the Secret's, not a generated one.
    signer = load_tracking_secrets(settings).signer
    assert not (tmp_path / "tracking-secrets.json").exists()
    assert signer is not None


def test_worker_statefulset_probes_and_stops_gracefully() -> None:
    sts = _find("StatefulSet", "steadymail-worker")
    spec = sts["spec"]
    assert spec["replicas"] == 2
    assert spec["podManagementPolicy"] == "Parallel"
    assert _find("Service", spec["serviceName"])["spec"]["clusterIP"] == "None"
    assert _pod_spec(sts)["terminationGracePeriodSeconds"] >= 60
    (worker,) = _pod_spec(sts)["containers"]
    assert [*worker["command"], *worker.get("args", [])] == ["steadymail", "worker"]
    env = _env(worker)
    assert env["STEADYMAIL_HEALTH_PORT"] == "8081"
    # A stable pod name is the stable slot; an explicit slot would make every pod the same one.
    assert "STEADYMAIL_SLOT" not in env
    assert _http_probe(worker, "livenessProbe") == ("/livez", 8081)
    assert _http_probe(worker, "readinessProbe") == ("/readyz", 8081)


def test_api_deployment_probes_and_service() -> None:
    api = _find("Deployment", "steadymail-api")
    assert api["spec"]["replicas"] == 2
    assert _pod_spec(api)["terminationGracePeriodSeconds"] == 30
    (container,) = _pod_spec(api)["containers"]
    assert container["command"] == ["steadymail", "api"]
    assert {p["name"]: p["containerPort"] for p in container["ports"]} == {
        "http": 8025,
        "public": 8040,
    }
    assert _http_probe(container, "livenessProbe") == ("/healthz", 8025)
    assert _http_probe(container, "readinessProbe") == ("/readyz", 8025)
    config = _find("ConfigMap", "steadymail-config")["data"]
    assert config["STEADYMAIL_API_PORT"] == "8025"
    assert config["STEADYMAIL_API_HOST"] == "0.0.0.0"  # reachable by the kubelet's probes
    assert (config["STEADYMAIL_PUBLIC_HOST"], config["STEADYMAIL_PUBLIC_PORT"]) == (
        "0.0.0.0",
        "8040",
    )
    # The internet-facing Service routes to the public listener only, the admin one to /v1 only.
    assert [p["targetPort"] for p in _find("Service", "steadymail-public")["spec"]["ports"]] == [
        "public"
    ]
    assert [p["targetPort"] for p in _find("Service", "steadymail-api")["spec"]["ports"]] == [
        "http"
    ]
    labels = api["spec"]["template"]["metadata"]["labels"]
    services = [d for _, d in _manifests() if d["kind"] == "Service"]
    assert any(
        set(s["spec"]["selector"].items()) <= set(labels.items())
        and any(p["targetPort"] in (8025, "http") for p in s["spec"]["ports"])
        for s in services
    ), "no Service in front of the API pods"


def test_monitor_deployment_is_single_and_probed() -> None:
    monitor = _find("Deployment", "steadymail-monitor")
    assert monitor["spec"]["replicas"] == 1
    assert monitor["spec"]["strategy"]["type"] == "Recreate"
    (container,) = _pod_spec(monitor)["containers"]
    assert container["command"] == ["steadymail", "monitor"]
    port = int(_env(container)["STEADYMAIL_HEALTH_PORT"])
    assert _http_probe(container, "livenessProbe") == ("/livez", port)
    assert _http_probe(container, "readinessProbe") == ("/readyz", port)


def test_disruption_budgets_cover_workers_and_api() -> None:
    pdbs = [d for _, d in _manifests() if d["kind"] == "PodDisruptionBudget"]
    for workload, kind, rule in (
        (_find("StatefulSet", "steadymail-worker"), "maxUnavailable", 1),
        (_find("Deployment", "steadymail-api"), "minAvailable", 1),
    ):
        labels = workload["spec"]["template"]["metadata"]["labels"]
        covering = [p for p in pdbs if _selects(p["spec"]["selector"], labels)]
        assert [p["spec"].get(kind) for p in covering] == [rule], workload["metadata"]["name"]


# --- the commands they run --------------------------------------------------------------------


def test_units_and_manifests_run_the_platform_processes() -> None:
    commands = {a[0] for a in _cli_args() if a}
    assert commands >= {"api", "monitor", "inbound", "control", "worker", "report-exit"}
    for argv in _manifest_argvs():
        assert argv and argv[0] == "steadymail", argv


@pytest.mark.parametrize("args", _cli_args(), ids=" ".join)
def test_command_exists_in_the_cli(args: tuple[str, ...], tmp_path: Path) -> None:
    # The real CLI, options and all: `--help` is answered only when every option before it
    # parses. Its own data dir and no config file, so nothing lands in the checkout.
    env = {
        **os.environ,
        "STEADYMAIL_DATA_DIR": str(tmp_path),
        "STEADYMAIL_CONFIG": str(tmp_path / "none.toml"),
    }
    env.pop("PROMETHEUS_MULTIPROC_DIR", None)
    out = subprocess.run(
        [sys.executable, "-m", "steadymail", *args, "--help"],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert out.returncode == 0, f"steadymail {' '.join(args)} --help:\n{out.stdout}{out.stderr}"
    assert "Usage" in out.stdout
