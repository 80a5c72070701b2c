"""Schemathesis against the region API's own OpenAPI schema, in-process, on SQLite.

Every operation, with a key holding every scope: no answer is a 5xx, and every answer matches
what the schema documents for it (status, content type, body).
"""

from collections.abc import Iterator
from pathlib import Path

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from hypothesis.errors import Unsatisfiable
from schemathesis import GenerationMode
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from steadymail.api.app import create_app
from steadymail.config import Settings
from steadymail.services import campaigns, csv_import, templates
from steadymail.store import apikeys, contacts
from steadymail.store.db import make_engine, migrate
from tests.conftest import CLOCK

CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_schema_conformance,
]


@pytest.fixture(scope="module")
def region(
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[tuple[schemathesis.BaseSchema, str]]:
    """A migrated SQLite region with a list, a template and a campaign, and its API's schema."""
    tmp: Path = tmp_path_factory.mktemp("fuzz")
    url = f"sqlite:///{tmp / 'steadymail.db'}"
    migrate(url)
    engine = make_engine(url)
    s = Settings(data_dir=tmp / "data", database_url=url)
    contacts.create_list(engine, "news", CLOCK.now())
    csv_import.import_contacts(engine, CLOCK, b"email,first_name\na@example.com,A\n", "news")
    templates.create_template(engine, CLOCK, "hello", "Hi {{ first_name }}", "<b>hi</b>", "hi")
    campaigns.create_campaign(
        engine, CLOCK, s, name="c1", list_name="news", template="hello", from_addr=None
    )
    key = apikeys.create_key(engine, "fuzz", set(apikeys.SCOPES), CLOCK.now())
    schema = schemathesis.openapi.from_asgi("/openapi.json", create_app(s, engine))
    yield schema, key
    engine.dispose()


def _fuzz(schema: schemathesis.BaseSchema, key: str, mode: GenerationMode) -> list[str]:
    """Run every operation; the failures, one line each (hypothesis shrinks each to its minimum)."""
    failures = []
    operations = [result.ok() for result in schema.get_all_operations()]
    # Every /v1 route (a route lost from the schema would go untested without a word).
    assert len(operations) >= 30, [op.label for op in operations]
    for operation in operations:

        @given(case=operation.as_strategy(mode))
        @settings(
            # 15 a mode and operation (2 x 45 operations): 25 took 50 s of a CI run near its limit.
            max_examples=15,
            derandomize=True,
            database=None,
            deadline=None,
            suppress_health_check=list(HealthCheck),
        )
        def run(case: schemathesis.Case) -> None:
            case.call_and_validate(headers={"Authorization": f"Bearer {key}"}, checks=CHECKS)

        try:
            run()
        except Unsatisfiable:
            # Negative mode: an operation without parameters or body has no invalid request.
            assert mode == GenerationMode.NEGATIVE, operation.label
        # Every failing operation is reported, not only the first (schemathesis raises groups).
        except (Exception, BaseExceptionGroup) as e:
            failures.append(f"{mode} {operation.label}: {type(e).__name__}: {str(e)[:2000]}")
    return failures


@pytest.mark.parametrize("mode", [GenerationMode.POSITIVE, GenerationMode.NEGATIVE])
def test_no_5xx_and_answers_match_the_schema(
    region: tuple[schemathesis.BaseSchema, str], mode: GenerationMode
) -> None:
    schema, key = region
    failures = _fuzz(schema.include(path_regex="^/v1/"), key, mode)
    assert not failures, "\n\n".join(failures)
