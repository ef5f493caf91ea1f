"""Bearer-token authentication for the gateway (the rule itself is in lash_tasks/http_token)."""

from __future__ import annotations

from collections.abc import Mapping

from fastapi import HTTPException, Request

from lash_tasks.http_token import TOKEN_VARIABLE, authorized, is_loopback, required_token

__all__ = ["TOKEN_VARIABLE", "BearerAuth", "gateway_token", "is_loopback"]


def gateway_token(env: Mapping[str, str], host: str) -> str | None:
    """The token every request must present; None (no auth) only when bound to loopback."""
    return required_token(env, host, "the gateway")


class BearerAuth:
    """A FastAPI dependency: 401 unless the request carries `Authorization: Bearer <token>`."""

    def __init__(self, token: str | None) -> None:
        self._token = None if token is None else token.encode()

    def __call__(self, request: Request) -> None:
        if not authorized(request.headers.get("authorization"), self._token):
            raise HTTPException(
                status_code=401,
                detail="missing or wrong bearer token",
                headers={"WWW-Authenticate": "Bearer"},
            )
