"""daphne's kept-open txredisapi connection to one shard, over TLS when the URL says so, that says why it
cannot connect: once per cause, in one line naming the shard's URL with its password masked.

txredisapi alone would not: a refused certificate or a TLS-only port reached in plain TCP shows up as
"could not auth: Lost connection", an unknown host or a refused connection is retried in silence while
every receive waits, and after one refused AUTH it stops reconnecting for good, so a daphne started
before a password was fixed would never recover. Here every connection attempt that fails is
described (``TwistedShard.failed``), the connection keeps retrying with txredisapi's backoff, and the
layer's receive waits instead of spinning while it does.
"""

import logging
from typing import Any, Optional

import txredisapi
from twisted.internet import defer, endpoints, error, task
from twisted.internet.interfaces import IHandshakeListener, IStreamClientEndpoint
from zope.interface import implementer

from channels1_kit.redis_urls import (
    RedisURL,
    SentinelConnectionPool,
    SentinelError,
    is_auth_refusal,
    refusal,
    tls_failure_hint,
)

logger = logging.getLogger("fanout_layer")


class _Protocol(txredisapi.RedisProtocol):
    def connectionLost(self, why):
        if not self._ready:
            # Lost before AUTH and SELECT were answered: this attempt failed, and why is the reason.
            self.factory.shard.failed(describe(why, self.factory.shard.url))
        super().connectionLost(why)


@implementer(IHandshakeListener)
class _TLSProtocol(_Protocol):
    """AUTH and SELECT wait for the TLS handshake, so that a failed one is reported as what it is."""

    def connectionMade(self):
        pass

    def handshakeCompleted(self):
        _Protocol.connectionMade(self)


class _Factory(txredisapi.RedisFactory):
    def __init__(self, shard: "TwistedShard", **kwargs: Any):
        super().__init__(**kwargs)
        self.shard = shard
        self.protocol = _TLSProtocol if shard.url.tls else _Protocol

    def stopTrying(self):
        # txredisapi gives up for good once AUTH or SELECT is refused; keep trying with the backoff,
        # so that a daphne recovers by itself once the URL or the server's users are fixed.
        return defer.succeed(None)

    def connectionError(self, why: str) -> None:
        # "could not auth: Lost connection" follows a connection lost before its answer, which
        # _Protocol.connectionLost has described already.
        if "Lost connection" in why:
            return
        cause = why.replace("Redis error: ", "", 1)
        if is_auth_refusal(cause):
            # "could not auth: WRONGPASS ...", "could not set dbid=0: NOAUTH ...": what Redis said.
            cause = refusal(cause.split(": ", 1)[-1])
        self.shard.failed(cause)

    def buildProtocol(self, addr):
        protocol = super().buildProtocol(addr)
        protocol.whenConnected().addCallback(lambda _: self.shard.succeeded())
        return protocol


@implementer(IStreamClientEndpoint)
class _SentinelEndpoint:
    """Connects to the master the sentinels name at each attempt (redis+sentinel:// URLs).

    The question goes to the sentinels from a thread (RedisURL.discover_master, as the workers
    ask), so that both paths follow the same sentinels the same way.
    """

    def __init__(self, reactor, url: RedisURL, timeout: float):
        self._reactor = reactor
        self._url = url
        self._timeout = timeout
        # The master of the connection made last, and its protocol.
        self.address: Optional[tuple] = None
        self.protocol = None

    def discover(self) -> defer.Deferred:
        from twisted.internet import threads

        return threads.deferToThreadPool(self._reactor, self._reactor.getThreadPool(), self._url.discover_master)

    def connect(self, protocol_factory):
        def found(address):
            host, port = address
            connecting = endpoints.HostnameEndpoint(self._reactor, host, port, timeout=self._timeout)
            return connecting.connect(protocol_factory).addCallback(connected, address)

        def connected(protocol, address):
            self.address, self.protocol = address, protocol
            return protocol

        return self.discover().addCallback(found)

    def check(self) -> defer.Deferred:
        """Closes the connection if the sentinels now name another master; it reconnects to that one."""

        def compare(address):
            protocol = self.protocol
            if protocol is None or address == self.address or protocol.transport is None:
                return
            logger.warning(
                "Redis %s: the sentinels name %s:%s master now: leaving %s:%s", self._url, *address, *self.address
            )
            self.protocol = None
            protocol.transport.loseConnection()

        # A sentinel that cannot answer is said by the next connection attempt, if it comes to that.
        return self.discover().addCallbacks(compare, lambda failure: None)


@implementer(IStreamClientEndpoint)
class _ReportingEndpoint:
    """Each connection attempt starts here: a failure to connect at all is described too."""

    def __init__(self, shard: "TwistedShard", wrapped):
        self._shard = shard
        self._wrapped = wrapped

    def connect(self, protocol_factory):
        self._shard.attempt_started()

        def failed(failure):
            self._shard.failed(describe(failure, self._shard.url))
            return failure

        return self._wrapped.connect(protocol_factory).addErrback(failed)


