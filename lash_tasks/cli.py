"""`lash-tasks`: run the fleet and operate sessions from a shell. `--json` for programs."""

from __future__ import annotations

import argparse
import json
import mimetypes
import os
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from pydantic import BaseModel
from sqlalchemy.exc import SQLAlchemyError

from lash_tasks.attachments.values import DEFAULT_MEDIA_TYPE
from lash_tasks.errors import EventsUnavailable, InvalidEnvironment, LashError, ValidationError
from lash_tasks.events.render import TranscriptRenderer
from lash_tasks.events.vocabulary import SessionEvent, event_json
from lash_tasks.settings import Settings
from lash_tasks.store.database import explain_database_error

Handler = Callable[[argparse.Namespace], Any]
CELERY_APP = "lash_tasks.worker.app"


def main(argv: Sequence[str] | None = None) -> int:
    parser = _parser()
    # `--json` may stand anywhere on the line, not only before the command.
    words = list(sys.argv[1:] if argv is None else argv)
    as_json = "--json" in words
    args = parser.parse_args([w for w in words if w != "--json"])
    args.json = as_json
    handler: Handler | None = getattr(args, "handler", None)
    if handler is None:
        parser.print_help()
        return 2
    try:
        result = handler(args)
    except (LashError, SQLAlchemyError) as exc:
        if isinstance(exc, SQLAlchemyError):
            explained = explain_database_error(exc)
            if not isinstance(explained, LashError):
                raise
            exc = explained
        if args.json:
            print(json.dumps({"error": exc.to_dict()}), file=sys.stderr)
        else:
            print(f"error: {exc.message}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130
    if result is not None:
        _emit(result, args.json)
    return 0


def _emit(result: Any, as_json: bool) -> None:
    if isinstance(result, BaseModel):
        result = result.model_dump(mode="json")
    elif isinstance(result, list) and all(isinstance(r, BaseModel) for r in result):
        result = [r.model_dump(mode="json") for r in result]
    if as_json or not isinstance(result, str):
        print(json.dumps(result, indent=None if as_json else 2, default=str))
    else:
        print(result)


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="lash-tasks", description=__doc__)
    parser.add_argument("--json", action="store_true", help="machine-readable output")
    sub = parser.add_subparsers(title="commands")

    db = sub.add_parser("db", help="database schema").add_subparsers(title="db commands")
    db.add_parser("upgrade", help="apply migrations").set_defaults(handler=_db_upgrade)

    worker = sub.add_parser("worker", help="run a Celery worker")
    worker.add_argument("--pool", default="threads", choices=["threads", "prefork", "solo"])
    worker.add_argument("--concurrency", "-c", type=int, default=8)
    worker.add_argument(
        "--queues", "-Q", default="lash.turns,lash.ingress,lash.processes,lash.maintenance"
    )
    worker.add_argument("--name", "-n", default=None)
    worker.add_argument("--loglevel", "-l", default="info")
    worker.set_defaults(handler=_worker)

    beat = sub.add_parser("beat", help="run the maintenance scheduler (exactly one per fleet)")
    beat.add_argument("--schedule", default=None, help="beat state file")
    beat.add_argument("--loglevel", "-l", default="info")
    beat.set_defaults(handler=_beat)

    flower = sub.add_parser("flower", help="run Flower (requires authentication)")
    flower.add_argument("--port", type=int, default=None, help="default 5555 or FLOWER_PORT")
    flower.add_argument("--address", default="127.0.0.1")
    flower.set_defaults(handler=_flower)

    session = sub.add_parser("session", help="sessions").add_subparsers(title="session commands")
    create = session.add_parser("create", help="create a session")
    create.add_argument("session_id")
    create.add_argument(
        "--provider", default=None, help="LLM provider name (default LASH_PROVIDER)"
    )
    create.add_argument("--model", default=None, help="model id (default LASH_MODEL)")
    create.add_argument("--system-prompt", default=None)
    create.add_argument("--max-turns", type=int, default=None)
    create.add_argument(
        "--tool",
        action="append",
        default=None,
        dest="tools",
        metavar="NAME",
        help="a registered tool the session may use; repeatable (default: every tool)",
    )
    create.set_defaults(handler=_session_create)

    enqueue = sub.add_parser("enqueue", help="submit user input to a session")
    enqueue.add_argument("session_id")
    enqueue.add_argument("text")
    enqueue.add_argument("--source-key", default=None)
    enqueue.add_argument("--branch-from", default=None)
    enqueue.add_argument("--steer", action="store_true", help="join the running turn")
    enqueue.add_argument(
        "--attach",
        action="append",
        default=[],
        metavar="FILE",
        help="attach a file (images and small text reach the model); repeatable",
    )
    enqueue.add_argument(
        "--wait", action="store_true", help="stream the turn's events and wait for the answer"
    )
    enqueue.add_argument("--timeout", type=float, default=120.0)
    enqueue.set_defaults(handler=_enqueue)

    show = sub.add_parser("show", help="show a session")
    show.add_argument("session_id")
    show.set_defaults(handler=_show)

    sessions = sub.add_parser("sessions", help="list sessions (in id order)")
    sessions.add_argument(
        "--state",
        choices=["running", "waiting", "idle"],
        default=None,
        help="running: a turn is active; waiting: inputs pending; idle: neither",
    )
    sessions.add_argument("--limit", type=int, default=100, help="at most this many (1-1000)")
    sessions.add_argument("--after", default=None, help="only sessions after this id (paging)")
    sessions.set_defaults(handler=_sessions)

    one_input = sub.add_parser("input", help="show one input: its text, state and outcome")
    one_input.add_argument("session_id")
    one_input.add_argument("input_id")
    one_input.set_defaults(handler=_input)

    cancel = sub.add_parser("cancel", help="cancel a pending input or interrupt the turn")
    cancel.add_argument("session_id")
    cancel.add_argument("input_id", nargs="?")
    cancel.add_argument("--source-key", default=None, help="cancel the input of this key")
    cancel.add_argument("--interrupt", action="store_true")
    cancel.set_defaults(handler=_cancel)

    delete = sub.add_parser("delete", help="delete a session and all its rows")
    delete.add_argument("session_id")
    delete.set_defaults(handler=_delete)

    sub.add_parser("status", help="fleet status from the database").set_defaults(handler=_status)

    watch = sub.add_parser(
        "watch",
        help="follow a session live: the answer as it streams, tool calls, outcomes",
        description="--json prints one event per line, each with its cursor.",
    )
    watch.add_argument("session_id")
    watch.add_argument("--cursor", default=None, help="resume after this event cursor")
    watch.add_argument("--timeout", type=float, default=None, help="stop after this many seconds")
    watch.set_defaults(handler=_watch)

    serve = sub.add_parser(
        "serve",
        help="run the HTTP/SSE gateway (needs lash-tasks[server])",
        description=(
            "Bearer-token auth from LASH_HTTP_TOKEN; it refuses to start without one on any "
            "address but loopback."
        ),
    )
    serve.add_argument("--host", default="127.0.0.1")
    serve.add_argument("--port", type=int, default=8080)
    serve.add_argument("--log-level", default="info")
    serve.set_defaults(handler=_serve)

    maintenance = sub.add_parser("maintenance", help="run one maintenance job now")
    maintenance.add_argument(
        "job",
        choices=["sweep", "tombstone_orphans", "vacuum", "reclaim_attachments", "prune_processes"],
    )
    maintenance.set_defaults(handler=_maintenance)

    demo = sub.add_parser("demo", help="run the embedded demo: a worker and a few turns")
    demo.add_argument("--turns", type=int, default=3)
    demo.set_defaults(handler=_demo)

    bench = sub.add_parser(
        "bench",
        help="run the benchmarks and print figures (PostgreSQL + Redis)",
        description=(
            "Figures and ratios measured side by side in one run. Needs PostgreSQL "
            "(LASH_BENCH_PG_ADMIN_URL) and an empty Redis database (LASH_BENCH_REDIS_URL, "
            "default redis://127.0.0.1:6379/15); --embedded uses SQLite and the folder broker."
        ),
    )
    bench.add_argument("--quick", action="store_true", help="short runs, smaller sizes")
    bench.add_argument("--embedded", action="store_true", help="SQLite + folder broker")
    bench.add_argument("--only", default="", help="comma-separated cases (default: all)")
    bench.add_argument("--json-out", default=None, help="write every figure as JSON here")
    bench.add_argument("--chart", default=None, help="write an SVG chart of the ratios here")
    bench.set_defaults(handler=_bench)
    return parser


