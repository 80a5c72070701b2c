"""The control plane never runs open: no key, no app; and only `Bearer <key>` gets in."""

from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from pydantic import SecretStr

from steadymail.config import Settings
from steadymail.control.app import create_control_app
from steadymail.errors import ValidationError

KEY = "k" * 32


def settings(tmp_path: Path, key: str | None) -> Settings:
    return Settings(
        data_dir=tmp_path,
        control_api_key=SecretStr(key) if key is not None else None,
        control_regions=[],
    )


@pytest.mark.parametrize("key", [None, "", "short-key"])
def test_refuses_to_start_without_a_strong_key(tmp_path: Path, key: str | None) -> None:
    with pytest.raises(ValidationError, match="control_api_key"):
        create_control_app(settings(tmp_path, key))


def test_only_bearer_with_the_key_gets_in(tmp_path: Path) -> None:
    client = TestClient(create_control_app(settings(tmp_path, KEY)))
    assert client.get("/healthz").status_code == 200  # the probe needs no key
    for header in (None, KEY, f"Basic {KEY}", f"Bearer {KEY}x", f"Bearer {KEY} x", "Bearer "):
        r = client.get("/v1/regions", headers={"Authorization": header} if header else {})
        assert r.status_code == 401, header
        assert r.headers["www-authenticate"].startswith("Bearer")
        assert r.json()["error"] == "Unauthorized"
    for scheme in ("Bearer", "bearer"):
        r = client.get("/v1/regions", headers={"Authorization": f"{scheme} {KEY}"})
        assert r.status_code == 200 and r.json() == []
    r = client.post("/v1/rollouts/1/pause", json={"by": "x"})
    assert r.status_code == 401
