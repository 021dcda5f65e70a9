"""One Redis URL, understood the same way by redis-py (workers, gunicorn, daphne's sends) and by
txredisapi (daphne's receive).

    redis://[[user]:password@]host[:port][/db]
    rediss://[[user]:password@]host[:port][/db][?ssl_cert_reqs=none|optional|required&ssl_ca_certs=PATH
                                             &ssl_certfile=PATH&ssl_keyfile=PATH&ssl_check_hostname=true|false]

    redis+sentinel://[[user]:password@]sentinel[:port][,sentinel[:port]...]/service[/db]
                    [?sentinel_password=PASSWORD&sentinel_username=USER]

A ``redis+sentinel://`` URL names the sentinels (port 26379 unless given) and the service they
watch; every new connection asks them, in turn, for the service's master, and a connection that
finds a replica there (a failover under way) or is told READONLY is dropped, so the next one
asks again. The user name and password are the data servers'; the sentinels' own, if they have
one, are ``sentinel_username`` and ``sentinel_password``. TLS with Sentinel is refused
(``rediss+sentinel://``): the master's certificate would have to name an address the sentinels
hand out. One URL is one shard; the commas between sentinels are not shard separators
(``split_urls``).

``rediss://`` verifies the server's certificate by default (``ssl_cert_reqs=required``) against
``ssl_ca_certs`` if named, else the system trust store, and checks the host name against it.
A service with a self-signed certificate (Heroku Redis) needs ``ssl_cert_reqs=none``: the
traffic is encrypted, but a machine in the middle could pose as the server. A user name sends
Redis 6's ``AUTH user password`` (ACL users). User name and password are percent-decoded, so a
password holding ``@``, ``:`` or ``/`` is written ``%40``, ``%3A``, ``%2F``.

What redis-py does here: connecting, TLS (``SSLConnection``, with the URL's options), AUTH (with
an ACL user name), SELECT, the protocol, timeouts, and Sentinel (``redis.sentinel``: asking the
sentinels at each connect, dropping a connection told READONLY or UNBLOCKED). What it does not,
and this module does:

* one parser for both paths, with txredisapi's TLS built from the same options
  (``twisted_tls``), and ``redis+sentinel://``, which redis-py's ``from_url`` does not know;
* one verdict on a certificate everywhere: Python 3.13's strict RFC 5280 checks are turned off,
  as daphne's OpenSSL path and Python 3.11/3.12 do not make them. One difference is left: a
  named ``ssl_ca_certs`` is trusted beside the system store by redis-py and alone by daphne's
  path, so a server whose certificate a public CA signed is refused by daphne alone if the URL
  names another CA: name the one that signed it;
* a Sentinel pool that asks the sentinels again every second, not only when a connection
  connects (redis-py's keeps an open connection writing to a demoted master until it is told
  READONLY);
* every string form of a URL masks the password (``redis://user:***@host:6379/0``; redis-py 8
  redacts it in its reprs but names no URL), and errors name the masked URL and the cause in
  one line (redis-py says "Error 111 connecting to host:port", or Redis's bare reply).
"""

import re
import socket
import ssl
import threading
import time
from dataclasses import dataclass, field
from typing import Any, Optional
from urllib.parse import SplitResult, parse_qsl, quote, unquote, urlsplit, urlunsplit

import redis
import redis.sentinel
from redis.connection import Connection, SSLConnection
from redis.sentinel import MasterNotFoundError, SentinelManagedConnection

from channels1_kit.redis_client import ConnectionPool, Redis, retry_once

CERT_REQS = {"none": ssl.CERT_NONE, "optional": ssl.CERT_OPTIONAL, "required": ssl.CERT_REQUIRED}
DEFAULT_PORT = 6379
DEFAULT_SENTINEL_PORT = 26379
SENTINEL_SCHEME = "redis+sentinel"
SENTINEL_OPTIONS = ("sentinel_password", "sentinel_username")
TLS_OPTIONS = ("ssl_cert_reqs", "ssl_ca_certs", "ssl_certfile", "ssl_keyfile", "ssl_check_hostname")
# Query options redis-py's own URL parser takes and that still make sense here.
PLAIN_OPTIONS = ("db", "socket_timeout", "socket_connect_timeout")