def _settings() -> Settings:
    settings = Settings.from_env()
    settings.ensure_local_dirs()
    return settings


def _db_upgrade(args: argparse.Namespace) -> dict[str, str]:
    from lash_tasks.store.migrate import upgrade

    settings = _settings()
    upgrade(settings.database_url)
    return {"status": "upgraded", "database": _redacted(settings.database_url)}


def _redacted(url: str) -> str:
    from sqlalchemy.engine import make_url

    return make_url(url).render_as_string(hide_password=True)


def _exec_celery(arguments: list[str]) -> None:
    _settings()
    os.execvp(sys.executable, [sys.executable, "-m", "celery", "-A", CELERY_APP, *arguments])


def _worker(args: argparse.Namespace) -> None:
    arguments = [
        "worker",
        "-P",
        args.pool,
        "-c",
        str(args.concurrency),
        "-Q",
        args.queues,
        "-l",
        args.loglevel,
    ]
    if args.name:
        arguments += ["-n", args.name]
    _exec_celery(arguments)


def _beat(args: argparse.Namespace) -> None:
    schedule = Path(args.schedule) if args.schedule else _settings().home / "beat-schedule"
    # Beat keeps its state in a shelve file and will not create the folder that holds it;
    # with PostgreSQL and Redis nothing else creates LASH_HOME.
    schedule.absolute().parent.mkdir(parents=True, exist_ok=True)
    _exec_celery(["beat", "-s", str(schedule), "-l", args.loglevel])


