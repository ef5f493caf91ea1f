"""`lash-tasks`: run the fleet and operate sessions from a shell. `--json` for programs."""

from __future__ import annotations

import argparse
import json
import mimetypes
import os
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from importlib.metadata import version
from pathlib import Path
from typing import Any

from pydantic import BaseModel
from sqlalchemy.exc import SQLAlchemyError

from lash_tasks.attachments.values import DEFAULT_MEDIA_TYPE
from lash_tasks.errors import EventsUnavailable, LashError, ValidationError
from lash_tasks.events.render import TranscriptRenderer
from lash_tasks.events.vocabulary import SessionEvent, event_json
from lash_tasks.settings import Settings
from lash_tasks.store.database import explain_database_error
from lash_tasks.worker import queues

Handler = Callable[[argparse.Namespace], Any]
CELERY_APP = "lash_tasks.worker.app"


# Exit statuses: 0 done; 1 the command ran but found nothing to act on (a `not_found`
# outcome); 2 an error (bad input, bad environment, unmigrated database); 130 interrupted.
EXIT_NOT_FOUND = 1
EXIT_ERROR = 2


@dataclass(frozen=True)
class Exit:
    """A handler's result with a non-zero exit status: printed like any result."""

    result: Any
    status: int


def main(argv: Sequence[str] | None = None) -> int:
    parser = _parser()
    # `--json` may stand anywhere on the line, not only before the command.
    words = list(sys.argv[1:] if argv is None else argv)
    as_json = "--json" in words
    args, extra = parser.parse_known_args([w for w in words if w != "--json"])
    args.json = as_json
    # `worker`, `beat` and `flower` hand every option they do not know to Celery.
    if extra and not getattr(args, "celery_passthrough", False):
        parser.error(f"unrecognized arguments: {' '.join(extra)}")
    args.celery_args = extra[1:] if extra[:1] == ["--"] else extra
    handler: Handler | None = getattr(args, "handler", None)
    if handler is None:
        parser.print_help()
        return EXIT_ERROR
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
        return EXIT_ERROR
    except KeyboardInterrupt:
        return 130
    status = 0
    if isinstance(result, Exit):
        result, status = result.result, result.status
    if result is not None:
        _emit(result, args.json)
    return status


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
    parser = argparse.ArgumentParser(
        prog="lash-tasks",
        description=__doc__,
        epilog=(
            "Exit status: 0 done, 1 nothing found to act on (a not_found outcome), "
            "2 error. Settings come from LASH_* variables (see README, Configuration)."
        ),
    )
    parser.add_argument("--json", action="store_true", help="machine-readable output")
    parser.add_argument("--version", action="version", version=f"%(prog)s {version('lash-tasks')}")
    sub = parser.add_subparsers(title="commands", metavar="COMMAND")

    db = sub.add_parser("db", help="database schema", description="Database schema.")
    db_sub = db.add_subparsers(title="db commands", metavar="COMMAND")
    db_sub.add_parser(
        "upgrade", help="apply migrations", description="Apply every migration not yet applied."
    ).set_defaults(handler=_db_upgrade)

    worker = _celery_command(
        sub,
        "worker",
        help="run a Celery worker",
        description=(
            "Run a worker of the fleet: `celery -A lash_tasks.worker.app worker` with these "
            "defaults. Any further option goes to Celery unchanged (--autoscale 10,2, "
            "--without-mingle, -E, --max-tasks-per-child N, ...). Without -Q the worker "
            "consumes every lash queue."
        ),
    )
    worker.add_argument(
        "--pool",
        "-P",
        default="threads",
        help="Celery pool: threads (default; steps mostly wait on the LLM), prefork for "
        "CPU-heavy tools, solo",
    )
    worker.add_argument(
        "--concurrency", "-c", type=int, default=8, help="steps run at once (default 8)"
    )
    worker.add_argument(
        "--queues",
        "-Q",
        default=None,
        help="comma-separated queues to consume (default: all of " + ", ".join(queues.ALL) + ")",
    )
    worker.add_argument(
        "--name",
        "-n",
        default=None,
        help="worker name, its identity in the database; give each worker on a machine "
        "its own (name@%%h)",
    )
    worker.add_argument("--loglevel", "-l", default="info", help="log level (default info)")
    worker.set_defaults(handler=_worker)

    beat = _celery_command(
        sub,
        "beat",
        help="run the maintenance scheduler (exactly one per fleet)",
        description=(
            "Run Celery beat with the maintenance schedule. Any further option goes to "
            "Celery unchanged."
        ),
    )
    beat.add_argument(
        "--schedule",
        "-s",
        default=None,
        help="beat state file (default LASH_HOME/beat-schedule)",
    )
    beat.add_argument("--loglevel", "-l", default="info", help="log level (default info)")
    beat.set_defaults(handler=_beat)

    flower = _celery_command(
        sub,
        "flower",
        help="run Flower (requires authentication; needs lash-tasks[flower])",
        description=(
            "Run Flower behind basic auth from LASH_FLOWER_BASIC_AUTH=user:password, its "
            "/metrics included. Any further option goes to Flower unchanged."
        ),
    )
    flower.add_argument("--port", type=int, default=None, help="default 5555 or FLOWER_PORT")
    flower.add_argument(
        "--address", default="127.0.0.1", help="address to listen on (default 127.0.0.1)"
    )
    flower.set_defaults(handler=_flower)

    session = sub.add_parser("session", help="sessions", description="Create sessions.")
    session_sub = session.add_subparsers(title="session commands", metavar="COMMAND")
    create = session_sub.add_parser(
        "create", help="create a session", description="Create a session."
    )
    create.add_argument("session_id", help="the new session's id")
    create.add_argument(
        "--provider", default=None, help="LLM provider name (default LASH_PROVIDER)"
    )
    create.add_argument("--model", default=None, help="model id (default LASH_MODEL)")
    create.add_argument("--system-prompt", default=None, help="the session's system prompt")
    create.add_argument(
        "--max-turns", type=int, default=None, help="most model calls in one turn (1-1000)"
    )
    create.add_argument(
        "--tool",
        action="append",
        default=None,
        dest="tools",
        metavar="NAME",
        help="a registered tool the session may use; repeatable (default: every tool)",
    )
    create.set_defaults(handler=_session_create)

    enqueue = sub.add_parser(
        "enqueue",
        help="submit user input to a session",
        description="Submit user input. TEXT '-' reads the text from standard input.",
    )
    enqueue.add_argument("session_id", help="the session")
    enqueue.add_argument(
        "text", nargs="?", default=None, help="the input text; '-' reads standard input"
    )
    enqueue.add_argument(
        "--file", default=None, metavar="PATH", help="read the input text from this file (UTF-8)"
    )
    enqueue.add_argument(
        "--source-key",
        default=None,
        help="idempotency key: the same key and text give back the same input",
    )
    enqueue.add_argument(
        "--branch-from", default=None, metavar="NODE_ID", help="run the turn from this node"
    )
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
    enqueue.add_argument(
        "--timeout", type=float, default=120.0, help="seconds --wait waits (default 120)"
    )
    enqueue.set_defaults(handler=_enqueue)

    show = sub.add_parser("show", help="show a session", description="Show a session.")
    show.add_argument("session_id", help="the session")
    show.add_argument("--tree", action="store_true", help="the session and its subagents")
    show.set_defaults(handler=_show)

    sessions = sub.add_parser(
        "sessions", help="list sessions (in id order)", description="List sessions in id order."
    )
    sessions.add_argument(
        "--state",
        choices=["running", "waiting", "idle"],
        default=None,
        help="running: a turn is active; waiting: inputs pending; idle: neither",
    )
    sessions.add_argument("--limit", type=int, default=100, help="at most this many (1-1000)")
    sessions.add_argument("--after", default=None, help="only sessions after this id (paging)")
    sessions.set_defaults(handler=_sessions)

    one_input = sub.add_parser(
        "input",
        help="show one input: its text, state and outcome",
        description="Show one input of a session (an unknown input is an error).",
    )
    one_input.add_argument("session_id", help="the session")
    one_input.add_argument("input_id", help="the input")
    one_input.set_defaults(handler=_input)

    cancel = sub.add_parser(
        "cancel",
        help="cancel a pending input or interrupt the turn",
        description="Cancel a pending input; exits 1 when the input does not exist.",
    )
    cancel.add_argument("session_id", help="the session")
    cancel.add_argument("input_id", nargs="?", help="the pending input to cancel")
    cancel.add_argument("--source-key", default=None, help="cancel the input of this key")
    cancel.add_argument(
        "--interrupt", action="store_true", help="also stop the session's running turn"
    )
    cancel.set_defaults(handler=_cancel)

    delete = sub.add_parser(
        "delete",
        help="delete a session and all its rows",
        description="Delete a session and all its rows.",
    )
    delete.add_argument("session_id", help="the session")
    delete.set_defaults(handler=_delete)

    sub.add_parser(
        "status", help="fleet status from the database", description=_status.__doc__
    ).set_defaults(handler=_status)

    watch = sub.add_parser(
        "watch",
        help="follow a session live: the answer as it streams, tool calls, outcomes",
        description="--json prints one event per line, each with its cursor.",
    )
    watch.add_argument("session_id", help="the session")
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
    serve.add_argument("--host", default="127.0.0.1", help="address to listen on")
    serve.add_argument("--port", type=int, default=8080, help="port (default 8080)")
    serve.add_argument("--log-level", default="info", help="uvicorn log level (default info)")
    serve.set_defaults(handler=_serve)

    maintenance = sub.add_parser(
        "maintenance",
        help="run one maintenance job now",
        description="Run one maintenance job in this process and print its report.",
    )
    maintenance.add_argument(
        "job",
        choices=["sweep", "tombstone_orphans", "vacuum", "reclaim_attachments", "prune_processes"],
        help="the job",
    )
    maintenance.set_defaults(handler=_maintenance)

    schema = sub.add_parser(
        "schema",
        help="print the JSON Schema of ingress task payloads",
        description=(
            "The JSON Schema of each lash.ingress.* task's payload (all of them, by task "
            "name, or one). Senders must publish to the lash.ingress queue; see "
            "docs/ingress.md."
        ),
    )
    schema.add_argument(
        "task", nargs="?", default=None, help="one task, e.g. lash.ingress.enqueue_turn"
    )
    schema.set_defaults(handler=_schema)

    demo = sub.add_parser(
        "demo",
        help="run the embedded demo: a worker and a few turns",
        description=(
            "No servers, no keys: a real worker on the embedded default answers a few turns "
            "with the scripted LLM provider, which echoes its input ('echo: ...')."
        ),
    )
    demo.add_argument("--turns", type=int, default=3, help="turns to run (default 3)")
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