# How Redis says no to a client's credentials or rights, from Redis 2 to 7: a wrong password
# ("ERR invalid password" before 6, WRONGPASS since), none given (NOAUTH), one given to a
# server that has none, an ACL user without a right the layer needs (NOPERM), and Redis 7
# refusing a long command (the layer's scripts) from a client that has not authenticated.
AUTH_REFUSALS = (
    "WRONGPASS",
    "NOAUTH",
    "Protocol error: unauthenticated",
    "NOPERM",
    "invalid password",
    "invalid username-password pair",
    "called without any password configured",
)


def redis_said(error: Any) -> str:
    """What Redis answered, from an error redis-py raised (or a message): redis-py 3+ cuts the
    error's code (WRONGPASS, NOPERM, READONLY) off the message, and keeps it beside."""
    message = str(error)
    code = getattr(error, "status_code", None)
    if code and not message.startswith(code):
        return f"{code} {message}"
    return message


def is_auth_refusal(error: Any) -> bool:
    """Whether an error (or its message) is Redis refusing the credentials or rights of the URL."""
    if isinstance(error, redis.exceptions.AuthenticationError):
        return True
    message = redis_said(error)
    return any(refusal in message for refusal in AUTH_REFUSALS)


def refusal(reply: Any) -> str:
    """How to say what Redis answered (reply: its error or message) when it refused the URL."""
    reply = redis_said(reply)
    if "NOPERM" in reply:
        return f"the Redis user lacks a right the channel layer needs: {reply}"
    return f"Redis refused the credentials: {reply}"


class RedisAuthenticationError(redis.exceptions.AuthenticationError):
    """Redis refused the URL's credentials or rights.

    A ConnectionError too (as redis-py's AuthenticationError is), so that code which rides out an
    unreachable Redis (runworker's outage handling, daphne's 503) rides this out as well instead of
    crashing on it; it lasts until someone fixes the URL or the server's users, and every attempt
    says so.
    """


