"""The control plane's API answers with what its models declare, and with all of what the
control plane knows: a rollout's whole state, its audit log, and regions as they answered."""

import json
from pathlib import Path
from typing import Any

from fastapi.testclient import TestClient

from steadymail.config import RegionRef, Settings
from steadymail.control.app import create_control_app

KEY = "k" * 32
AUTH = {"Authorization": f"Bearer {KEY}"}
POLICY = """
canary = "R3"
min_bake = "1s"
min_guard = "1s"
"""


def _json(value: Any) -> Any:
    return json.loads(json.dumps(value))


def test_rollouts_and_regions_come_back_whole(tmp_path: Path) -> None:
    (tmp_path / "policy.toml").write_text(POLICY)
    # Regions nobody listens on (port 1 refuses at once): the control plane sees them
    # unreachable.
    regions = [
        RegionRef(name=name, url="http://127.0.0.1:1", api_key="x" * 20)  # type: ignore[arg-type]
        for name in ("R1", "R2", "R3")
    ]
    settings = Settings(
        data_dir=tmp_path,
        control_api_key=KEY,
        control_regions=regions,
        policy_file=tmp_path / "policy.toml",
    )
    app = create_control_app(settings)
    plane = app.state.plane
    client = TestClient(app)  # no lifespan: no driver stepping the rollout meanwhile

    r = client.post(
        "/v1/rollouts",
        headers=AUTH,
        json={"flag": "tracking.version", "value": "v2", "plan": "R3,R1,R2", "by": "bob"},
    )
    assert r.status_code == 201, r.text
    started = r.json()
    rid = started["id"]
    status = client.get(f"/v1/rollouts/{rid}", headers=AUTH).json()
    assert status == _json(plane.status(rid))
    assert [e["kind"] for e in status["events"]] == ["started"]
    assert {k: v for k, v in status.items() if k != "events"} == started

    assert client.get("/v1/rollouts", headers=AUTH).json() == [started]
    paused = client.post(f"/v1/rollouts/{rid}/pause", headers=AUTH, json={"by": "al"}).json()
    assert paused["state"] == "paused" and paused == _json(plane.rollouts()[0])

    views = client.get("/v1/regions", headers=AUTH).json()
    assert [v["region"] for v in views] == ["R1", "R2", "R3"]
    for v in views:
        # Only what the control plane knows of an unreachable region: no nulls added.
        assert set(v) == {"region", "reachable", "error"} and v["reachable"] is False
