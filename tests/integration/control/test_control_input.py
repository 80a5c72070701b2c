"""The control plane's request models refuse NaN and infinities (bakes, guards, flag values)."""

from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from steadymail.config import Settings
from steadymail.control.app import create_control_app


@pytest.mark.parametrize(
    "raw",
    [
        '{"flag": "fault.worker_exit", "value": {"every": 5}, "bake": NaN, "by": "me"}',
        '{"flag": "fault.worker_exit", "value": {"every": 5}, "guard": Infinity, "by": "me"}',
        '{"flag": "fault.worker_exit", "value": {"every": NaN}, "by": "me"}',
    ],
)
def test_non_finite_rollout_numbers_are_a_422(tmp_path: Path, raw: str) -> None:
    key = "k" * 32
    app = create_control_app(Settings(data_dir=tmp_path, control_api_key=key))
    # Not entered as a context manager: no lifespan, so no driver touching regions.
    client = TestClient(app)
    r = client.post(
        "/v1/rollouts",
        content=raw,
        headers={"Content-Type": "application/json", "Authorization": f"Bearer {key}"},
    )
    assert r.status_code == 422, r.text
    assert r.json()["error"] == "ValidationError" and "finite" in r.json()["detail"]


def test_an_id_past_the_database_range_is_a_422_and_lists_are_paged(tmp_path: Path) -> None:
    key = "k" * 32
    client = TestClient(create_control_app(Settings(data_dir=tmp_path, control_api_key=key)))
    auth = {"Authorization": f"Bearer {key}"}
    assert client.get("/v1/rollouts/99999999999999999999999", headers=auth).status_code == 422
    r = client.post("/v1/rollouts/99999999999999999999999/pause", headers=auth, json={"by": "me"})
    assert r.status_code == 422
    assert client.get("/v1/rollouts", params={"limit": 10**6}, headers=auth).status_code == 422
    assert client.get("/v1/rollouts", params={"limit": 5}, headers=auth).json() == []