@dataclass(frozen=True)
class RedisURL:
    """A parsed redis:// or rediss:// URL; str() and repr() never show the password."""

    host: str
    port: int = DEFAULT_PORT
    db: int = 0
    username: Optional[str] = None
    password: Optional[str] = field(default=None, repr=False)
    tls: bool = False
    cert_reqs: str = "required"
    ca_certs: Optional[str] = None
    certfile: Optional[str] = None
    keyfile: Optional[str] = None
    check_hostname: bool = True
    socket_timeout: Optional[float] = None
    socket_connect_timeout: Optional[float] = None
    # redis+sentinel://: the sentinels as (host, port), the service they watch, their own credentials.
    sentinels: tuple = ()
    service: Optional[str] = None
    sentinel_username: Optional[str] = None
    sentinel_password: Optional[str] = field(default=None, repr=False)

    @property
    def is_sentinel(self) -> bool:
        return bool(self.sentinels)

    @property
    def masked(self) -> str:
        credentials = ""
        if self.username or self.password:
            credentials = quote(self.username or "", safe="") + (":***" if self.password else "") + "@"
        if self.is_sentinel:
            hosts = ",".join(f"{_bracketed(host)}:{port}" for host, port in self.sentinels)
            url = f"{SENTINEL_SCHEME}://{credentials}{hosts}/{self.service}/{self.db}"
            options = []
            if self.sentinel_username:
                options.append(f"sentinel_username={quote(self.sentinel_username, safe='')}")
            if self.sentinel_password:
                options.append("sentinel_password=***")
            return url + ("?" + "&".join(options) if options else "")
        host = _bracketed(self.host)
        url = f"{'rediss' if self.tls else 'redis'}://{credentials}{host}:{self.port}/{self.db}"
        options = []
        if self.tls:
            options.append(f"ssl_cert_reqs={self.cert_reqs}")
            for name in ("ca_certs", "certfile", "keyfile"):
                if getattr(self, name):
                    options.append(f"ssl_{name}={getattr(self, name)}")
            if self.check_hostname != (self.cert_reqs == "required"):
                options.append(f"ssl_check_hostname={str(self.check_hostname).lower()}")
        return url + ("?" + "&".join(options) if options else "")

    def __str__(self) -> str:
        return self.masked

    def __repr__(self) -> str:
        return f"RedisURL({self.masked!r})"

    # redis-py

    def connection_kwargs(self, **defaults: Any) -> dict:
        """Keyword arguments of a redis-py ConnectionPool of RedisConnection for this URL.

        defaults are redis-py connection arguments (asgi_redis's connection_kwargs); the URL's own
        timeouts win over them, as they do in redis-py's from_url. Where redis-py's defaults
        changed since 2.10.6, the old ones are kept: no socket timeouts unless given (a 5 s one
        would cut the layer's 5 s BLPOP), RESP2 (no HELLO), no CLIENT SETINFO (an ACL user may
        lack the right), one retry on a ConnectionError.
        """
        kwargs = {
            "socket_timeout": None,
            "socket_connect_timeout": None,
            "protocol": 2,
            "driver_info": None,
            "retry": retry_once(),
            **defaults,
        }
        for name in ("socket_timeout", "socket_connect_timeout"):
            if getattr(self, name) is not None:
                kwargs[name] = getattr(self, name)
        if self.is_sentinel:
            kwargs["connection_class"] = SentinelRedisConnection
        elif self.tls:
            kwargs.update(
                connection_class=RedisTLSConnection,
                ssl_cert_reqs=self.cert_reqs,
                ssl_check_hostname=self.check_hostname,
                ssl_ca_certs=self.ca_certs,
                ssl_certfile=self.certfile,
                ssl_keyfile=self.keyfile,
                # Python 3.13 turned on strict RFC 5280 checks and partial chains; daphne's OpenSSL
                # path and Python 3.11/3.12 have neither, and a URL is accepted or refused alike.
                ssl_exclude_verify_flags=[ssl.VERIFY_X509_STRICT, ssl.VERIFY_X509_PARTIAL_CHAIN],
            )
        else:
            kwargs["connection_class"] = RedisConnection
        kwargs.update(
            redis_url=self,
            host=self.host,
            port=self.port,
            db=self.db,
            username=self.username,
            password=self.password,
        )
        return kwargs

    def redis_client(self, client_class: type = Redis, **defaults: Any):
        """A redis-py client for this URL (a redis.Redis with the kit's short command path)."""
        pool_class = SentinelConnectionPool if self.is_sentinel else ConnectionPool
        return client_class(connection_pool=pool_class(**self.connection_kwargs(**defaults)))

    def sentinel(self) -> redis.sentinel.Sentinel:
        """redis-py's Sentinel for this URL's sentinels, one per process (the pools ask every second).

        Its clients are the kit's, one plain URL per sentinel with the sentinels' credentials, so
        that what each sentinel answered is said in one line with the password masked.
        """
        with _sentinels_lock:
            found = _sentinels.get(self)
            if found is None:
                timeout = self.socket_connect_timeout or 2.0
                found = _sentinels[self] = redis.sentinel.Sentinel([])
                found.sentinels = [
                    RedisURL(
                        host=host,
                        port=port,
                        username=self.sentinel_username,
                        password=self.sentinel_password,
                        socket_timeout=timeout,
                        socket_connect_timeout=timeout,
                    ).redis_client()
                    for host, port in self.sentinels
                ]
            return found

    def discover_master(self) -> tuple:
        """(host, port) of the service's master, as the first sentinel that sees it up says (redis-py's).

        SentinelError (a ConnectionError) saying what each sentinel answered if none does.
        """
        try:
            return self.sentinel().discover_master(self.service)
        except MasterNotFoundError as error:
            raise SentinelError(self.no_master(error)) from error

    def no_master(self, error: MasterNotFoundError) -> str:
        return f"no sentinel named the master of {self.service!r} ({error})"

    # txredisapi (Twisted)

    def twisted_tls(self):
        """A Twisted IOpenSSLClientConnectionCreator with the URL's TLS settings; None for redis://."""
        if not self.tls:
            return None
        from twisted.internet import ssl as twisted_ssl

        trust = None
        if self.cert_reqs != "none":
            trust = _twisted_trust(self.ca_certs) if self.ca_certs else twisted_ssl.platformTrust()
        client = _twisted_client_certificate(self.certfile, self.keyfile) if self.certfile else None
        if trust is not None and self.check_hostname:
            return twisted_ssl.optionsForClientTLS(self.host, trustRoot=trust, clientCertificate=client)
        extra: dict = {}
        if client is not None:
            extra.update(privateKey=client.privateKey.original, certificate=client.original)
        if trust is not None:
            options = twisted_ssl.CertificateOptions(trustRoot=trust, **extra)
        else:
            options = twisted_ssl.CertificateOptions(verify=False, **extra)
        return _ServerName(options, self.host)

    def txredisapi_kwargs(self) -> dict:
        """Keyword arguments of txredisapi.lazyConnection / Connection for this URL."""
        if self.is_sentinel:
            raise ValueError(
                f"{self}: txredisapi connects to one server; fanout_layer's TwistedShard follows sentinels"
            )
        return {
            "host": self.host,
            "port": self.port,
            "dbid": self.db,
            "password": self.password,
            "username": self.username,
            "ssl_context_factory": self.twisted_tls() or False,
        }


