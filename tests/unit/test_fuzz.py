"""Schema fuzzing (issue 12): schemathesis sends what the OpenAPI schema allows, and what it
does not, to every route of the app, in process and with an admin's token; no answer may be a
5xx. Bounded (a few examples per route, derandomized: the same cases every run) so that it
stays in `make test`.

No route is left out: the WeChat callback is not in the schema unless a callback token is
set, and is set here so that it is fuzzed too.
"""

from __future__ import annotations

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from hypothesis.errors import Unsatisfiable
from hypothesis.strategies import SearchStrategy
from schemathesis import BaseSchema, GenerationMode
from schemathesis.checks import not_a_server_error

from publisher.api.app import create_app
from publisher.config import Settings, get_settings, reset_settings
from publisher.db import get_database
from publisher.services.items import create_item
from tests.support import enable_signed_channels, item_fields, publish_reviewed, user_with_token


@pytest.fixture
def api_schema(
    publisher_env: Settings,
    monkeypatch: pytest.MonkeyPatch,
    dispatched: list[tuple[int, str, float]],
) -> BaseSchema:
    """The app's schema, served by the app itself on a fresh database with a draft item
    (id 1) and a published one (id 2, with deliveries), so that small ids find rows."""
    enable_signed_channels(monkeypatch)
    monkeypatch.setenv("PUBLISHER_WECHAT_CALLBACK_TOKEN", "fuzz-callback-token")
    reset_settings()
    settings = get_settings()
    with get_database().session() as session:
        create_item(session, settings, item_fields(), actor="t")
        published = create_item(session, settings, item_fields(title="已发布"), actor="t")
        publish_reviewed(session, settings, published.id, enabled_kinds=["website"])
    return schemathesis.openapi.from_asgi("/openapi.json", create_app(settings))


# Examples per route and mode: the whole run stays well under a minute on two cores.
EXAMPLES = 20


def test_no_route_answers_a_server_error(api_schema: BaseSchema) -> None:
    """Every operation of the schema, with data that fits it and data that does not, each
    a bounded search of its own; the failures of all of them are reported together."""
    failures = []
    for found in api_schema.get_all_operations():
        operation = found.ok()
        for mode in GenerationMode:
            try:
                fuzz(operation.as_strategy(mode))
            except Unsatisfiable:
                # Nothing to send that the schema refuses (no parameters, or only free
                # strings): its positive run covered it.
                assert mode == GenerationMode.NEGATIVE, operation.label
            except Exception as failure:  # one route's failure must not hide the others'
                failures.append(f"{operation.label} ({mode}): {failure}")
    assert not failures, "\n\n".join(failures)


def fuzz(cases: SearchStrategy[schemathesis.Case]) -> None:
    """Call the app with `cases`, each with an admin token of its own (DELETE /tokens/{id}
    may revoke it); raises at the first 5xx."""

    @given(case=cases)
    @settings(
        max_examples=EXAMPLES,
        derandomize=True,
        deadline=None,
        database=None,
        suppress_health_check=list(HealthCheck),
    )
    def run(case: schemathesis.Case) -> None:
        admin = {"Authorization": f"Bearer {user_with_token(get_database(), 'admin')}"}
        case.call_and_validate(headers=admin, checks=[not_a_server_error])

    run()
