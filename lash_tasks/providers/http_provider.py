"""`HttpProvider`: what the HTTP-backed LLM providers share: client ownership, key hiding,
the retrying send."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import httpx

from lash_tasks.errors import ProviderError
from lash_tasks.providers.http_send import (
    RetryPolicy,
    new_http_client,
    redact,
    scrub_error,
    send_with_retry,
)


class HttpProvider:
    """Base for providers that POST JSON to one endpoint.

    The API key lives only in `_api_key` and request headers; `__repr__` hides it, and every
    error leaving `_post` has been scrubbed of it.
    """

    name = "http"

    def __init__(
        self,
        base_url: str,
        api_key: str | None,
        *,
        client: httpx.Client | None,
        retry: RetryPolicy,
        sleep: Callable[[float], None],
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self._api_key = api_key
        # A client we were handed belongs to the caller (it may be shared); only one we made
        # ourselves is ours to close.
        self._owns_client = client is None
        self._client = client if client is not None else new_http_client()
        self.retry = retry
        self._sleep = sleep

    @property
    def _secrets(self) -> tuple[str, ...]:
        return (self._api_key,) if self._api_key else ()

    def _headers(self) -> dict[str, str]:
        raise NotImplementedError

    def __repr__(self) -> str:
        key = "'***'" if self._api_key else "None"
        return f"{type(self).__name__}(base_url={self.base_url!r}, api_key={key})"

    def close(self) -> None:
        if self._owns_client:
            self._client.close()

    def _request(self, url: str, body: dict[str, Any]) -> httpx.Request:
        return self._client.build_request("POST", url, json=body, headers=self._headers())

    def _post(self, url: str, body: dict[str, Any]) -> httpx.Response:
        """POST with retries; the returned response is fully read."""
        return send_with_retry(
            self._client,
            self._request(url, body),
            provider=self.name,
            policy=self.retry,
            secrets=self._secrets,
            sleep=self._sleep,
        )

    @contextmanager
    def _post_stream(self, url: str, body: dict[str, Any]) -> Iterator[httpx.Response]:
        """POST with retries up to the response headers; the body is read by the caller.

        Retries stop once a 2xx status arrives: by then text may already have gone to the
        caller's callback, and replaying it would duplicate output. A stream that breaks later
        surfaces as a retryable error for the caller to handle.
        """
        response = send_with_retry(
            self._client,
            self._request(url, body),
            provider=self.name,
            policy=self.retry,
            secrets=self._secrets,
            stream=True,
            sleep=self._sleep,
        )
        try:
            yield response
        except httpx.TransportError as exc:
            raise ProviderError(
                redact(f"{self.name}: stream broke: {type(exc).__name__}: {exc}", self._secrets),
                retryable=True,
            ) from exc
        finally:
            response.close()

    def _scrubbed(self, error: ProviderError) -> ProviderError:
        return scrub_error(error, self._secrets)