def _bracketed(host: str) -> str:
    return f"[{host}]" if ":" in host else host


# One redis.sentinel.Sentinel per URL, shared by every pool and thread of the process (RedisURL.sentinel).
_sentinels: dict = {}
_sentinels_lock = threading.Lock()


class SentinelError(redis.exceptions.ConnectionError):
    """No sentinel of a redis+sentinel:// URL could name its service's master."""


def split_urls(value: str) -> list:
    """The URLs of a comma-separated list (REDIS_URL with several shards), stripped, empty ones left out.

    A piece that names no scheme (``host:26379``) continues the URL before it: the sentinel list
    of a redis+sentinel:// URL, whose commas do not separate shards.
    """
    urls: list = []
    for piece in value.split(","):
        piece = piece.strip()
        if not piece:
            continue
        if urls and "://" not in piece and urls[-1].startswith(SENTINEL_SCHEME + "://"):
            urls[-1] += "," + piece
        else:
            urls.append(piece)
    return urls


def _option_bool(name: str, value: str) -> bool:
    lowered = value.strip().lower()
    if lowered in ("1", "true", "yes", "on"):
        return True
    if lowered in ("0", "false", "no", "off"):
        return False
    raise ValueError(f"{name}={value!r}: expected true or false")


def mask(url: str) -> str:
    """url with its password replaced by ***, whether or not it parses."""
    try:
        return parse(url).masked
    except ValueError:
        return _mask_loosely(url)


def with_cert_reqs(url: str, cert_reqs: Optional[str]) -> str:
    """url with ``ssl_cert_reqs=cert_reqs`` added if it is a rediss:// URL that names none itself.

    For a platform that hands out the URL and rotates it (Heroku Redis, with a self-signed
    certificate): the deploy says once, beside the URL, how to treat its certificate. The URL's
    own ssl_cert_reqs wins; redis:// URLs and an empty cert_reqs leave the URL as it is.
    ValueError for a cert_reqs other than none, optional or required (it never names the URL).
    """
    value = (cert_reqs or "").strip().lower()
    if not value:
        return url
    if value not in CERT_REQS:
        raise ValueError(f"{cert_reqs!r}: expected none, optional or required")
    parts = _split(url)
    if parts.scheme != "rediss" or "ssl_cert_reqs" in dict(parse_qsl(parts.query, keep_blank_values=True)):
        return url
    query = f"{parts.query}&ssl_cert_reqs={value}" if parts.query else f"ssl_cert_reqs={value}"
    return urlunsplit(parts._replace(query=query))


def parse(url: str) -> RedisURL:
    """Parses a redis:// or rediss:// URL; ValueError, naming the masked URL, for anything else."""
    try:
        return _parse(url)
    except ValueError as error:
        raise ValueError(f"Redis URL {_mask_loosely(url)}: {error}") from None


def without_url(message: str) -> str:
    """An error message of this module without the URL it starts with: the cause alone."""
    return re.sub(r"^(rediss?|redis\+sentinel)://\S*: ", "", message)