class TwistedShard:
    """One shard's txredisapi connection (``connection``), and the cause it currently fails with."""

    def __init__(self, index: int, url: RedisURL, *, reconnect_delay: float, connect_timeout: Optional[float]):
        from twisted.internet import reactor

        self.index = index
        self.url = url
        # The cause of the current run of failures, or None while the shard is fine.
        self.failure: Optional[str] = None
        self._reported_this_attempt = False
        self._waiting: set = set()
        factory = _Factory(
            self,
            uuid=url.service if url.is_sentinel else f"{url.host}:{url.port}",
            dbid=url.db,
            poolsize=1,
            # Lazy factories log every refusal through Twisted as well; failed() says it once.
            isLazy=False,
            # Bodies are bytes, and a body that looks like a number is still a body.
            charset=None,
            password=url.password,
            username=url.username,
            convertNumbers=False,
        )
        factory.maxDelay = reconnect_delay
        self._watch = None
        if url.is_sentinel:
            endpoint = _SentinelEndpoint(reactor, url, connect_timeout or 30)
            # As often as the workers' pools ask (SentinelConnectionPool.RECHECK_SECONDS).
            self._watch = task.LoopingCall(endpoint.check)
            self._watch.clock = reactor
            self._watch.start(SentinelConnectionPool.RECHECK_SECONDS, now=False).addErrback(
                lambda failure: logger.error("Redis shard %d: sentinel watch stopped: %s", index, failure)
            )
        else:
            endpoint = endpoints.HostnameEndpoint(reactor, url.host, url.port, timeout=connect_timeout or 30)
        tls = url.twisted_tls()
        if tls is not None:
            endpoint = endpoints.wrapClientTLS(tls, endpoint)
        factory.startConnecting(_ReportingEndpoint(self, endpoint))
        self.connection = factory.handler

    def attempt_started(self) -> None:
        self._reported_this_attempt = False

    def failed(self, cause: str) -> None:
        """An attempt failed, or Redis refused a command for the URL's credentials: said once per cause."""
        if self._reported_this_attempt:
            return
        self._reported_this_attempt = True
        if cause == self.failure:
            return
        logger.error("Redis shard %d (%s): %s", self.index, self.url, cause)
        self.failure = cause
        # A receive waiting for this connection would otherwise wait out its whole timeout.
        for waiting in list(self._waiting):
            waiting.cancel()

    def succeeded(self) -> None:
        if self.failure is not None:
            logger.warning("Redis shard %d (%s): connected again", self.index, self.url)
            self.failure = None

    def wait_for(self, pending: defer.Deferred, timeout: float) -> defer.Deferred:
        """pending, cancelled after timeout seconds, or as soon as an attempt to connect fails."""
        from twisted.internet import reactor

        self._waiting.add(pending)
        pending.addBoth(self._done, pending)
        return pending.addTimeout(timeout, reactor)

    def _done(self, result: Any, pending: defer.Deferred) -> Any:
        self._waiting.discard(pending)
        return result

    def disconnect(self) -> defer.Deferred:
        if self._watch is not None and self._watch.running:
            self._watch.stop()
        return self.connection.disconnect()


def describe(failure, url: RedisURL) -> str:
    """One line on why a connection attempt failed, with what to do about it where that is known."""
    from OpenSSL import SSL

    value = failure.value
    if failure.check(SSL.Error):
        reasons = [reason[-1] for reason in (value.args[0] if value.args else []) if isinstance(reason, tuple)]
        text = ", ".join(reason for reason in reasons if reason) or str(value)
        if "certificate verify failed" in text:
            return (
                f"TLS certificate refused: {text} (name the CA that signed it with ssl_ca_certs=PATH; "
                "for a self-signed certificate, ssl_cert_reqs=none)"
            )
        return f"TLS handshake failed: {text} {tls_failure_hint(text)}"
    if type(value).__name__ == "VerificationError":
        # service_identity's: the certificate is good but names another host.
        return f"TLS certificate refused: it is not valid for {url.host!r} ({value})"
    if failure.check(error.DNSLookupError):
        return f"unknown host {url.host!r}"
    if failure.check(error.TimeoutError, defer.TimeoutError):
        return "no answer to the connection in time"
    if failure.check(error.ConnectionRefusedError):
        return "cannot connect (connection refused)"
    if failure.check(error.ConnectionDone, error.ConnectionLost):
        if url.tls:
            return "the server closed the connection before answering"
        return "the server closed the connection before answering; if it only speaks TLS, use rediss://"
    if is_auth_refusal(value):
        return refusal(value)
    if isinstance(value, SentinelError):
        return str(value)
    return failure.getErrorMessage()
