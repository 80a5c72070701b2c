"""`steadymail replay` end to end through the real CLI: three regions and the control plane as
real processes, workers restarted plainly (no slot names, no exit reports), a faulty link-tracking
change rolled out R3 -> R1 -> R2. The aims that are not timings are asserted; the timings are
printed (and go in the README)."""

import json
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import PG_ADMIN, need_pg

pytestmark = pytest.mark.e2e


def _replay(tmp_path: Path, *args: str) -> dict[str, object]:
    out = subprocess.run(
        [sys.executable, "-m", "steadymail", "replay", "--json", "--dir", str(tmp_path), *args],
        capture_output=True,
        text=True,
        timeout=400,
    )
    assert out.returncode == 0, out.stdout[-2000:] + out.stderr[-4000:]
    result: dict[str, object] = json.loads(out.stdout.strip().splitlines()[-1])
    print(f"\nreplay {' '.join(args) or '(canary)'}: {json.dumps(result)}")
    return result


def test_the_fault_in_the_canary_is_stopped_there_and_every_send_heals(tmp_path: Path) -> None:
    # At half the default time scale (5 s bakes, the fault 1.5 s into R3's): the gate must
    # still stop it in the canary's bake, which is what is asserted, in half the wall time.
    r = _replay(tmp_path, "--time-scale", "0.5")
    assert r["regions_hit"] == ["R3"], "only the canary region is hit"
    assert "gate:restarts" in str(r["decision"]), r["decision"]
    assert "tracking/rewrite.py" in str(r["first_alert"]) and "RewriterCrash" in str(
        r["first_alert"]
    )
    assert r["rolled_back_s"] is not None and r["resumed_s"] is not None
    assert r["lost"] == 0 and r["undelivered"] == 0 and r["quarantined"] == 0
    # Duplicates are bounded by what the platform counted as at risk.
    assert 0 <= int(str(r["duplicates"])) <= int(str(r["duplicates_counted"]))
    report = Path(str(r["incident_file"])).read_text()
    assert "fault.tracking_crash" in report and "restored" in report, report


def test_a_fault_after_the_guard_is_reverted_by_the_revert_window_on_postgresql(
    tmp_path: Path,
) -> None:
    need_pg()
    url = PG_ADMIN.rsplit("/", 1)[0] + "/sm_replay_{region}"
    # At 0.8 of the default time scale: the fault must arm after the guard, and at half scale
    # the waves' own overhead (not scaled) reaches past it (seen: the restart gate caught it).
    r = _replay(tmp_path, "--fault-after-guard", "--time-scale", "0.8", "--database-url", url)
    assert r["database"] == "postgresql"
    assert "revert_window" in str(r["decision"]), r["decision"]
    assert r["rolled_back_s"] is not None and r["resumed_s"] is not None
    assert r["lost"] == 0 and r["undelivered"] == 0 and r["quarantined"] == 0
    assert 0 <= int(str(r["duplicates"])) <= int(str(r["duplicates_counted"]))
