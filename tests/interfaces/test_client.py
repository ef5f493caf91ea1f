"""The typed `Client` (and `AsyncClient`) on the embedded default: explicit keyword
parameters, pydantic answers with a stable JSON form, bad values refused by field."""

from __future__ import annotations

import asyncio
import importlib.metadata
import inspect
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

import lash_tasks
from lash_tasks import AsyncClient, Client
from lash_tasks.errors import (
    NotFound,
    UnknownBranchPoint,
    UnknownLlmProvider,
    UnknownTool,
    ValidationError,
)
from lash_tasks.settings import Settings
from lash_tasks.store.migrate import upgrade
from lash_tasks.views import (
    CancelResult,
    DeleteReport,
    FleetStatus,
    InputView,
    SessionSummary,
    SessionView,
)


@pytest.fixture
def client(tmp_path: Path) -> Iterator[Client]:
    settings = Settings.from_env({"LASH_HOME": str(tmp_path)})
    settings.ensure_local_dirs()
    upgrade(settings.database_url)
    opened = Client.from_settings(settings)
    yield opened
    opened.close()


def _rows(client: Client) -> dict[str, int]:
    count = client.store.maintenance.count_rows
    return {table: count(table) for table in ("lash_sessions", "lash_pending_inputs")}


def test_create_session_answers_its_view(client: Client) -> None:
    """create_session takes explicit keywords and answers the SessionView."""
    view = client.create_session("s1", model="m-1", max_turns=3, tools=["calculator"])
    assert isinstance(view, SessionView)
    assert (view.session_id, view.provider, view.model, view.tools) == (
        "s1",
        "scripted",
        "m-1",
        ["calculator"],
    )
    assert view.active_turn is None and view.pending_inputs == [] and view.head_revision == 0
    assert client.create_session("s1", model="m-1", max_turns=3, tools=["calculator"]) == view


@pytest.mark.parametrize(
    ("call", "error", "field"),
    [
        (lambda c: c.create_session("s1", provider="gemini"), UnknownLlmProvider, "provider"),
        (lambda c: c.create_session("s1", provider="Bad Name"), ValidationError, "provider"),
        (lambda c: c.create_session("s1", tools=["nope"]), UnknownTool, "tools"),
        (lambda c: c.create_session("s1", max_turns=0), ValidationError, "max_turns"),
        (lambda c: c.create_session("s1", residency="all"), ValidationError, "residency"),
        (lambda c: c.create_session("../x"), ValidationError, "session_id"),
        (lambda c: c.enqueue_turn("s0", ""), ValidationError, "text"),
        (lambda c: c.enqueue_turn("s0", "hi", branch_from="n9"), UnknownBranchPoint, "branch_from"),
        (
            lambda c: c.enqueue_turn("s0", "hi", reply_to={"task": "t", "queue": "lash.turns"}),
            ValidationError,
            "reply_to.queue",
        ),
        (lambda c: c.enqueue_turn("s0", "hi", reply_to={"task": "t"}), ValidationError, "reply_to"),
        (
            lambda c: c.enqueue_turn("s0", "hi", attachments=["../x"]),
            ValidationError,
            "attachments",
        ),
        (lambda c: c.sessions(limit=0), ValidationError, "limit"),
        (lambda c: c.sessions(state="busy"), ValidationError, "state"),  # type: ignore[arg-type]
    ],
)
def test_bad_values_are_refused_by_field_and_write_nothing(
    client: Client, call: Any, error: type[Exception], field: str
) -> None:
    """Every parameter's bad value raises a typed one-line error naming it; nothing written."""
    client.create_session("s0")
    before = _rows(client)
    with pytest.raises(error) as info:
        call(client)
    message = str(info.value)
    assert field in message and "\n" not in message
    assert _rows(client) == before