def tls_failure_hint(reason: str) -> str:
    """What to try when a TLS handshake failed for reason (OpenSSL's words), in parentheses."""
    if "alert certificate required" in reason or "alert bad certificate" in reason:
        return "(the server wants a client certificate: ssl_certfile=PATH&ssl_keyfile=PATH)"
    return "(does the port speak TLS?)"


def _mask_loosely(url: str) -> str:
    # For a URL that does not parse: whatever sits between "user:" and "@" goes, and any password option.
    url = re.sub(r"(//[^/@:]*:)[^@]*@", r"\1***@", url)
    return re.sub(r"((?:^|[?&])[a-z_]*password=)[^&]*", r"\1***", url)


def _split(url: str) -> SplitResult:
    """urlsplit, except for a sentinel URL, whose host list some Pythons' urlsplit refuses (3.11.2 takes
    "h1,[::1]:26379" for a broken IPv6 address): the netloc is cut out by hand there."""
    scheme, separator, rest = url.partition("://")
    if not separator or not scheme.endswith("+sentinel"):
        return urlsplit(url)
    rest, _, fragment = rest.partition("#")
    rest, _, query = rest.partition("?")
    netloc, slash, path = rest.partition("/")
    return SplitResult(scheme.lower(), netloc, slash + path, query, fragment)


def _parse(url: str) -> RedisURL:
    parts = _split(url)
    if parts.scheme == "rediss+sentinel":
        raise ValueError(
            "TLS with Sentinel is not supported: use redis+sentinel:// (plain TCP) or one rediss:// URL of the master"
        )
    if parts.scheme == SENTINEL_SCHEME:
        return _parse_sentinel(parts)
    if parts.scheme not in ("redis", "rediss"):
        raise ValueError("the scheme must be redis:// or rediss:// (or redis+sentinel://)")
    if "," in parts.netloc:
        raise ValueError("a comma in the host: several sentinels need redis+sentinel://HOST,HOST/SERVICE")
    if not parts.hostname:
        raise ValueError("no host")
    try:
        port = parts.port or DEFAULT_PORT
    except ValueError:
        raise ValueError("the port is not a number") from None
    options = dict(parse_qsl(parts.query, keep_blank_values=True))
    unknown = sorted(set(options) - set(TLS_OPTIONS) - set(PLAIN_OPTIONS))
    if unknown:
        raise ValueError(f"unknown option(s) {', '.join(unknown)}; known: {', '.join(PLAIN_OPTIONS + TLS_OPTIONS)}")
    tls = parts.scheme == "rediss"
    given_tls = [name for name in TLS_OPTIONS if name in options]
    if given_tls and not tls:
        raise ValueError(f"{', '.join(given_tls)} only apply to rediss:// (TLS) URLs")
    path = parts.path.strip("/")
    db_text = options.get("db", path or "0")
    if not db_text.isdigit():
        raise ValueError(f"the database {db_text!r} is not a number")
    cert_reqs = options.get("ssl_cert_reqs", "required").strip().lower()
    if cert_reqs not in CERT_REQS:
        raise ValueError(f"ssl_cert_reqs={cert_reqs!r}: expected none, optional or required")
    check_default = cert_reqs == "required"
    check_hostname = _option_bool("ssl_check_hostname", options.get("ssl_check_hostname", str(check_default)))
    if check_hostname and cert_reqs == "none":
        raise ValueError("ssl_check_hostname=true needs ssl_cert_reqs=optional or required")
    if parts.username and not parts.password:
        raise ValueError("a user name needs a password (redis://user:password@host)")
    if "ssl_keyfile" in options and "ssl_certfile" not in options:
        raise ValueError("ssl_keyfile needs ssl_certfile")
    return RedisURL(
        host=parts.hostname,
        port=port,
        db=int(db_text),
        username=unquote(parts.username) if parts.username else None,
        password=unquote(parts.password) if parts.password else None,
        tls=tls,
        cert_reqs=cert_reqs,
        ca_certs=options.get("ssl_ca_certs") or None,
        certfile=options.get("ssl_certfile") or None,
        keyfile=options.get("ssl_keyfile") or None,
        check_hostname=check_hostname,
        **_timeouts(options),
    )