def _flower(args: argparse.Namespace) -> None:
    auth = os.environ.get("LASH_FLOWER_BASIC_AUTH") or os.environ.get("FLOWER_BASIC_AUTH")
    if not auth or ":" not in auth:
        raise InvalidEnvironment(
            "Flower shows task arguments and results; set LASH_FLOWER_BASIC_AUTH=user:password "
            "to start it behind authentication",
            variable="LASH_FLOWER_BASIC_AUTH",
        )
    # Passed through the environment, never argv, so `ps` does not show the password.
    os.environ["FLOWER_BASIC_AUTH"] = auth
    port = [] if args.port is None else [f"--port={args.port}"]
    _exec_celery(["flower", *port, f"--address={args.address}"])


def _client() -> Any:
    from lash_tasks.client import Client

    return Client.from_env()


def _session_create(args: argparse.Namespace) -> dict[str, Any]:
    view = _client().create_session(
        args.session_id,
        provider=args.provider,
        model=args.model,
        system_prompt=args.system_prompt,
        max_turns=args.max_turns,
        tools=args.tools,
    )
    return {"session_id": view.session_id}


def _enqueue(args: argparse.Namespace) -> dict[str, Any] | None:
    client = _client()
    attachments = [_put_file(client, args.session_id, path) for path in args.attach]
    # Taken before the input exists, so the stream shows its turn from the start.
    cursor = _event_tail(client, args.session_id) if args.wait else None
    input_id = client.enqueue_turn(
        args.session_id,
        args.text,
        source_key=args.source_key,
        branch_from=args.branch_from,
        attachments=attachments,
        steer=args.steer,
    )
    if not args.wait:
        return {"input_id": input_id, "state": "pending"}
    printer = _EventPrinter(args.json)
    answer = client.wait_for_input(
        args.session_id, input_id, timeout=args.timeout, cursor=cursor, on_event=printer
    )
    if args.json:
        return dict(answer.to_dict())
    printer.finish(answer.turn_id, answer.text, answer.state)
    return None


def _event_tail(client: Any, session_id: str) -> str | None:
    try:
        return str(client.event_tail(session_id))
    except EventsUnavailable:
        return None  # waiting falls back to the database; there is just nothing to stream