def test_answers_have_a_stable_json_form(client: Client) -> None:
    """Each answer is a pydantic model whose JSON reads back equal."""
    client.create_session("s1")
    input_id = client.enqueue_turn("s1", "hello", source_key="k1")
    answers: list[Any] = [
        client.session_view("s1"),
        client.input("s1", input_id),
        client.status(),
        *client.sessions(),
        client.cancel_input("s1", input_id),
        client.delete_session("s1"),
    ]
    kinds = [type(a) for a in answers]
    assert kinds == [
        SessionView,
        InputView,
        FleetStatus,
        SessionSummary,
        CancelResult,
        DeleteReport,
    ]
    for answer in answers:
        assert type(answer).model_validate_json(answer.model_dump_json()) == answer


def test_input_shows_what_was_submitted_and_where_it_stands(client: Client) -> None:
    client.create_session("s1")
    input_id = client.enqueue_turn(
        "s1", "hello", source_key="k1", reply_to={"task": "app.answers", "queue": "app"}
    )
    view = client.input("s1", input_id)
    assert (view.text, view.state, view.source_key, view.outcome) == (
        "hello",
        "pending",
        "k1",
        None,
    )
    assert view.reply_to == {"task": "app.answers", "queue": "app"}
    with pytest.raises(NotFound, match="in_nope"):
        client.input("s1", "in_nope")


def test_status_counts_only_inputs_still_pending(client: Client) -> None:
    """A cancelled input is a row, but nothing waits for it."""
    client.create_session("s1")
    first = client.enqueue_turn("s1", "one")
    client.enqueue_turn("s1", "two")
    assert client.cancel_input("s1", first).outcome == "cancelled"
    status = client.status()
    assert (status.sessions, status.pending_inputs, status.active_turns) == (1, 1, 0)


def test_sessions_lists_with_filters_and_pages(client: Client) -> None:
    for sid in ("a", "b", "c"):
        client.create_session(sid)
    client.enqueue_turn("b", "hello")
    assert [s.session_id for s in client.sessions()] == ["a", "b", "c"]
    assert [s.session_id for s in client.sessions(state="waiting")] == ["b"]
    assert [s.session_id for s in client.sessions(state="idle")] == ["a", "c"]
    assert client.sessions(state="running") == []
    assert [s.session_id for s in client.sessions(limit=1, after="a")] == ["b"]
    [b] = client.sessions(state="waiting")
    assert (b.activity, b.pending_inputs, b.provider, b.model) == (
        "waiting",
        1,
        "scripted",
        "scripted-echo",
    )


def test_async_client_has_the_same_methods_and_parameters() -> None:
    """AsyncClient mirrors Client: every public method, with the same parameters."""

    def surface(cls: type) -> dict[str, list[tuple[str, Any, Any]]]:
        return {
            name: [
                (p.name, p.kind, p.default)
                for p in inspect.signature(member).parameters.values()
                if p.name != "self"
            ]
            for name, member in vars(cls).items()
            if callable(member)
            and not name.startswith("_")
            and name != "from_env"
            and name != "from_settings"
        }

    ours, theirs = surface(AsyncClient), surface(Client)
    assert set(ours) == set(theirs)
    assert ours == theirs


def test_async_client_runs_the_same_operations(client: Client) -> None:
    async def scenario() -> tuple[SessionView, str, CancelResult, list[SessionSummary]]:
        aclient = AsyncClient(client)
        view = await aclient.create_session("s1", model="m")
        input_id = await aclient.enqueue_turn("s1", "hello")
        cancelled = await aclient.cancel_input("s1", input_id)
        return view, input_id, cancelled, await aclient.sessions()

    view, input_id, cancelled, listed = asyncio.run(scenario())
    assert view.model == "m" and input_id.startswith("in_")
    assert cancelled == CancelResult(session_id="s1", outcome="cancelled")
    assert [s.session_id for s in listed] == ["s1"]


def test_the_package_has_a_version_and_type_information() -> None:
    assert lash_tasks.__version__ == importlib.metadata.version("lash-tasks")
    assert (Path(lash_tasks.__file__).parent / "py.typed").exists()
