"""Slow clients for the front-door benchmark: connections that drip their headers or their body one byte at a time.

One thread drives every connection (non-blocking sockets, one byte per connection per interval), so
hundreds of slow clients cost the load generator almost nothing. A connection the server closes (or
answers, e.g. 408) is recorded, and replaced by a new one while ``reconnect`` is on, so the pressure
stays constant for as long as the drip runs. ``silence()`` stops sending (and replacing) without
closing, so what the server does with a client that goes quiet can be observed.
"""

from __future__ import annotations

import contextlib
import select
import socket
import threading
import time
from dataclasses import dataclass, field

HEADER_START = b"POST /predict HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\nX-Slow: "
BODY_LENGTH = 100_000


def body_start(length: int = BODY_LENGTH) -> bytes:
    """Complete headers of a POST whose body then never quite arrives."""
    return (
        b"POST /predict HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
        + f"Content-Length: {length}\r\n\r\n".encode()
        + b'{"features": ['
    )


@dataclass
class Ended:
    """How the server ended one slow connection."""

    kind: str  # "header" or "body"
    opened: float
    ended: float
    how: str  # "eof", "reset", or "answered <status line>"
    silent_since: float | None = None


@dataclass
class _Conn:
    kind: str
    sock: socket.socket
    opened: float


@dataclass
class Drippers:
    """``headers`` + ``bodies`` connections to 127.0.0.1:``port``, one byte each every ``interval`` seconds."""

    port: int
    headers: int = 64
    bodies: int = 64
    interval: float = 0.5
    host: str = "127.0.0.1"
    ended: list[Ended] = field(default_factory=list)
    opened: int = 0
    connect_errors: int = 0
    _conns: list[_Conn] = field(default_factory=list)
    _stop: threading.Event = field(default_factory=threading.Event)
    _silent: threading.Event = field(default_factory=threading.Event)
    _silent_since: float | None = None
    _lock: threading.Lock = field(default_factory=threading.Lock)
    _thread: threading.Thread | None = None
    reconnect: bool = True

    def start(self) -> Drippers:
        """Open every connection, send its start, and drip from a thread."""
        for kind, count in (("header", self.headers), ("body", self.bodies)):
            for _ in range(count):
                self._open(kind)
        self._thread = threading.Thread(target=self._loop, name="drippers", daemon=True)
        self._thread.start()
        return self

    def _open(self, kind: str) -> None:
        try:
            sock = socket.create_connection((self.host, self.port), timeout=5)
            sock.sendall(HEADER_START if kind == "header" else body_start())
        except OSError:
            self.connect_errors += 1
            return
        sock.setblocking(False)
        self.opened += 1
        self._conns.append(_Conn(kind, sock, time.monotonic()))

    def _end(self, conn: _Conn, how: str) -> None:
        self._conns.remove(conn)
        with contextlib.suppress(OSError):
            conn.sock.close()
        with self._lock:
            self.ended.append(Ended(conn.kind, conn.opened, time.monotonic(), how, self._silent_since))

    def _check_closed(self) -> None:
        """Record every connection the server has closed or answered."""
        if not self._conns:
            return
        readable, _, _ = select.select([c.sock for c in self._conns], [], [], 0)
        for conn in [c for c in self._conns if c.sock in readable]:
            try:
                data = conn.sock.recv(4096)
            except BlockingIOError:
                continue
            except OSError:
                self._end(conn, "reset")
                continue
            status_line = data.split(b"\r\n", 1)[0].decode(errors="replace")
            self._end(conn, f"answered {status_line}" if data else "eof")

    def _loop(self) -> None:
        while not self._stop.is_set():
            self._check_closed()
            if not self._silent.is_set():
                for conn in list(self._conns):
                    try:
                        conn.sock.send(b"1" if conn.kind == "body" else b"a")
                    except BlockingIOError:
                        pass
                    except OSError:
                        self._end(conn, "reset")
                if self.reconnect:
                    for kind, count in (("header", self.headers), ("body", self.bodies)):
                        for _ in range(count - sum(c.kind == kind for c in self._conns)):
                            self._open(kind)
            self._stop.wait(self.interval)

    def alive(self) -> int:
        """Slow connections open right now."""
        return len(self._conns)

    def silence(self) -> None:
        """Stop sending and stop replacing closed connections; keep the open ones open."""
        self._silent_since = time.monotonic()
        self.reconnect = False
        self._silent.set()

    def stop(self) -> None:
        """Stop the thread and close whatever is still open."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=10)
        for conn in list(self._conns):
            with contextlib.suppress(OSError):
                conn.sock.close()
        self._conns.clear()
