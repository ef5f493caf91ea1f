"""Every failure of the gateway as an HTTP status and one JSON body: `{"error": {...}}`.

The body is `LashError.to_dict()`, the same shape the CLI prints with `--json` and the
ingress tasks return, so a client handles errors one way whichever door it came in by.
"""

from __future__ import annotations

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from sqlalchemy.exc import SQLAlchemyError
from starlette.exceptions import HTTPException

from lash_tasks.errors import (
    ConflictError,
    EventsUnavailable,
    LashError,
    NotFound,
    StoreUnavailable,
    ValidationError,
)
from lash_tasks.store.database import explain_database_error


def status_of(exc: LashError) -> int:
    if isinstance(exc, ValidationError):
        return 422
    if isinstance(exc, NotFound):
        return 404
    if isinstance(exc, ConflictError):
        return 409
    if isinstance(exc, (StoreUnavailable, EventsUnavailable)):
        return 503
    return 500


def error_response(exc: LashError, headers: dict[str, str] | None = None) -> JSONResponse:
    return JSONResponse({"error": exc.to_dict()}, status_code=status_of(exc), headers=headers)


def install_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(LashError)
    async def lash_error(_: Request, exc: LashError) -> JSONResponse:
        return error_response(exc)

    @app.exception_handler(RequestValidationError)
    async def bad_parameter(_: Request, exc: RequestValidationError) -> JSONResponse:
        # Query and header parameters that FastAPI checks: named like body fields are.
        problems = "; ".join(
            f"{'.'.join(str(p) for p in e['loc'])}: {e['msg']}" for e in exc.errors()
        )
        return error_response(ValidationError(f"invalid request: {problems}"))

    @app.exception_handler(HTTPException)
    async def http_error(_: Request, exc: HTTPException) -> JSONResponse:
        code = "unauthorized" if exc.status_code == 401 else "http_error"
        body = {"code": code, "message": str(exc.detail), "retryable": False, "details": {}}
        return JSONResponse({"error": body}, status_code=exc.status_code, headers=exc.headers)

    @app.exception_handler(SQLAlchemyError)
    async def database_error(_: Request, exc: SQLAlchemyError) -> JSONResponse:
        explained = explain_database_error(exc)
        if isinstance(explained, LashError):
            return error_response(explained)
        raise exc
