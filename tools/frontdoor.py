"""The one port of `make run`: WebSocket connections go to daphne, everything else to gunicorn.

A development stand-in for deploy/nginx on a machine that has only Python. It routes a
connection by its first request: a WebSocket handshake (Upgrade: websocket) is piped to
the daphne pool, any other connection to gunicorn. Browsers never upgrade a connection
that already carried a plain request, so the first request decides correctly.

    python -m tools.frontdoor --listen 127.0.0.1:8000 \
        --websocket 127.0.0.1:8100 --http 127.0.0.1:8200
"""

import argparse
import re
import sys

from twisted.internet import protocol, reactor
from twisted.internet.endpoints import TCP4ClientEndpoint, TCP4ServerEndpoint, connectProtocol
from twisted.python import log

HEADERS_END = b"\r\n\r\n"
MAX_HEADER_BYTES = 65536
UPGRADE_WEBSOCKET = re.compile(rb"^upgrade:\s*websocket\s*$", re.IGNORECASE | re.MULTILINE)


class Upstream(protocol.Protocol):
    """The connection to daphne or gunicorn; relays its bytes back to the browser."""

    def __init__(self, downstream: "Downstream"):
        self.downstream = downstream

    def dataReceived(self, data: bytes) -> None:
        self.downstream.transport.write(data)

    def connectionLost(self, reason) -> None:
        self.downstream.transport.loseConnection()


class Downstream(protocol.Protocol):
    """A browser's connection: held until its first request's headers say where it goes."""

    def __init__(self, routes: dict):
        self.routes = routes
        self.buffer = b""
        self.upstream = None

    def dataReceived(self, data: bytes) -> None:
        if self.upstream is not None:
            self.upstream.transport.write(data)
            return
        self.buffer += data
        if HEADERS_END not in self.buffer:
            if len(self.buffer) > MAX_HEADER_BYTES:
                self.transport.write(b"HTTP/1.1 431 Request Header Fields Too Large\r\nConnection: close\r\n\r\n")
                self.transport.loseConnection()
            return
        self.transport.pauseProducing()
        headers = self.buffer.split(HEADERS_END, 1)[0]
        host, port = self.routes["websocket" if UPGRADE_WEBSOCKET.search(headers) else "http"]
        endpoint = TCP4ClientEndpoint(reactor, host, port, timeout=10)
        connectProtocol(endpoint, Upstream(self)).addCallbacks(self.upstream_ready, self.upstream_failed)

    def upstream_ready(self, upstream: Upstream) -> None:
        self.upstream = upstream
        upstream.transport.write(self.buffer)
        self.buffer = b""
        self.transport.resumeProducing()

    def upstream_failed(self, failure) -> None:
        log.msg(f"front door: upstream unreachable: {failure.getErrorMessage()}")
        self.transport.write(b"HTTP/1.1 502 Bad Gateway\r\nContent-Length: 0\r\nConnection: close\r\n\r\n")
        self.transport.loseConnection()

    def connectionLost(self, reason) -> None:
        if self.upstream is not None:
            self.upstream.transport.loseConnection()


class FrontDoor(protocol.Factory):
    def __init__(self, routes: dict):
        self.routes = routes

    def buildProtocol(self, addr) -> Downstream:
        return Downstream(self.routes)


def host_port(value: str) -> tuple:
    host, _, port = value.rpartition(":")
    return host or "127.0.0.1", int(port)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--listen", type=host_port, required=True)
    parser.add_argument("--websocket", type=host_port, required=True, help="daphne host:port")
    parser.add_argument("--http", type=host_port, required=True, help="gunicorn host:port")
    args = parser.parse_args()
    log.startLogging(sys.stdout)
    host, port = args.listen
    TCP4ServerEndpoint(reactor, port, interface=host).listen(
        FrontDoor({"websocket": args.websocket, "http": args.http})
    )
    reactor.run()


if __name__ == "__main__":
    main()
