"""Templates that fail or ask for unbounded work are a 422 at the door, never a 500 or a hang."""

import httpx
import pytest

from tests.conftest import LiveApi

BUSY = "{% for i in range(100000) %}{% for j in range(100000) %}{% endfor %}{% endfor %}"
HOSTILE = [
    "{{ 9**(9**9) }}",
    '{{ "a"*10**8 }}',
    "{{ range(10**9)|list }}",
    '{{ "x".ljust(10**9) }}',
    '{{ ("a"*100000)|replace("a","b"*100000) }}',
    "{% macro m(n) %}{{ m(n + 1) }}{% endmacro %}{{ m(0) }}",
    "{{ 1 + 'a' }}",
    BUSY,
    "<div>" * 200_000,  # an HTML parser's quadratic case: refused before parsing
]


def client(api: LiveApi) -> httpx.Client:
    return httpx.Client(
        base_url=api.url, headers={"Authorization": f"Bearer {api.key}"}, timeout=60
    )


@pytest.mark.parametrize("source", HOSTILE)
def test_hostile_templates_are_refused_with_422(live_api: LiveApi, source: str) -> None:
    with client(live_api) as c:
        r = c.post("/v1/templates", json={"name": "t", "subject": "s", "html": source})
        assert r.status_code == 422, r.text
        body = {"to": "a@example.com", "subject": "s", "html": source}
        r = c.post("/v1/messages", json=body)
        assert r.status_code == 422, r.text
        assert c.get("/v1/sends").status_code == 200


def test_a_template_failing_with_the_messages_variables_is_422(live_api: LiveApi) -> None:
    with client(live_api) as c:
        # Accepted as a template: without variables nothing shows it fails.
        c.post(
            "/v1/templates", json={"name": "plus", "subject": "s", "html": "{{ first_name + 1 }}"}
        ).raise_for_status()
        for body in (
            {"template": "plus", "vars": {"first_name": "Ada"}},
            {"subject": "s", "html": "{{ first_name + 1 }}", "vars": {"first_name": "Ada"}},
        ):
            r = c.post("/v1/messages", json={"to": "a@example.com", **body})
            assert r.status_code == 422, r.text
            assert "TypeError" in r.json()["detail"]
        # Nesting made by a loop shows only once rendered: refused before any HTML parser runs.
        deep = {"subject": "s", "html": "{% for i in range(2000) %}<div>{% endfor %}"}
        r = c.post("/v1/messages", json={"to": "a@example.com", **deep})
        assert r.status_code == 422 and "2000 elements deep" in r.json()["detail"]
        ok = {"subject": "s", "html": "{{ first_name + 1 }}", "vars": {"first_name": 41}}
        assert c.post("/v1/messages", json={"to": "a@example.com", **ok}).status_code == 202
