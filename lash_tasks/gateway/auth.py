"""Bearer-token authentication for the gateway, and the rule on when a token is required."""

from __future__ import annotations

import hmac
import ipaddress
from collections.abc import Mapping

from fastapi import HTTPException, Request

from lash_tasks.errors import InvalidEnvironment

TOKEN_VARIABLE = "LASH_HTTP_TOKEN"


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False  # a host name: it may resolve to anything


def gateway_token(env: Mapping[str, str], host: str) -> str | None:
    """The token every request must present; None (no auth) only when bound to loopback.

    Anything but loopback without a token would hand every session to the network, so
    starting like that is refused rather than warned about."""
    token = env.get(TOKEN_VARIABLE) or None
    if token is None and not is_loopback(host):
        raise InvalidEnvironment(
            f"{TOKEN_VARIABLE} is not set: the gateway serves only loopback without a token; "
            f"set {TOKEN_VARIABLE} to serve on {host}",
            variable=TOKEN_VARIABLE,
        )
    return token


class BearerAuth:
    """A FastAPI dependency: 401 unless the request carries `Authorization: Bearer <token>`."""

    def __init__(self, token: str | None) -> None:
        self._token = None if token is None else token.encode()

    def __call__(self, request: Request) -> None:
        if self._token is None:
            return
        scheme, _, presented = request.headers.get("authorization", "").partition(" ")
        # compare_digest: the time taken must not tell how much of a guess was right.
        if scheme.lower() != "bearer" or not hmac.compare_digest(
            presented.strip().encode(), self._token
        ):
            raise HTTPException(
                status_code=401,
                detail="missing or wrong bearer token",
                headers={"WWW-Authenticate": "Bearer"},
            )
