"""HTTP-level limits for ``kerasapps serve``: header size and count, header time, open connections.

The app bounds what it reads and runs (body size, request time, model calls in flight);
this module bounds what uvicorn accepts before the app sees a request. Per connection:

- a request's line and headers over ``max_header_bytes`` -> 431, connection closed;
- more than ``max_headers`` header fields -> 431, connection closed;
- a request's line and headers not complete within ``header_timeout_s`` of the
  connection's start or of the end of the previous response -> 408 if part of them
  arrived, else the connection is just closed (nothing was asked, so nothing is
  answered: a client that sends a request just then sees a closed keep-alive
  connection, which it retries, rather than a 408 it did not cause). The timer is off
  while a request is being processed or its body read (the app bounds those with
  ``request_timeout_s``). An idle connection thus lives at most
  ``min(keep_alive_timeout_s, header_timeout_s)`` after a response, and at most
  ``header_timeout_s`` from its start (uvicorn's own keep-alive timer starts only
  after a first response, so alone it never closes a connection that sends nothing);
- idle keep-alive connections closed after ``keep_alive_timeout_s`` (uvicorn's
  ``timeout_keep_alive``);
- more than ``max_connections`` open connections -> the new one gets 503 and is
  closed at once; the others are not touched.

Errors are ``{"error": "..."}``, written as the app writes them
(:meth:`kerasapps.serving.errors.ServingError.body`), and so are h11's 400s for malformed
requests (uvicorn answers those in plain text). After an error response the connection
is half-closed and what the client still sends is dropped for up to ``LINGER_S``
before closing: closing a socket with unread input sends a TCP reset, which can make
the client lose the response.

What uvicorn's public configuration can hold it holds: ``h11_max_incomplete_event_size``
bounds what h11 buffers of an incomplete head, ``timeout_keep_alive`` the idle keep-alive
connections, ``ws="none"`` keeps upgrades out (:func:`uvicorn_config_kwargs`). The rest
is a subclass of uvicorn's h11 protocol class, which uvicorn does not export: it comes
from :func:`kerasapps.core.compat.uvicorn_h11_protocol`, which names the hooks overridden
here (``connection_made``, ``connection_lost``, ``data_received``, ``handle_events``,
``on_response_complete``, ``send_400_response``) and the attributes read, and
``tests/core/test_compat.py`` checks them against the installed uvicorn. The httptools
protocol (uvicorn's default when httptools is installed) has no header limits at all: it
buffers a header field of any length.

Example::

    import uvicorn
    from kerasapps.serving.http_limits import uvicorn_config_kwargs
    uvicorn.run(app, host="127.0.0.1", port=8501, **uvicorn_config_kwargs(options))
"""

from __future__ import annotations

import functools
import http

import h11

from kerasapps.core import compat
from kerasapps.serving.errors import ServingError
from kerasapps.serving.options import ServingOptions

__all__ = ["LimitedH11Protocol", "uvicorn_config_kwargs", "LINGER_S"]

LINGER_S = 1.0  # after an error response, how long a connection drops input before closing


def uvicorn_config_kwargs(options: ServingOptions) -> dict:
    """Keyword arguments for ``uvicorn.run`` / ``uvicorn.Config`` enforcing ``options``' HTTP limits.

    ``limit_concurrency`` stays unset: uvicorn checks it only when a request's head has
    arrived, so it never refuses connections that stay silent (the cheap way to exhaust
    a server) and instead refuses whichever connection asks while the count is at the
    bound, an established keep-alive one included; it counts the asking connection
    itself (``N`` lets ``N - 1`` in), answers in plain text, and also counts request
    tasks, which the app already bounds with ``max_in_flight`` / ``max_queued`` (503
    with a JSON error). ``max_connections`` is counted instead when a connection is
    accepted, and only the new connection is refused (see :class:`LimitedH11Protocol`).

    ``ws="none"``: the API has no WebSockets, and an upgraded connection would leave
    these limits behind.
    """
    return {
        "http": functools.partial(LimitedH11Protocol, max_headers=options.max_headers,
                                  header_timeout_s=options.header_timeout_s,
                                  max_connections=options.max_connections),
        "ws": "none",
        "h11_max_incomplete_event_size": options.max_header_bytes,
        "timeout_keep_alive": options.keep_alive_timeout_s,
        "limit_concurrency": None,
    }


