"""A step's interrupt, and HTTP connections it can cut.

An `Interrupt` is fired by the thread that watches a running step (on a cancel request, or
when the step's lease is lost) and seen by the thread doing the work. Waits wait on it, and
a socket read or write that blocks while it is bound to the thread registers an abort that
shuts the socket down: an LLM that has not sent a byte for minutes is cut at once, and its
server sees the connection close.

httpx runs a synchronous request in the caller's thread, so the interrupt of the call in
progress travels in a context variable from the provider down to the socket.
"""

from __future__ import annotations

import contextlib
import contextvars
import copy
import logging
import socket
import threading
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from typing import Any

import httpcore
import httpx

from lash_tasks.errors import ConfigurationError, LashError

log = logging.getLogger(__name__)

_bound: contextvars.ContextVar[Interrupt | None] = contextvars.ContextVar(
    "lash_interrupt", default=None
)


class Interrupt:
    """One-shot and thread-safe. `fire(error)` once; every later `check()` raises a copy."""

    def __init__(self) -> None:
        self._fired = threading.Event()
        self._lock = threading.Lock()
        self._error: LashError | None = None
        self._aborts: dict[int, Callable[[], None]] = {}
        self._next_key = 0

    @property
    def fired(self) -> bool:
        return self._fired.is_set()

    @property
    def error(self) -> LashError | None:
        """What the interrupted work raises: `Interrupted` for a cancel, `LeaseLost` ..."""
        return self._error

    def fire(self, error: LashError) -> None:
        """Interrupt the work with `error`, and cut whatever I/O it is blocked in."""
        with self._lock:
            if self._fired.is_set():
                return
            self._error = error
            self._fired.set()
            aborts = list(self._aborts.values())
        for abort in aborts:
            try:
                abort()
            except Exception as exc:  # one failed abort must not spare the others
                log.warning("interrupt abort failed: %s", exc)

    def wait(self, seconds: float) -> bool:
        """Sleep up to `seconds`; True (early) if the interrupt fired."""
        return self._fired.wait(seconds)

    def check(self) -> None:
        """Raise the interrupt's error if it has fired."""
        if self._error is not None:
            raise self.raised()

    def raised(self) -> LashError:
        """A fresh copy of the error to raise: threads raising one instance would share
        its traceback."""
        assert self._error is not None
        return copy.copy(self._error)

    @contextmanager
    def aborting(self, abort: Callable[[], None]) -> Iterator[None]:
        """Run `abort` (from the firing thread) if the interrupt fires during the block."""
        with self._lock:
            self.check()
            key = self._next_key
            self._next_key += 1
            self._aborts[key] = abort
        try:
            yield
        finally:
            with self._lock:
                self._aborts.pop(key, None)


@contextmanager
def interruptible(interrupt: Interrupt | None) -> Iterator[None]:
    """Bind `interrupt` to the HTTP calls made in this block. A transport error caused by
    the interrupt cutting a socket surfaces as the interrupt's own error."""
    if interrupt is None:
        yield
        return
    interrupt.check()
    token = _bound.set(interrupt)
    try:
        yield
    except (httpx.HTTPError, LashError) as exc:
        error = interrupt.error
        if error is not None and not isinstance(exc, type(error)):
            raise interrupt.raised() from exc
        raise
    finally:
        _bound.reset(token)


def check_bound() -> None:
    """Raise if the interrupt bound to this context has fired (between retries)."""
    interrupt = _bound.get()
    if interrupt is not None:
        interrupt.check()


def pause(seconds: float, sleep: Callable[[float], None]) -> None:
    """`sleep(seconds)`, or, with an interrupt bound, wait on it and raise if it fires."""
    interrupt = _bound.get()
    if interrupt is None:
        sleep(seconds)
        return
    interrupt.wait(seconds)
    interrupt.check()


def abortable_transport() -> httpx.HTTPTransport:
    """httpx's own transport, over sockets an interrupt can shut down mid-read."""
    transport = httpx.HTTPTransport()
    # httpx offers no parameter for httpcore's network backend, so the pool it built is
    # given ours. Checked here, at start-up, so an httpx that moved it fails loudly.
    pool = getattr(transport, "_pool", None)
    backend = getattr(pool, "_network_backend", None)
    if not isinstance(backend, httpcore.NetworkBackend):
        raise ConfigurationError(
            "this httpx/httpcore version hides its network backend; "
            "interrupts could not cut LLM calls"
        )
    pool._network_backend = _AbortableBackend(backend)  # type: ignore[union-attr]
    return transport


class _AbortableBackend(httpcore.NetworkBackend):
    def __init__(self, inner: httpcore.NetworkBackend) -> None:
        self._inner = inner

    def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,
        local_address: str | None = None,
        socket_options: Iterable[Any] | None = None,
    ) -> httpcore.NetworkStream:
        check_bound()
        stream = self._inner.connect_tcp(host, port, timeout, local_address, socket_options)
        return _AbortableStream(stream)

    def connect_unix_socket(
        self, path: str, timeout: float | None = None, socket_options: Iterable[Any] | None = None
    ) -> httpcore.NetworkStream:
        check_bound()
        return _AbortableStream(self._inner.connect_unix_socket(path, timeout, socket_options))

    def sleep(self, seconds: float) -> None:
        self._inner.sleep(seconds)


class _AbortableStream(httpcore.NetworkStream):
    def __init__(self, inner: httpcore.NetworkStream) -> None:
        self._inner = inner
        # The interrupt of the call reading or writing now. A pooled connection serves one
        # call after another: an abort fired a moment late must not cut the next call.
        self._user: Interrupt | None = None

    def read(self, max_bytes: int, timeout: float | None = None) -> bytes:
        with self._abortable():
            return self._inner.read(max_bytes, timeout)

    def write(self, buffer: bytes, timeout: float | None = None) -> None:
        with self._abortable():
            self._inner.write(buffer, timeout)

    def close(self) -> None:
        self._inner.close()

    def start_tls(
        self,
        ssl_context: Any,
        server_hostname: str | None = None,
        timeout: float | None = None,
    ) -> httpcore.NetworkStream:
        return _AbortableStream(self._inner.start_tls(ssl_context, server_hostname, timeout))

    def get_extra_info(self, info: str) -> Any:
        return self._inner.get_extra_info(info)

    @contextmanager
    def _abortable(self) -> Iterator[None]:
        interrupt = _bound.get()
        if interrupt is None:
            yield
            return
        self._user = interrupt
        try:
            with interrupt.aborting(lambda: self._shut_down(interrupt)):
                yield
        finally:
            self._user = None

    def _shut_down(self, interrupt: Interrupt) -> None:
        if self._user is not interrupt:
            return
        sock = self._inner.get_extra_info("socket")
        if sock is None:
            return
        # shutdown(), unlike close(), wakes a thread blocked in recv on Linux. The plain
        # socket method: SSLSocket.shutdown would drop TLS state another thread is using.
        with contextlib.suppress(OSError):
            socket.socket.shutdown(sock, socket.SHUT_RDWR)