def _celery_command(sub: Any, name: str, *, help: str, description: str) -> Any:
    """A command over a Celery program: options it does not define pass through to Celery.
    No abbreviations, so that a Celery option is never taken for a prefix of one of ours."""
    command = sub.add_parser(name, help=help, description=description, allow_abbrev=False)
    command.set_defaults(celery_passthrough=True)
    return command


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
    arguments = ["worker", "-P", args.pool, "-c", str(args.concurrency), "-l", args.loglevel]
    if args.queues:
        arguments += ["-Q", args.queues]
    if args.name:
        arguments += ["-n", args.name]
    _exec_celery([*arguments, *args.celery_args])


def _beat(args: argparse.Namespace) -> None:
    schedule = Path(args.schedule) if args.schedule else _settings().home / "beat-schedule"
    # Beat keeps its state in a shelve file and will not create the folder that holds it;
    # with PostgreSQL and Redis nothing else creates LASH_HOME.
    schedule.absolute().parent.mkdir(parents=True, exist_ok=True)
    _exec_celery(["beat", "-s", str(schedule), "-l", args.loglevel, *args.celery_args])


def _flower(args: argparse.Namespace) -> None:
    from lash_tasks.worker.flower_launch import flower_arguments

    arguments = flower_arguments(os.environ, args.address, args.port, args.celery_args)
    _settings()
    # Our launcher, not `celery flower`: it puts Flower's /metrics behind the same auth.
    os.execvp(
        sys.executable,
        [sys.executable, "-m", "lash_tasks.worker.flower_launch", *arguments],
    )


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
    text = _input_text(args.text, args.file)
    client = _client()
    attachments = [_put_file(client, args.session_id, path) for path in args.attach]
    # Taken before the input exists, so the stream shows its turn from the start.
    cursor = _event_tail(client, args.session_id) if args.wait else None
    input_id = client.enqueue_turn(
        args.session_id,
        text,
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


def _input_text(text: str | None, file: str | None) -> str:
    """The input text: the argument, standard input for '-', or a file (argv is too small for
    long inputs: a few hundred KB fail with "Argument list too long")."""
    if (text is None) == (file is None):
        raise ValidationError("text: give the text, '-' for standard input, or --file PATH")
    if file is not None:
        try:
            return Path(file).read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            reason = exc.strerror if isinstance(exc, OSError) else "not UTF-8 text"
            raise ValidationError(f"--file {file}: {reason or exc}") from None
    if text == "-":
        try:
            return sys.stdin.read()
        except UnicodeDecodeError:
            raise ValidationError("text: standard input is not UTF-8 text") from None
    assert text is not None
    return text


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
    client = _client()
    if args.tree:
        from lash_tasks.ingress.reads import session_tree

        client.store.sessions.record(args.session_id)  # an unknown session is an error
        tree = session_tree(client.store, args.session_id)
        return {"tree": tree} if args.json else "\n".join(tree)
    view = client.session_view(args.session_id)
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
    for process in view.processes:
        lines.append(
            f"  process {process.process_id}: {process.kind} {process.status} "
            f"({process.disposition})"
        )
    if view.children:
        lines.append(f"  child sessions: {', '.join(view.children)}")
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
    result = _client().cancel_input(
        args.session_id, args.input_id, source_key=args.source_key, interrupt=args.interrupt
    )
    return Exit(result, EXIT_NOT_FOUND) if result.outcome == "not_found" else result


def _delete(args: argparse.Namespace) -> Any:
    return _client().delete_session(args.session_id)


def _status(args: argparse.Namespace) -> Any:
    """Counts of sessions, pending inputs, active turns, queued work and processes, read
    from the database."""
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


def _schema(args: argparse.Namespace) -> dict[str, Any]:
    from lash_tasks.ingress.contract import payload_schema, payload_schemas

    return payload_schemas() if args.task is None else payload_schema(args.task)


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