class _EventPrinter:
    """Prints events as they arrive: rendered for a person, or one JSON line each."""

    def __init__(self, as_json: bool) -> None:
        self.as_json = as_json
        self.renderer = TranscriptRenderer()

    def __call__(self, event: SessionEvent) -> None:
        text = event_json(event) + "\n" if self.as_json else self.renderer.render(event)
        sys.stdout.write(text)
        sys.stdout.flush()

    def finish(self, turn_id: str | None, text: str, state: str) -> None:
        """Print the answer unless its turn's end was already shown."""
        if turn_id not in self.renderer.ended:
            sys.stdout.write(self.renderer.render_answer(text, state))
            sys.stdout.flush()


def _put_file(client: Any, session_id: str, path: str) -> str:
    media_type = mimetypes.guess_type(path)[0] or DEFAULT_MEDIA_TYPE
    try:
        data = Path(path).read_bytes()
    except OSError as exc:
        raise ValidationError(f"--attach {path}: {exc.strerror or exc}") from None
    return str(client.put_attachment(session_id, data, media_type))


def _show(args: argparse.Namespace) -> Any:
    view = _client().session_view(args.session_id)
    if args.json:
        return view
    lines = [
        f"session {view.session_id}  revision {view.head_revision}  "
        f"provider {view.provider}  model {view.model}"
    ]
    for node in view.transcript:
        if node["kind"] == "message":
            calls = ", ".join(c["name"] for c in node.get("tool_calls", []))
            suffix = f"  [calls: {calls}]" if calls else ""
            lines.append(f"  {node['role']:>9}: {node.get('text', '')}{suffix}")
        else:
            lines.append(f"  {'event':>9}: {node.get('type')} {node.get('reason') or ''}")
    turn = view.active_turn
    if turn is not None:
        lines.append(
            f"  active turn {turn.turn_id}: {turn.steps_committed} step(s) committed, "
            f"attempt {turn.attempts}, inputs {', '.join(turn.claimed_input_ids) or '-'}"
            + ("  (cancel requested)" if turn.cancel_requested else "")
        )
        if turn.error:
            lines.append(f"  last error: {turn.error}")
    if view.pending_inputs:
        lines.append(f"  pending inputs: {', '.join(view.pending_inputs)}")
    return "\n".join(lines)


def _sessions(args: argparse.Namespace) -> Any:
    found = _client().sessions(state=args.state, limit=args.limit, after=args.after)
    if args.json:
        return found
    return "\n".join(
        f"{s.session_id}  {s.activity:<7}  pending {s.pending_inputs}  "
        f"revision {s.head_revision}  {s.provider}/{s.model}"
        for s in found
    )


def _input(args: argparse.Namespace) -> Any:
    return _client().input(args.session_id, args.input_id)


def _cancel(args: argparse.Namespace) -> Any:
    return _client().cancel_input(
        args.session_id, args.input_id, source_key=args.source_key, interrupt=args.interrupt
    )


def _delete(args: argparse.Namespace) -> Any:
    return _client().delete_session(args.session_id)


def _status(args: argparse.Namespace) -> Any:
    return _client().status()


def _watch(args: argparse.Namespace) -> None:
    printer = _EventPrinter(args.json)
    for event in _client().events(args.session_id, cursor=args.cursor, timeout=args.timeout):
        printer(event)


def _serve(args: argparse.Namespace) -> None:
    from lash_tasks.gateway.server import serve

    serve(_settings(), host=args.host, port=args.port, log_level=args.log_level)


def _maintenance(args: argparse.Namespace) -> dict[str, Any]:
    from lash_tasks.worker.app import app
    from lash_tasks.worker.maintenance import manual_slot, run_job
    from lash_tasks.worker.resources import build_resources

    resources = build_resources(_settings())
    try:
        return run_job(resources, app, args.job, manual_slot())
    finally:
        resources.close()


def _demo(args: argparse.Namespace) -> str:
    from lash_tasks.demo import run_demo

    return run_demo(_settings(), turns=args.turns)


def _bench(args: argparse.Namespace) -> str:
    from pathlib import Path

    from lash_tasks.bench import run_benchmarks

    return run_benchmarks(
        quick=args.quick,
        embedded=args.embedded,
        only=[case.strip() for case in args.only.split(",") if case.strip()],
        json_out=Path(args.json_out) if args.json_out else None,
        chart_out=Path(args.chart) if args.chart else None,
    )


if __name__ == "__main__":
    raise SystemExit(main())
