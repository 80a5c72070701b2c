"""The click redirect and open pixel answered by the ASGI hot path, over real HTTP: the same
rules as any route (404 for anything not signed for that route, HEAD without a body, an ASCII
Location), every request counted and every event recorded."""

import httpx
from prometheus_client import REGISTRY
from sqlalchemy import Engine, func, select

from steadymail.store.schema import tracking_events
from steadymail.tracking.tokens import Kind, TokenData
from tests.conftest import LiveApi
from tests.helpers import wait_until


def requests_counted(region: str, kind: str, result: str) -> float:
    value = REGISTRY.get_sample_value(
        "steadymail_tracking_requests_total", {"region": region, "kind": kind, "result": result}
    )
    return value or 0.0


def recorded(engine: Engine) -> int:
    with engine.connect() as conn:
        return int(conn.execute(select(func.count()).select_from(tracking_events)).scalar_one())


def test_hot_path_answers_like_a_route(live_api: LiveApi, engine: Engine) -> None:
    sign = live_api.state.signer.sign
    region = live_api.settings.region
    base = live_api.public_url
    click = sign(TokenData(Kind.CLICK, 1, 7, 0, "https://bücher.example/straße?q=ü#frag"))
    script = sign(TokenData(Kind.CLICK, 1, 7, 1, "javascript:alert(1)"))
    pixel = sign(TokenData(Kind.OPEN, 1, 7))
    ok_before = requests_counted(region, "click", "ok")
    missing_before = requests_counted(region, "click", "not_found")
    with httpx.Client() as http:
        r = http.get(f"{base}/t/c/{click}")
        assert r.status_code == 302
        assert r.headers["location"] == "https://xn--bcher-kva.example/stra%C3%9Fe?q=%C3%BC#frag"
        assert "no-store" in r.headers["cache-control"] and r.content == b""
        head = http.head(f"{base}/t/o/{pixel}")
        assert head.status_code == 200 and head.headers["content-type"] == "image/gif"
        gif = http.get(f"{base}/t/o/{pixel}").content
        assert gif.startswith(b"GIF89a") and head.content == b""
        assert head.headers["content-length"] == str(len(gif))
        for path in (
            f"/t/c/{script}",  # signed, but not an http(s) URL: never a redirect
            f"/t/c/{click}/more",  # one segment only: the app's own 404
            "/t/c/",
            f"/t/c/{pixel}",  # an open token on the click route
            f"/t/o/{click}",
        ):
            r = http.get(base + path)
            assert r.status_code == 404 and "location" not in r.headers, path
        # Other methods are not the hot path's: the app answers, and never redirects.
        r = http.post(f"{base}/t/c/{click}")
        assert r.status_code in (404, 405) and "location" not in r.headers
    assert requests_counted(region, "click", "ok") == ok_before + 1
    # The script URL, the bare route and the open token; the two-segment path never got here.
    assert requests_counted(region, "click", "not_found") == missing_before + 3
    # The click, and the open once (opens are kept once a message).
    wait_until(lambda: recorded(engine) == 2, timeout=10)


def test_any_signed_url_is_a_redirect_with_an_ascii_location_or_a_404(live_api: LiveApi) -> None:
    """URLs a header cannot carry as they are: a 302 with the URL percent-encoded, or a 404 for
    one that is no URL at all; never a 500."""
    sign = live_api.state.signer.sign
    cases = {
        "http://BÜCHER.de/x": 302,  # capitals IDNA-encoding missed
        "http://ü:p@x.com/": 302,  # non-ASCII user part
        "http://x.com:\uff18\uff10/": 404,  # a full-width port is no port
        "http://" + "ü" * 70 + ".com/": 302,  # a label IDNA refuses
        "http://a\u2028b.com/": 302,
        "http://[::1/": 404,  # urlsplit refuses it
        "http://℀.com/": 404,
    }
    with httpx.Client() as http:
        for url, status in cases.items():
            token = sign(TokenData(Kind.CLICK, 1, 9, 0, url))
            r = http.get(f"{live_api.public_url}/t/c/{token}")
            assert r.status_code == status, (url, r.status_code, r.text)
            if status == 302:
                assert r.headers["location"].isascii() and "%" in r.headers["location"]