def _phrase(status: int) -> bytes:
    """The reason phrase of ``status`` (``b"Request Header Fields Too Large"``), as uvicorn writes it."""
    return http.HTTPStatus(status).phrase.encode()


def _head_size(request: h11.Request) -> int:
    """Bytes of ``request``'s line and headers as sent, less any whitespace around header values."""
    line = len(request.method) + len(request.target) + len(b"HTTP/") + len(request.http_version) + 4
    return line + sum(len(name) + len(value) + 4 for name, value in request.headers) + 2


class _LimitedConnection(h11.Connection):
    """An h11 server connection refusing heads over ``max_header_bytes`` or with more than ``max_headers`` fields.

    h11 itself raises (status hint 431) only while a head is incomplete and its buffer
    is over the limit; a complete head that arrives in one read is measured here. The
    refusal is kept in :attr:`error` for the protocol to answer.
    """

    def __init__(self, max_header_bytes: int, max_headers: int):
        super().__init__(h11.SERVER, max_incomplete_event_size=max_header_bytes)
        self.max_header_bytes = max_header_bytes
        self.max_headers = max_headers
        self.error: h11.RemoteProtocolError | None = None

    def next_event(self):
        too_large = (f"Request line and headers exceed the limit of {self.max_header_bytes} bytes "
                     "(max_header_bytes)")
        try:
            event = super().next_event()
        except h11.RemoteProtocolError as exc:
            self.error = h11.RemoteProtocolError(too_large, 431) if exc.error_status_hint == 431 else exc
            raise self.error from None
        if isinstance(event, h11.Request) and len(event.headers) > self.max_headers:
            self.error = h11.RemoteProtocolError(
                f"Request has more than {self.max_headers} header fields (max_headers)", 431)
            raise self.error
        if isinstance(event, h11.Request) and _head_size(event) > self.max_header_bytes:
            self.error = h11.RemoteProtocolError(too_large, 431)
            raise self.error
        return event


class _CoalescingTransport:
    """A transport whose writes in one event-loop step go out as one ``send``.

    uvicorn writes a response's status line and headers, its body and its end separately; on loopback
    each write is a system call that also runs the receiver's TCP processing, with the GIL held (uvloop
    writes at once). Joined, a small response costs one. Everything else is the wrapped transport's.
    """

    def __init__(self, transport, loop):
        self._transport, self._loop = transport, loop
        self._pending: list[bytes] = []

    def write(self, data: bytes) -> None:
        if not data:
            return
        if not self._pending:
            self._loop.call_soon(self.flush)
        self._pending.append(bytes(data))

    def flush(self) -> None:
        if self._pending:
            data = b"".join(self._pending)
            self._pending.clear()
            if not self._transport.is_closing():
                self._transport.write(data)

    def write_eof(self) -> None:
        self.flush()
        self._transport.write_eof()

    def close(self) -> None:
        self.flush()
        self._transport.close()

    def __getattr__(self, name):
        return getattr(self._transport, name)


