"""The control plane's console: signed in with the control key, rollouts started, steered and
reverted through its forms with a reason each, every action audited and CSRF-checked."""

import re
from pathlib import Path

from fastapi.testclient import TestClient

from steadymail.config import RegionRef, Settings
from steadymail.control.app import create_control_app

KEY = "k" * 32
POLICY = """
canary = "R3"
min_bake = "1s"
min_guard = "1s"
"""
ORIGIN = {"Origin": "http://testserver"}


def _client(tmp_path: Path) -> TestClient:
    (tmp_path / "policy.toml").write_text(POLICY)
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
    # No lifespan: no driver stepping the rollout meanwhile.
    return TestClient(create_control_app(settings), follow_redirects=False)


def _signed_in(c: TestClient) -> str:
    assert c.post("/ui/login", data={"api_key": "wrong" * 8}, headers=ORIGIN).status_code == 401
    r = c.post("/ui/login", data={"api_key": KEY}, headers=ORIGIN)
    assert r.status_code == 303
    page = c.get("/ui/")
    assert page.status_code == 200
    m = re.search(r'name="csrf" value="([0-9a-f]+)"', page.text)
    assert m
    return m.group(1)


def test_a_rollout_is_started_paused_and_reverted_from_the_console(tmp_path: Path) -> None:
    c = _client(tmp_path)
    assert c.get("/ui/").status_code == 303
    token = _signed_in(c)
    overview = c.get("/ui/live/overview").text
    assert overview.count("127.0.0.1:1/ui/") == 3  # each region's console is linked
    assert "no: " in overview  # unreachable regions are shown as such
    form = {
        "flag": "tracking.version",
        "value": '"v2"',
        "plan": "R3,R1,R2",
        "bake": "2s",
        "guard": "2s",
        "reason": "new link format",
    }
    assert c.post("/ui/rollouts", data=form, headers=ORIGIN).status_code == 403  # no token
    r = c.post("/ui/rollouts", data={**form, "csrf": token}, headers=ORIGIN)
    assert r.status_code == 303
    page_url = r.headers["location"]
    rid = page_url.rsplit("/", 1)[1]
    page = c.get(page_url).text
    assert "Rollout #" + rid + ': tracking.version = "v2"' in page and "R3" in page
    started = c.get("/v1/rollouts/" + rid, headers={"Authorization": f"Bearer {KEY}"}).json()
    assert started["value"] == "v2" and started["created_by"] == "console: new link format"
    # A rule of the policy: its message on an error page, nothing started.
    bad = c.post("/ui/rollouts", data={**form, "plan": "R1,R3,R2", "csrf": token}, headers=ORIGIN)
    assert bad.status_code == 422 and "canary_first" in bad.text
    # Pause needs a reason; with one, it is audited with it.
    r = c.post(f"/ui/rollouts/{rid}/pause", data={"csrf": token}, headers=ORIGIN)
    assert r.status_code == 422
    r = c.post(f"/ui/rollouts/{rid}/pause", data={"csrf": token, "reason": "lunch"}, headers=ORIGIN)
    assert r.status_code == 303
    live = c.get(f"/ui/live/rollouts/{rid}").text
    assert "paused" in live and "console: lunch" in live
    r = c.post(
        f"/ui/rollouts/{rid}/rollback",
        data={"csrf": token, "reason": "clicks look off"},
        headers=ORIGIN,
    )
    assert r.status_code == 303
    assert "rolled back by console: clicks look off" in c.get(f"/ui/live/rollouts/{rid}").text


def test_the_control_console_keeps_the_api_and_its_headers(tmp_path: Path) -> None:
    c = _client(tmp_path)
    _signed_in(c)
    page = c.get("/ui/")
    assert "script-src 'self'" in page.headers["content-security-policy"]
    assert "<style" not in page.text and " style=" not in page.text
    # The API beside it still answers in JSON with its own key.
    assert c.get("/v1/rollouts").status_code == 401
    assert c.get("/v1/rollouts", headers={"Authorization": f"Bearer {KEY}"}).json() == []


def test_metrics_of_an_unreachable_region_are_an_error_not_a_crash(tmp_path: Path) -> None:
    c = _client(tmp_path)
    _signed_in(c)
    page = c.get("/ui/metrics")
    assert page.status_code == 200 and "No series yet" in page.text
    assert page.text.count('class="error"') == 3  # each unreachable region says so
    r = c.get("/ui/metrics/series.json?region=R1&name=sent")
    assert r.status_code == 400 and "R1" in r.text
    assert c.get("/ui/metrics/series.json?region=R9&name=sent").status_code == 404
