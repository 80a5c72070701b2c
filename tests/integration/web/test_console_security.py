"""The console's doors: sign-in by API key, session cookies, CSRF, scopes, security headers."""

import re
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from steadymail.store import apikeys
from steadymail.web.site import CSP
from tests.conftest import MIGRATED
from tests.integration.web.conftest import Console, csrf_of


@pytest.fixture
def db_url(tmp_path: Path) -> Iterator[str]:
    """SQLite only: sessions, tokens and headers do not depend on the database (the pages'
    tests run on both)."""
    yield MIGRATED.sqlite(tmp_path / "steadymail.db")


PAGES = [
    "/ui/",
    "/ui/sends",
    "/ui/lists",
    "/ui/suppressions",
    "/ui/templates",
    "/ui/templates/new",
    "/ui/captured",
    "/ui/alerts",
    "/ui/metrics",
]


def test_every_page_wants_a_session_and_sends_the_sign_in_page(console: Console) -> None:
    c = console.client()
    for path in PAGES:
        r = c.get(path)
        assert r.status_code == 303 and r.headers["location"].startswith("/ui/login?next="), path
    # A live fragment asked by htmx: a 401 telling htmx where to go, not a page to swap in.
    r = c.get("/ui/live/overview", headers={"HX-Request": "true"})
    assert r.status_code == 401 and r.headers["hx-redirect"].startswith("/ui/login")
    r = c.post("/ui/lists", data={"name": "x"}, headers=console.origin)
    assert r.status_code == 303 and r.headers["location"].startswith("/ui/login")
    signed, _ = console.signed_in()
    assert "/ui/lists/x" not in signed.get("/ui/lists").text  # nothing was created
    # After sign-in a deep link comes back whole, query string included.
    r = c.get("/ui/metrics/series?name=sent&minutes=15")
    assert r.headers["location"] == (
        "/ui/login?next=%2Fui%2Fmetrics%2Fseries%3Fname%3Dsent%26minutes%3D15"
    )
    page = c.get(r.headers["location"])
    assert 'value="/ui/metrics/series?name=sent&amp;minutes=15"' in page.text


def test_sign_in_sets_a_strict_http_only_cookie_without_the_secret(console: Console) -> None:
    c = console.client()
    bad = c.post("/ui/login", data={"api_key": "sm_nope_nope"}, headers=console.origin)
    assert bad.status_code == 401 and "invalid API key" in bad.text
    assert "set-cookie" not in bad.headers
    r = c.post("/ui/login", data={"api_key": console.keys["all"]}, headers=console.origin)
    assert r.status_code == 303 and r.headers["location"] == "/ui/"
    cookie = r.headers["set-cookie"]
    assert "HttpOnly" in cookie and "SameSite=strict" in cookie and "Path=/ui" in cookie
    assert "Secure" not in cookie  # plain HTTP on loopback; set when served over HTTPS
    secret = console.keys["all"].split("_", 2)[2]
    assert secret not in cookie
    assert c.get("/ui/").status_code == 200


def test_sign_in_goes_back_only_to_a_console_page(console: Console) -> None:
    c = console.client()
    for target, expected in [
        ("/ui/sends", "/ui/sends"),
        ("//evil.example/ui/", "/ui/"),
        ("https://evil.example/", "/ui/"),
        ("/ui/\\evil.example", "/ui/"),
        ("/elsewhere", "/ui/"),
    ]:
        r = c.post(
            "/ui/login",
            data={"api_key": console.keys["all"], "next": target},
            headers=console.origin,
        )
        assert r.headers["location"] == expected, target


def test_a_forged_or_revoked_session_is_signed_out(console: Console) -> None:
    c, _ = console.signed_in("read")
    (name,) = [n for n in c.cookies if n.startswith("steadymail_session_")]
    cookie = c.cookies[name]
    forged = cookie[:-1] + ("0" if cookie[-1] != "0" else "1")
    other = console.client()
    other.cookies.set(name, forged, path="/ui")
    assert other.get("/ui/").status_code == 303
    # Someone else's prefix in a cookie signed by nobody.
    parts = cookie.split(".")
    parts[1] = console.keys["all"].split("_")[1]
    other.cookies.set(name, ".".join(parts), path="/ui")
    assert other.get("/ui/").status_code == 303
    # Not ASCII: refused like any other forgery (not a 500).
    raw = console.client()
    r = raw.get("/ui/", headers={"cookie": f"{name}=v1.a.1.n.\u00e9".encode()})
    assert r.status_code == 303
    # Revoking the key ends its sessions at their next request.
    apikeys.revoke(console.engine, console.keys["read"].split("_")[1], 1.0)
    assert c.get("/ui/").status_code == 303


