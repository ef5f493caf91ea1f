"""The retrying HTTP send shared by the HTTP LLM providers: backoff, Retry-After, redaction."""

from __future__ import annotations

import email.utils
import random
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import httpx

from lash_tasks.errors import ProviderError
from lash_tasks.providers.interrupt import abortable_transport, check_bound, pause

BODY_EXCERPT_LIMIT = 500
REDACTED = "[REDACTED]"

# A model can think for a long time before the first byte, so the read timeout is generous;
# failing to connect at all is worth noticing quickly.
DEFAULT_TIMEOUT = httpx.Timeout(connect=10.0, read=120.0, write=30.0, pool=10.0)


@dataclass(frozen=True)
class RetryPolicy:
    """How often, and how patiently, one provider call is retried in-process.

    `jitter` is the fraction by which a backoff delay may stray either way, so that workers
    that failed together do not all come back together.
    """

    max_attempts: int = 4
    base_delay: float = 0.5
    max_delay: float = 20.0
    jitter: float = 0.25

    def __post_init__(self) -> None:
        if self.max_attempts < 1:
            raise ValueError("max_attempts must be at least 1")
        if self.base_delay < 0 or self.max_delay < 0:
            raise ValueError("delays must not be negative")
        if not 0.0 <= self.jitter <= 1.0:
            raise ValueError("jitter must be within [0, 1]")

    def retry_delay(self, attempt: int, retry_after: float | None, rand: float) -> float:
        """Seconds to wait after failed attempt number `attempt` (1-based).

        `rand` is a uniform sample from [0, 1), passed in so the function stays pure. A
        server-supplied Retry-After wins outright: the server knows when it will have capacity,
        and jittering below it would just earn another 429.
        """
        if retry_after is not None:
            return max(0.0, retry_after)
        backoff = min(self.max_delay, self.base_delay * 2.0 ** max(0, attempt - 1))
        spread = 1.0 + self.jitter * (2.0 * rand - 1.0)
        return min(self.max_delay, max(0.0, backoff * spread))


def is_retryable_status(status: int) -> bool:
    # 408 and 429 are the server asking us to come back; 5xx (including Anthropic's 529
    # "overloaded") are its own trouble. Every other 4xx will fail the same way again.
    return status in (408, 429) or status >= 500


def parse_retry_after(headers: httpx.Headers, now: float) -> float | None:
    """Seconds the server asked us to wait, from `retry-after-ms` or `Retry-After`."""
    millis = headers.get("retry-after-ms")
    if millis is not None:
        try:
            return max(0.0, float(millis) / 1000.0)
        except ValueError:
            pass
    value = headers.get("retry-after")
    if value is None:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, when.timestamp() - now)


def redact(text: str, secrets: Sequence[str]) -> str:
    for secret in secrets:
        if secret:
            text = text.replace(secret, REDACTED)
    return text


def body_excerpt(body: bytes, secrets: Sequence[str]) -> str:
    # Redact before truncating: a cut made first could leave a fragment of a key that no
    # longer matches the whole secret.
    text = redact(body.decode("utf-8", errors="replace"), secrets)
    return text[:BODY_EXCERPT_LIMIT]


def new_http_client() -> httpx.Client:
    """A client whose sockets an `Interrupt` bound with `interruptible` can cut."""
    return httpx.Client(timeout=DEFAULT_TIMEOUT, transport=abortable_transport())


def send_with_retry(
    client: httpx.Client,
    request: httpx.Request,
    *,
    provider: str,
    policy: RetryPolicy,
    secrets: Sequence[str] = (),
    stream: bool = False,
    sleep: Callable[[float], None] = time.sleep,
    rand: Callable[[], float] = random.random,
    clock: Callable[[], float] = time.time,
) -> httpx.Response:
    """Send `request`, retrying 408/429/5xx and transport failures, and return a 2xx response.

    With `stream=True` the successful response body is left unread and the caller must close
    the response. Failures raise `ProviderError`; everything user-visible in it passes through
    `redact(…, secrets)`, so the API key cannot leak even if a server echoes it back.

    A Retry-After longer than `policy.max_delay` is not waited out here: blocking a worker for
    minutes is worse than handing the call back, so the error is raised at once as retryable
    with `retry_after` set for the caller's own scheduling.
    """
    attempt = 0
    while True:
        attempt += 1
        check_bound()
        try:
            response = client.send(request, stream=stream)
        except (httpx.UnsupportedProtocol, httpx.InvalidURL) as exc:
            raise ProviderError(
                redact(f"{provider}: invalid endpoint: {exc}", secrets), retryable=False
            ) from exc
        except httpx.TransportError as exc:
            kind = "timed out" if isinstance(exc, httpx.TimeoutException) else "transport error"
            error = ProviderError(
                redact(f"{provider}: request {kind}: {type(exc).__name__}: {exc}", secrets),
                retryable=True,
                attempts=attempt,
            )
            if attempt >= policy.max_attempts:
                raise error from exc
            pause(policy.retry_delay(attempt, None, rand()), sleep)
            continue

        if response.is_success:
            return response

        try:
            raw = response.read()
        except httpx.HTTPError:
            raw = b""
        finally:
            response.close()
        status = response.status_code
        retryable = is_retryable_status(status)
        retry_after = parse_retry_after(response.headers, clock()) if retryable else None
        excerpt = body_excerpt(raw, secrets)
        error = ProviderError(
            f"{provider}: HTTP {status}: {excerpt[:200]}",
            status=status,
            body_excerpt=excerpt,
            retryable=retryable,
            retry_after=retry_after,
            attempts=attempt,
        )
        if not retryable or attempt >= policy.max_attempts:
            raise error
        if retry_after is not None and retry_after > policy.max_delay:
            raise error
        pause(policy.retry_delay(attempt, retry_after, rand()), sleep)


def scrub_error(error: ProviderError, secrets: Sequence[str]) -> ProviderError:
    """A copy of `error` with every secret redacted from its user-visible text."""
    details = {k: v for k, v in error.details.items() if k not in ("status", "body_excerpt")}
    return ProviderError(
        redact(error.message, secrets),
        status=error.status,
        body_excerpt=redact(error.body_excerpt, secrets),
        retryable=error.retryable,
        retry_after=error.retry_after,
        **details,
    )
