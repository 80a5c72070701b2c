"""Bad input is refused at the door with a clear error: headers, sizes, counts, NaN, pages.

The real app in process (TestClient), on SQLite and PostgreSQL.
"""

from collections.abc import Callable, Iterator
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import Engine

from steadymail.api.app import create_app
from steadymail.api.limits import MAX_PAGE
from steadymail.config import Settings
from steadymail.store import apikeys, sends
from tests.conftest import CLOCK

MSG = {"to": "a@example.com", "subject": "Hi", "text": "hello"}


@pytest.fixture
def client(
    db_url: str, engine: Engine, settings_for: Callable[..., Settings]
) -> Iterator[TestClient]:
    settings = settings_for(
        db_url, 2525, max_request_bytes=4096, max_import_bytes=8192, max_recipients=3
    )
    key = apikeys.create_key(engine, "all", set(apikeys.SCOPES), CLOCK.now())
    with TestClient(create_app(settings, engine)) as c:
        c.headers["Authorization"] = f"Bearer {key}"
        yield c


def refused(r: Any, status: int, *words: str) -> None:
    assert r.status_code == status, r.text
    body = r.json()
    assert set(body) >= {"error", "detail"}
    for w in words:
        assert w in body["detail"], body


@pytest.mark.parametrize(
    ("headers", "named"),
    [
        ({"Bcc": "spy@example.com"}, "Bcc"),
        ({"return-path": "<x@example.com>"}, "return-path"),
        ({"DKIM-Signature": "v=1"}, "DKIM-Signature"),
        ({"X-Note": "a\r\nBcc: spy@example.com"}, "X-Note"),
        ({"X-Note": "bell\x07"}, "X-Note"),
        ({"Bad Name": "x"}, "Bad Name"),
    ],
)
def test_bad_headers_are_a_422_naming_them(
    client: TestClient, engine: Engine, headers: dict[str, str], named: str
) -> None:
    refused(client.post("/v1/messages", json={**MSG, "headers": headers}), 422, named)
    assert sends.all_sends(engine) == []  # nothing was queued


def test_a_second_list_unsubscribe_is_refused(client: TestClient) -> None:
    body = {**MSG, "headers": {"List-Unsubscribe": "<mailto:x@example.com>"}}
    assert client.post("/v1/messages", json=body).status_code == 202
    refused(client.post("/v1/messages", json={**body, "list_unsubscribe": True}), 422, "List-Unsub")


def test_body_past_the_limit_is_a_413_with_or_without_a_length(client: TestClient) -> None:
    big = {**MSG, "text": "x" * 5000}
    refused(client.post("/v1/messages", json=big), 413, "4096 bytes")

    def chunks() -> Iterator[bytes]:  # no Content-Length: counted as it arrives
        yield b'{"to": "a@example.com", "subject": "Hi", "text": "'
        for _ in range(10):
            yield b"x" * 1000
        yield b'"}'

    r = client.post("/v1/messages", content=chunks(), headers={"Content-Type": "application/json"})
    refused(r, 413)


def test_recipients_subject_and_variables_are_bounded(client: TestClient) -> None:
    four = [f"u{i}@example.com" for i in range(4)]
    refused(client.post("/v1/messages", json={**MSG, "to": four}), 422, "at most 3")
    refused(client.post("/v1/messages", json={**MSG, "subject": "s" * 999}), 422, "subject")
    many = {f"v{i}": i for i in range(201)}
    refused(client.post("/v1/messages", json={**MSG, "vars": many}), 422, "200 variables")


@pytest.mark.parametrize(
    ("path", "raw"),
    [
        (
            "/v1/messages",
            '{"to": "a@example.com", "subject": "s", "text": "t", "vars": {"n": NaN}}',
        ),
        ("/v1/silences", '{"name": "x", "minutes": Infinity}'),
        ("/v1/silences", '{"name": "x", "minutes": NaN}'),
        ("/v1/alerts", '{"fingerprint": "f", "labels": {"score": -Infinity}}'),
    ],
)
def test_nan_and_infinities_in_bodies_are_a_422(client: TestClient, path: str, raw: str) -> None:
    r = client.post(path, content=raw, headers={"Content-Type": "application/json"})
    refused(r, 422, "finite")