def test_a_change_needs_the_session_s_csrf_token_and_our_origin(console: Console) -> None:
    c, token = console.signed_in()
    _, other_token = console.signed_in()
    assert c.post("/ui/lists", data={"name": "a"}, headers=console.origin).status_code == 403
    r = c.post("/ui/lists", data={"name": "a", "csrf": other_token}, headers=console.origin)
    assert r.status_code == 403 and "CSRF" in r.text
    evil = {"Origin": "https://evil.example"}
    assert c.post("/ui/lists", data={"name": "a", "csrf": token}, headers=evil).status_code == 403
    ok = c.post("/ui/lists", data={"name": "a", "csrf": token}, headers=console.origin)
    assert ok.status_code == 303 and ok.headers["location"] == "/ui/lists/a"
    # htmx sends the token as a header.
    r = c.post("/ui/lists", data={"name": "b"}, headers={**console.origin, "X-CSRF-Token": token})
    assert r.status_code == 303


def test_signing_out_needs_the_token_and_ends_the_session(console: Console) -> None:
    c, token = console.signed_in()
    assert c.post("/ui/logout", headers=console.origin).status_code == 403
    r = c.post("/ui/logout", data={"csrf": token}, headers=console.origin)
    assert r.status_code == 303 and not c.cookies
    assert c.get("/ui/").status_code == 303


def test_ids_past_the_database_range_and_odd_names_are_answered(console: Console) -> None:
    c, token = console.signed_in()
    for path in ("/ui/sends/99999999999999999999", "/ui/alerts/0", "/ui/captured/-1"):
        r = c.get(path)
        assert r.status_code == 422 and "text/html" in r.headers["content-type"], path
    assert c.get("/ui/sends/123456").status_code == 404
    # A list name with a slash, a question mark and a non-Latin letter: reachable, importable.
    name = "eu/north?x=1 ü"
    r = c.post("/ui/lists", data={"name": name, "csrf": token}, headers=console.origin)
    assert r.status_code == 303
    page = c.get(r.headers["location"])
    assert page.status_code == 200 and "List eu/north?x=1 ü" in page.text
    r = c.post(
        r.headers["location"] + "/import",
        data={"csrf": token},
        files={"file": ("a.csv", b"email\nann@example.com\n", "text/csv")},
        headers=console.origin,
    )
    assert "<strong>1</strong> imported into eu/north?x=1 ü" in r.text


def test_a_read_key_sees_everything_and_changes_nothing(console: Console) -> None:
    c, token = console.signed_in("read")
    for path in PAGES:
        assert c.get(path).status_code == 200, path
    lists = c.get("/ui/lists").text
    assert "Create list" not in lists and 'name="csrf"' in lists  # sign-out still has its form
    assert "Create campaign" not in c.get("/ui/sends").text
    r = c.post("/ui/lists", data={"name": "x", "csrf": token}, headers=console.origin)
    assert r.status_code == 403 and "the &#39;write&#39; scope" in r.text
    # A preview changes nothing: a read key may render one.
    r = c.post(
        "/ui/preview/check",
        data={"subject": "hi", "html": "<p>x</p>", "csrf": token},
        headers=console.origin,
    )
    assert r.status_code == 200 and "Renders" in r.text


def test_every_page_has_the_csp_and_no_inline_script_or_style(console: Console) -> None:
    c, _ = console.signed_in()
    assert "'unsafe-inline'" not in CSP and "script-src 'self'" in CSP
    for path in [*PAGES, "/ui/login"]:
        r = c.get(path)
        assert r.headers["content-security-policy"] == CSP, path
        assert r.headers["x-frame-options"] == "DENY" and r.headers["cache-control"] == "no-store"
        scripts = re.findall(r"<script\b[^>]*>", r.text)
        assert scripts and all(" src=" in s for s in scripts), (path, scripts)
        assert "<style" not in r.text and " style=" not in r.text, path
        assert not re.search(r"\son[a-z]+=", r.text), path  # no inline event handlers
    static = c.get("/ui/static/vendor/htmx-2.0.4.min.js")
    assert static.status_code == 200 and "javascript" in static.headers["content-type"]


def test_the_admin_api_keeps_its_json_errors_beside_the_console(console: Console) -> None:
    r = httpx.get(console.url + "/v1/lists", timeout=10)
    assert r.status_code == 401 and r.json()["error"] == "Unauthorized"
    c, _ = console.signed_in()
    page = c.get("/ui/sends/999999")
    assert page.status_code == 404 and "text/html" in page.headers["content-type"]
    assert "Error 404" in page.text
    assert csrf_of(c.get("/ui/").text)
