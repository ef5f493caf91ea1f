"""The one rule for every HTTP endpoint lash-tasks serves (the gateway, a worker's metrics):
a bearer token from LASH_HTTP_TOKEN, required on any address but loopback, compared in
constant time. No web framework here: workers import it too."""

from __future__ import annotations

import hmac
import ipaddress
from collections.abc import Mapping

from lash_tasks.errors import InvalidEnvironment

TOKEN_VARIABLE = "LASH_HTTP_TOKEN"


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False  # a host name: it may resolve to anything


def required_token(env: Mapping[str, str], host: str, what: str) -> str | None:
    """The token every request must present; None (no auth) only when bound to loopback.

    Anything but loopback without a token would hand the endpoint to the network, so
    starting like that is refused rather than warned about."""
    token = env.get(TOKEN_VARIABLE) or None
    if token is None and not is_loopback(host):
        raise InvalidEnvironment(
            f"{TOKEN_VARIABLE} is not set: {what} serves only loopback without a token; "
            f"set {TOKEN_VARIABLE} to serve on {host}",
            variable=TOKEN_VARIABLE,
        )
    return token


def authorized(header: str | None, token: bytes | None) -> bool:
    """Whether an `Authorization` header carries the bearer token (always, without one)."""
    if token is None:
        return True
    scheme, _, presented = (header or "").partition(" ")
    # compare_digest: the time taken must not tell how much of a guess was right.
    return scheme.lower() == "bearer" and hmac.compare_digest(presented.strip().encode(), token)