def test_nan_in_a_flag_value_is_a_422(client: TestClient) -> None:
    raw = '{"value": {"every": NaN}, "by": "me"}'
    r = client.put(
        "/v1/flags/fault.worker_exit", content=raw, headers={"Content-Type": "application/json"}
    )
    refused(r, 422, "finite")


@pytest.mark.parametrize(
    "path",
    [
        "/v1/alerts?since=nan",
        "/v1/changes?since=inf",
        "/v1/metrics/series?minutes=nan",
        "/v1/metrics/series/x?minutes=-inf",
    ],
)
def test_nan_and_infinities_in_queries_are_a_422(client: TestClient, path: str) -> None:
    refused(client.get(path), 422, "finite")


LISTS = [
    "/v1/lists",
    "/v1/templates",
    "/v1/sends",
    "/v1/messages/1",
    "/v1/captured",
    "/v1/alerts",
    "/v1/workers",
    "/v1/stalls",
    "/v1/metrics/series",
    "/v1/changes",
    "/v1/quarantine",
    "/v1/flags/history",
]


@pytest.mark.parametrize("path", LISTS)
def test_every_list_route_takes_a_bounded_page(client: TestClient, path: str) -> None:
    assert client.get(path, params={"limit": MAX_PAGE, "offset": 0}).status_code == 200
    refused(client.get(path, params={"limit": MAX_PAGE + 1}), 422, "limit")
    refused(client.get(path, params={"limit": 0}), 422, "limit")
    refused(client.get(path, params={"offset": -1}), 422, "offset")


def test_pages_follow_each_other(client: TestClient) -> None:
    for i in range(5):
        client.post("/v1/lists", json={"name": f"l{i}"}).raise_for_status()
    first = client.get("/v1/lists", params={"limit": 2}).json()
    second = client.get("/v1/lists", params={"limit": 2, "offset": 2}).json()
    rest = client.get("/v1/lists", params={"limit": 2, "offset": 4}).json()
    assert [x["name"] for x in first + second + rest] == [f"l{i}" for i in range(5)]


def test_csv_import_past_its_limit_is_a_413_and_imports_nothing(client: TestClient) -> None:
    client.post("/v1/lists", json={"name": "news"}).raise_for_status()

    def rows() -> Iterator[bytes]:
        yield b"email\n"
        for i in range(1000):
            yield f"user{i}@example.com\n".encode()

    r = client.post("/v1/lists/news/import", content=rows(), headers={"Content-Type": "text/csv"})
    refused(r, 413, "8192 bytes")
    assert client.get("/v1/lists").json()[0]["contacts"] == 0


def test_csv_import_under_its_limit_keeps_good_rows_and_reports_bad_ones(
    client: TestClient,
) -> None:
    # Larger than max_request_bytes: imports have their own limit.
    csv = "email\n" + "".join(f"someone{i}@example.com\n" for i in range(200)) + "broken\n"
    assert 4096 < len(csv) < 8192
    client.post("/v1/lists", json={"name": "news"}).raise_for_status()
    report = client.post("/v1/lists/news/import", content=csv.encode()).json()
    assert report["imported"] == 200
    assert [e["line"] for e in report["errors"]] == [202]


def test_errors_share_one_shape(client: TestClient) -> None:
    refused(client.get("/v1/sends/99"), 404)
    refused(client.post("/v1/sends/1/explode"), 404, "pause")
    refused(client.get("/v1/nowhere"), 404)
    r = client.post("/v1/lists", content=b"\xff\xfe", headers={"Content-Type": "application/json"})
    assert r.status_code in (400, 422) and set(r.json()) >= {"error", "detail"}
    r = client.post("/v1/lists", json={"name": ""})
    refused(r, 422, "body.name")
    assert r.json()["errors"][0]["loc"] == ["body", "name"]
    refused(client.get(f"/v1/sends/{2**63}"), 422)


def test_the_schema_documents_every_v1_answer(client: TestClient) -> None:
    spec = client.get("/openapi.json").json()
    for path, ops in spec["paths"].items():
        if not path.startswith("/v1/"):
            continue
        for method, op in ops.items():
            codes = set(op["responses"])
            assert {"401", "403", "404", "409", "413", "422"} <= codes, (method, path)
            ok = next(c for c in codes if c.startswith("2"))
            assert op["responses"][ok].get("content"), (method, path)
            error = op["responses"]["422"]["content"]["application/json"]["schema"]
            assert error == {"$ref": "#/components/schemas/ErrorOut"}, (method, path)
