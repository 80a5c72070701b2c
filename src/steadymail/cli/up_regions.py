"""`steadymail up --regions R1,R2,R3`: every region's stack and the control plane on one machine.

Each region gets its own data directory (`<data_dir>/regions/<name>`), database (a SQLite file
there, or `database_url` with `{region}` in it, e.g. `postgresql://…/steadymail_{region}`), admin
API port (`api_port` + its index), public listener port (`public_port` + its index), Prometheus
directory, monitor and workers. The capture server is shared. The control plane knows the regions
only by URL and API key (one with every scope: its rollouts set flags, an admin action).
"""

import json
import secrets
import shutil
from pathlib import Path

from rich.console import Console

from steadymail.cli.devkey import dev_key
from steadymail.cli.supervisor import Child, Supervisor, exit_reporter, steadymail_argv
from steadymail.clock import SystemClock
from steadymail.config import Settings
from steadymail.errors import ValidationError
from steadymail.secretfile import private_dir, read_or_create
from steadymail.services import database
from steadymail.services.database import shown_url


def _database_url(s: Settings, region: str, data_dir: Path) -> str:
    if not s.database_url:
        return f"sqlite:///{data_dir / 'steadymail.db'}"
    if "{region}" not in s.database_url:
        raise ValidationError(
            "with --regions, database_url must contain {region} (one database per region)"
        )
    url = s.database_url.replace("{region}", region.lower())
    database.ensure_database(url)
    return url


def _fresh(directory: Path) -> Path:
    # `up` owns its processes: counters of an earlier run must not be added to this one's.
    shutil.rmtree(directory, ignore_errors=True)
    directory.mkdir(parents=True)
    return directory


def up_regions(
    s: Settings,
    names: list[str],
    workers: int,
    sink: bool,
    console: Console,
    plain: bool = False,
) -> None:
    clock = SystemClock()
    children: list[Child] = []
    if sink:
        children.append(Child("sink", steadymail_argv("sink")))
    refs = []
    reporters = {}
    lines = []
    for i, name in enumerate(names):
        data_dir = private_dir(s.data_dir / "regions" / name)
        url = _database_url(s, name, data_dir)
        database.migrate_region(url)
        engine = database.open_region(s, url)
        key = dev_key(engine, data_dir / "dev-api-key", clock)
        port, public_port = s.api_port + i, s.public_port + i
        api = f"http://{s.api_host}:{port}"
        env = {
            "STEADYMAIL_REGION": name,
            "STEADYMAIL_DATA_DIR": str(data_dir),
            "STEADYMAIL_DATABASE_URL": url,
            "STEADYMAIL_API_PORT": str(port),
            "STEADYMAIL_PUBLIC_PORT": str(public_port),
            "STEADYMAIL_PUBLIC_URL": Settings.link_base(s.public_host, public_port),
            "PROMETHEUS_MULTIPROC_DIR": str(_fresh(data_dir / "prometheus")),
        }
        region_children = [Child(f"{name}-api", steadymail_argv("api"), env=env)]
        region_children.append(Child(f"{name}-monitor", steadymail_argv("monitor"), env=env))
        region_children += [
            Child(f"{name}-worker-{w + 1}", steadymail_argv("worker"), env=env, named=not plain)
            for w in range(workers)
        ]
        for c in region_children:
            reporters[c.name] = exit_reporter(engine, clock)
        children += region_children
        refs.append({"name": name, "url": api, "api_key": key})
        lines.append(
            f"  {name:<4} console {api}/ui/   API {api}/docs   public :{public_port}   "
            f"data {data_dir}   database {shown_url(url)}"
        )
    control_key = read_or_create(s.data_dir / "control-api-key", lambda: secrets.token_urlsafe(32))
    children.append(
        Child(
            "control",
            steadymail_argv("control"),
            env={
                "STEADYMAIL_CONTROL_REGIONS": json.dumps(refs),
                "STEADYMAIL_CONTROL_API_KEY": control_key,
            },
        )
    )
    console.print(
        f"[bold]steadymail[/] regions {', '.join(names)} and the control plane\n"
        + "\n".join(lines)
        + f"\n  control  console {s.control_url}/ui/   API {s.control_url}/docs"
        f"   (key in {s.data_dir}/control-api-key)\n"
        f"  SMTP sink  {s.sink_host}:{s.sink_port}\n"
        f"  workers    {workers} per region, restarted if they die"
        + (" (plainly: no slot names, no exit reports)\n" if plain else "\n")
        + f"Try: steadymail rollout start tracking.version v2 --plan R3,R1,R2 --bake 10m\n"
        f"A region's own commands: STEADYMAIL_DATA_DIR={s.data_dir}/regions/R3 steadymail status\n"
        f"Stop with Ctrl-C.",
        highlight=False,
    )

    def report(child: Child, pid: int, reason: str) -> None:
        if child.name in reporters:
            reporters[child.name](child, pid, reason)

    Supervisor(children, on_exit=report).run_forever()