def _timeouts(options: dict) -> dict:
    timeouts = {}
    for name in ("socket_timeout", "socket_connect_timeout"):
        if name in options:
            try:
                timeouts[name] = float(options[name])
            except ValueError:
                raise ValueError(f"{name}={options[name]!r} is not a number") from None
    return timeouts


def _parse_sentinel(parts) -> RedisURL:
    options = dict(parse_qsl(parts.query, keep_blank_values=True))
    known = PLAIN_OPTIONS + SENTINEL_OPTIONS
    given_tls = [name for name in TLS_OPTIONS if name in options]
    if given_tls:
        raise ValueError(f"{', '.join(given_tls)}: TLS with Sentinel is not supported")
    unknown = sorted(set(options) - set(known))
    if unknown:
        raise ValueError(f"unknown option(s) {', '.join(unknown)}; known: {', '.join(known)}")
    credentials, _, hosts = parts.netloc.rpartition("@")
    username, _, password = credentials.partition(":")
    if username and not password:
        raise ValueError("a user name needs a password (redis+sentinel://user:password@host,host/service)")
    sentinels = []
    for entry in hosts.split(","):
        entry = entry.strip()
        match = re.fullmatch(r"(?:\[(?P<v6>[^\]]+)\]|(?P<host>[^:\[\]]+))(?::(?P<port>[^:]*))?", entry)
        if not match:
            raise ValueError(f"the sentinel {entry!r} is not host[:port]")
        port_text = match.group("port")
        if port_text is not None and not port_text.isdigit():
            raise ValueError(f"the port of the sentinel {entry!r} is not a number")
        sentinels.append((match.group("v6") or match.group("host"), int(port_text or DEFAULT_SENTINEL_PORT)))
    path = [unquote(piece) for piece in parts.path.split("/") if piece]
    if not path:
        raise ValueError("no service name: redis+sentinel://HOST[,HOST...]/SERVICE[/DB]")
    if len(path) > 2:
        raise ValueError("the path is /SERVICE[/DB]")
    db_text = options.get("db", path[1] if len(path) > 1 else "0")
    if not db_text.isdigit():
        raise ValueError(f"the database {db_text!r} is not a number")
    if options.get("sentinel_username") and not options.get("sentinel_password"):
        raise ValueError("sentinel_username needs sentinel_password")
    return RedisURL(
        host="",
        port=0,
        db=int(db_text),
        username=unquote(username) if username else None,
        password=unquote(password) if password else None,
        sentinels=tuple(sentinels),
        service=path[0],
        sentinel_username=options.get("sentinel_username") or None,
        sentinel_password=options.get("sentinel_password") or None,
        **_timeouts(options),
    )


# redis-py


