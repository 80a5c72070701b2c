"""`steadymail domain` as an operator runs it, against a real DNS server (dnslib)."""

import json
import os
import subprocess
import sys
from pathlib import Path

from tests.dns_server import dns_server


def run(tmp_path: Path, resolver: str, *args: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("STEADYMAIL_")}
    env.update(
        {
            "STEADYMAIL_DATA_DIR": str(tmp_path / "data"),
            "STEADYMAIL_CONFIG": str(tmp_path / "none.toml"),
            "STEADYMAIL_DNS_RESOLVER": resolver,
            "COLUMNS": "200",
        }
    )
    return subprocess.run(
        [sys.executable, "-m", "steadymail", "domain", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_add_publish_check_from_the_command_line(tmp_path: Path) -> None:
    with dns_server() as (zone, resolver):
        added = run(tmp_path, resolver, "add", "example.com")
        assert added.returncode == 0, added.stderr
        lines = [line for line in added.stdout.splitlines() if " IN " in line]
        assert len(lines) == 4
        # A zone file line per record; the RSA key's value is split into strings of <= 255.
        rsa_line = next(line for line in lines if "k=rsa" in line)
        strings = rsa_line.split(" IN TXT ", 1)[1].split('" "')
        assert len(strings) == 2 and all(len(s.strip('"')) <= 255 for s in strings)

        failed = run(tmp_path, resolver, "check", "example.com")
        assert failed.returncode == 1 and "not verified" in failed.stdout

        records = json.loads(run(tmp_path, resolver, "records", "example.com", "--json").stdout)
        for r in records:
            zone.set(r["name"], r["type"], r["value"])
        ok = run(tmp_path, resolver, "check", "example.com", "--json")
        assert ok.returncode == 0, ok.stdout
        result = json.loads(ok.stdout)
        assert result["verified"] and len(result["activated"]) == 2
        assert {f["verdict"] for f in result["findings"]} == {"ok"}
        listed = run(tmp_path, resolver, "list")
        assert "example.com" in listed.stdout and "(active)" in listed.stdout

        bad = run(tmp_path, resolver, "add", "not a domain")
        assert bad.returncode == 2 and "not a domain name" in bad.stderr
