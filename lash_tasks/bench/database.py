"""What one step costs the database: transactions and statements, counted by SQLAlchemy."""

from __future__ import annotations

import uuid
from typing import Any

from lash_tasks.bench.inprocess import bench_core, new_session
from lash_tasks.bench.measure import counting_sql
from lash_tasks.runtime.step_driver import run_step
from lash_tasks.store.records import InputDraft

CALC_RULES = [
    {"match": "calc", "tool_calls": [{"name": "calculator", "arguments": {"expression": "6*7"}}]}
]


def database_cost(url: str, samples: int = 5) -> dict[str, Any]:
    """Transactions and statements per one-step turn (enqueue included) and per tool step.

    Counted around the in-process step, which is exactly the work the Celery task does; the
    figures are the last of `samples` runs, after the caches are warm.
    """
    with bench_core(url, CALC_RULES) as (core, store):
        engine = store.database.engine
        new_session(store, "dbcost-plain")
        new_session(store, "dbcost-tool")
        for _ in range(samples):
            with counting_sql(engine) as enqueue:
                store.inputs.enqueue(
                    InputDraft("dbcost-plain", uuid.uuid4().hex, {"text": "hello"})
                )
            with counting_sql(engine, keep_texts=True) as step:
                result = run_step(core, "dbcost-plain")
            assert result.status == "finished", result
        for _ in range(samples):
            store.inputs.enqueue(InputDraft("dbcost-tool", uuid.uuid4().hex, {"text": "calc"}))
            with counting_sql(engine, keep_texts=True) as tool_step:
                result = run_step(core, "dbcost-tool")
            assert result.status == "progressed", result
            with counting_sql(engine) as final_step:
                result = run_step(core, "dbcost-tool")
            assert result.status == "finished", result
    return {
        "enqueue_transactions": enqueue.transactions,
        "enqueue_statements": enqueue.statements,
        "step_transactions": step.transactions,
        "step_statements": step.statements,
        "turn_transactions": enqueue.transactions + step.transactions,
        "turn_statements": enqueue.statements + step.statements,
        "tool_step_transactions": tool_step.transactions,
        "tool_step_statements": tool_step.statements,
        "final_step_transactions": final_step.transactions,
        "final_step_statements": final_step.statements,
        "step_statement_texts": step.statement_texts,
        "tool_step_statement_texts": tool_step.statement_texts,
    }