class _SaysWhatWentWrong:
    """Mixin over redis-py's connection classes: each error in one line naming the masked URL and the cause.

    An unknown host, a refused or timed-out connection, a certificate that is not trusted or names
    another host, a TLS handshake that fails, a plain connection to a TLS-only port, refused
    credentials: redis-py says "Error 111 connecting to host:port" or the bare reply; this says
    which URL (masked) and what to try.
    """

    def __init__(self, *, redis_url: RedisURL, **kwargs: Any):
        self.redis_url = redis_url
        self._answered = False
        super().__init__(**kwargs)

    def __repr__(self) -> str:
        return f"<{type(self).__name__}({self.redis_url.masked})>"

    def _connect(self) -> socket.socket:
        url = self.redis_url
        try:
            sock = super()._connect()
        except socket.gaierror as error:
            raise redis.exceptions.ConnectionError(f"{url}: unknown host {url.host!r} ({error.strerror})") from error
        except TimeoutError as error:
            raise redis.exceptions.TimeoutError(
                f"{url}: no answer to the connection within {self.socket_connect_timeout}s"
            ) from error
        except OSError as error:
            raise redis.exceptions.ConnectionError(f"{url}: cannot connect ({error.strerror or error})") from error
        self._answered = False
        return sock

    def send_packed_command(self, command: Any, check_health: bool = True) -> None:
        try:
            super().send_packed_command(command, check_health)
        except redis.exceptions.ConnectionError as error:
            clear = self._said_clearly(error)
            if clear is error:
                raise
            raise clear from error

    def read_response(self, *args: Any, **kwargs: Any) -> Any:
        try:
            response = super().read_response(*args, **kwargs)
        except (redis.exceptions.AuthenticationError, redis.exceptions.ResponseError) as error:
            # redis-py raises AuthenticationError (a ConnectionError) for WRONGPASS and NOAUTH, and
            # ResponseError for the rest, NOPERM among them.
            self._answered = True
            if is_auth_refusal(error):
                raise RedisAuthenticationError(f"{self.redis_url}: {refusal(error)}") from error
            raise
        except (redis.exceptions.ConnectionError, redis.exceptions.TimeoutError) as error:
            clear = self._said_clearly(error)
            if clear is error:
                raise
            raise clear from error
        self._answered = True
        return response

    def _said_clearly(self, error: redis.exceptions.RedisError) -> redis.exceptions.RedisError:
        """error with the URL in front, and what it likely means when Redis has not answered yet."""
        url = self.redis_url
        if str(error).startswith(str(url)):
            return error  # Said by _connect or read_response already.
        if self._answered or isinstance(error, redis.exceptions.TimeoutError):
            return type(error)(f"{url}: {error}")
        if not url.tls:
            # A TLS-only port closes a plaintext connection without a word.
            return redis.exceptions.ConnectionError(
                f"{url}: the server closed the connection before answering ({error}); "
                "if it only speaks TLS, use rediss://"
            )
        if "alert" in str(error):
            # TLS 1.3 servers refuse a client certificate after the handshake, on the first read.
            return redis.exceptions.ConnectionError(f"{url}: TLS refused: {error} {tls_failure_hint(str(error))}")
        return redis.exceptions.ConnectionError(
            f"{url}: the server closed the TLS connection before answering ({error}); if it asks for a "
            "client certificate, name one with ssl_certfile=PATH&ssl_keyfile=PATH"
        )


class RedisConnection(_SaysWhatWentWrong, Connection):
    """redis-py's Connection (redis://), saying what went wrong in one line."""


class RedisTLSConnection(_SaysWhatWentWrong, SSLConnection):
    """redis-py's SSLConnection (rediss://), saying what went wrong in one line, the handshake's failures too."""

    def _wrap_socket_with_ssl(self, sock: socket.socket) -> socket.socket:
        url = self.redis_url
        try:
            return super()._wrap_socket_with_ssl(sock)
        except ssl.SSLCertVerificationError as error:
            raise redis.exceptions.ConnectionError(
                f"{url}: TLS certificate refused: {error.verify_message} (name the CA that signed it with "
                "ssl_ca_certs=PATH; for a self-signed certificate, ssl_cert_reqs=none)"
            ) from error
        except ssl.SSLError as error:
            reason = str(error.reason or error)
            raise redis.exceptions.ConnectionError(
                f"{url}: TLS handshake failed: {reason} {tls_failure_hint(reason)}"
            ) from error
        except TimeoutError as error:
            raise redis.exceptions.TimeoutError(
                f"{url}: no TLS handshake within {self.socket_connect_timeout}s (does the port speak TLS?)"
            ) from error
        except OSError as error:
            raise redis.exceptions.ConnectionError(
                f"{url}: TLS handshake failed: {error.strerror or error} (does the port speak TLS?)"
            ) from error


# Errors that mean the connection reached a server that is no longer (or not yet) the master.
NOT_MASTER = re.compile(r"\bREADONLY\b|\bUNBLOCKED\b|\bMASTERDOWN\b")


def not_master(error: Any) -> bool:
    """Whether Redis answered as a replica would: the master moved, ask the sentinels again."""
    return bool(NOT_MASTER.search(redis_said(error)))