class LimitedH11Protocol(compat.uvicorn_h11_protocol()):
    """uvicorn's h11 protocol plus a header count limit, a header timeout and a bound on open connections.

    The head size limit is uvicorn's ``h11_max_incomplete_event_size``. Connections are
    counted in uvicorn's shared set of open connections; one accepted past
    ``max_connections`` is answered 503 straight away (before its request is read, so
    a flood of them costs no parsing) and leaves the set, so it does not count itself.
    """

    def __init__(self, config, server_state, app_state, _loop=None, *, max_headers: int = ServingOptions.max_headers,
                 header_timeout_s: float = ServingOptions.header_timeout_s,
                 max_connections: int = ServingOptions.max_connections):
        super().__init__(config, server_state, app_state, _loop)
        max_header_bytes = config.h11_max_incomplete_event_size or ServingOptions.max_header_bytes
        self.conn = _LimitedConnection(max_header_bytes, max_headers)
        self.header_timeout_s = header_timeout_s
        self.max_connections = max_connections
        self._header_timer = None  # runs while a request's head is awaited
        self._linger_timer = None
        self._refused = False  # an error response was sent; input is dropped until the connection closes

    # -- connection lifecycle ------------------------------------------------------
    def connection_made(self, transport) -> None:
        super().connection_made(transport)
        self.transport = _CoalescingTransport(transport, self.loop)
        if len(self.connections) > self.max_connections:
            self.connections.discard(self)
            self._refuse(503, f"Too many open connections (max_connections={self.max_connections}); retry later")
        else:
            self._start_header_timer()

    def connection_lost(self, exc) -> None:
        self._cancel_header_timer()
        if self._linger_timer is not None:
            self._linger_timer.cancel()
        super().connection_lost(exc)

    def data_received(self, data: bytes) -> None:
        if not self._refused:
            super().data_received(data)

    def handle_events(self) -> None:
        cycle = self.cycle
        super().handle_events()
        if self.cycle is not cycle:  # a request's head arrived: the app's timeouts take over
            self._cancel_header_timer()

    def on_response_complete(self) -> None:
        if not self.transport.is_closing():
            self._start_header_timer()  # first, so a pipelined request parsed just below stops it
        super().on_response_complete()

    def send_400_response(self, msg: str) -> None:
        """Answer h11's refusal of a request (uvicorn calls this for every ``RemoteProtocolError``)."""
        error = self.conn.error
        status = 400 if error is None else error.error_status_hint
        self._refuse(status, str(error) if status == 431 else msg)

    # -- header timeout ------------------------------------------------------------
    def _start_header_timer(self) -> None:
        self._cancel_header_timer()
        self._header_timer = self.loop.call_later(self.header_timeout_s, self._header_timeout)

    def _cancel_header_timer(self) -> None:
        if self._header_timer is not None:
            self._header_timer.cancel()
            self._header_timer = None

    def _header_timeout(self) -> None:
        self._header_timer = None
        if self.transport.is_closing():
            return
        if self.conn.their_state is h11.IDLE and self.conn.trailing_data[0]:  # part of a head arrived
            self._refuse(408, f"Request line and headers not received within {self.header_timeout_s:g} s "
                              "(header_timeout_s)")
        else:  # idle, or still sending a body the app did not read: nothing to answer
            self.transport.close()

    # -- refusing ------------------------------------------------------------------
    def _refuse(self, status: int, message: str) -> None:
        """Answer ``status`` with a JSON error when a response can still be sent, then close the connection."""
        self._refused = True
        self._cancel_header_timer()
        compat.uvicorn_stop_keep_alive(self)
        self.logger.warning("%s%d %s", "%s:%d - " % self.client if self.client else "", status, message)
        if self.cycle is not None and not self.cycle.response_complete:
            self.cycle.disconnected = True  # the app sees a disconnect and its response is dropped
            self.cycle.message_event.set()
        if self.conn.our_state in (h11.IDLE, h11.SEND_RESPONSE) and not self.transport.is_closing():
            body = ServingError(status, message).body()
            headers = [*self.server_state.default_headers, (b"content-type", b"application/json"),
                       (b"content-length", str(len(body)).encode()), (b"connection", b"close")]
            self.transport.write(
                self.conn.send(h11.Response(status_code=status, headers=headers, reason=_phrase(status)))
                + self.conn.send(h11.Data(data=body)) + self.conn.send(h11.EndOfMessage()))
        if self.transport.can_write_eof() and not self.transport.is_closing():
            self.transport.write_eof()  # the client reads the response, then EOF; eof_received closes
            self._linger_timer = self.loop.call_later(LINGER_S, self.transport.close)
        else:
            self.transport.close()