class SentinelRedisConnection(_SaysWhatWentWrong, SentinelManagedConnection):
    """redis-py's SentinelManagedConnection, saying in one line (masked) when no sentinel names the master.

    redis-py asks the sentinels at each connect, and closes a connection told READONLY or
    UNBLOCKED (a master demoted under a BLPOP) with a ConnectionError: the command is retried once
    on a new connection, which asks again, and the callers that ride out outages (runworker,
    daphne) ride out the rest of a failover.
    """

    def _connect_retry(self) -> None:
        try:
            super()._connect_retry()
        except MasterNotFoundError as error:
            raise SentinelError(f"{self.redis_url}: {self.redis_url.no_master(error)}") from error

    def send_packed_command(self, command: Any, check_health: bool = True) -> None:
        if self._sock is None:
            # Through connect(), which asks the sentinels: redis-py's own lazy connect (its pool
            # connects first) would go to the last master's address.
            self.connect()
        super().send_packed_command(command, check_health)


class SentinelConnectionPool(ConnectionPool, redis.sentinel.SentinelConnectionPool):
    """redis-py's Sentinel pool on the kit's short path, asking the sentinels again at most every RECHECK_SECONDS.

    redis-py asks only when a connection connects. After a failover the old master keeps
    accepting writes until a sentinel turns it into a replica, which can take ten seconds, and a
    connection still open to it would write where nobody reads: so the pool asks every second
    (redis-py then closes its idle connections if the master moved) and closes a connection it
    hands out that is still open to another server.
    """

    RECHECK_SECONDS = 1.0

    def __init__(self, **kwargs: Any):
        url = kwargs["redis_url"]
        super().__init__(service_name=url.service, sentinel_manager=url.sentinel(), **kwargs)
        self._recheck_lock = threading.Lock()
        self._rechecked = float("-inf")

    def get_connection(self, command_name: Any = None, *keys: Any, **options: Any):
        self._recheck()
        connection = super().get_connection(command_name, *keys, **options)
        master = self.master_address
        if connection._sock is not None and master is not None and (connection.host, connection.port) != master:
            connection.disconnect()
        return connection

    def _recheck(self) -> None:
        with self._recheck_lock:
            if time.monotonic() - self._rechecked < self.RECHECK_SECONDS:
                return
            self._rechecked = time.monotonic()
        try:
            self.get_master_address()
        except redis.exceptions.ConnectionError:
            pass  # The connection's own attempt says why.


# txredisapi (Twisted)


def _twisted_trust(ca_certs: str):
    from cryptography.x509 import load_pem_x509_certificates
    from OpenSSL.crypto import X509
    from twisted.internet import ssl as twisted_ssl

    with open(ca_certs, "rb") as pem:
        try:
            certificates = load_pem_x509_certificates(pem.read())
        except ValueError:
            raise ValueError(f"ssl_ca_certs={ca_certs}: no PEM certificate in the file") from None
    return twisted_ssl.trustRootFromCertificates(
        [twisted_ssl.Certificate(X509.from_cryptography(certificate)) for certificate in certificates]
    )


def _twisted_client_certificate(certfile: str, keyfile: Optional[str]):
    from twisted.internet import ssl as twisted_ssl

    with open(certfile, "rb") as cert:
        pem = cert.read()
    if keyfile:
        with open(keyfile, "rb") as key:
            pem += b"\n" + key.read()
    # As the standard library's load_cert_chain: without a key file, the key is in the cert file.
    return twisted_ssl.PrivateCertificate.loadPEM(pem)


class _ServerName:
    """CertificateOptions that also send the host name (SNI), as the standard library does.

    optionsForClientTLS sends it, but always verifies; with ssl_cert_reqs=none or a host name
    check turned off, CertificateOptions alone would send none, and services that route TLS
    connections by name would not know where to.
    """

    def __init__(self, options, host: str):
        from twisted.internet.abstract import isIPAddress, isIPv6Address
        from twisted.internet.interfaces import IOpenSSLClientConnectionCreator
        from zope.interface import directlyProvides

        self._options = options
        self._name = None if isIPAddress(host) or isIPv6Address(host) else host.encode("idna")
        directlyProvides(self, IOpenSSLClientConnectionCreator)

    def clientConnectionForTLS(self, tls_protocol):
        connection = self._options.clientConnectionForTLS(tls_protocol)
        if self._name:
            connection.set_tlsext_host_name(self._name)
        return connection
