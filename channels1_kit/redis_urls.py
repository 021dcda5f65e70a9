"""One Redis URL, understood the same way by redis-py 2.10.6 (workers, gunicorn, daphne's sends) and by
txredisapi (daphne's receive).

    redis://[[user]:password@]host[:port][/db]
    rediss://[[user]:password@]host[:port][/db][?ssl_cert_reqs=none|optional|required&ssl_ca_certs=PATH
                                             &ssl_certfile=PATH&ssl_keyfile=PATH&ssl_check_hostname=true|false]

``rediss://`` verifies the server's certificate by default (``ssl_cert_reqs=required``) against
``ssl_ca_certs`` if named, else the system trust store, and checks the host name against it.
A service with a self-signed certificate (Heroku Redis) needs ``ssl_cert_reqs=none``: the
traffic is encrypted, but a machine in the middle could pose as the server. A user name sends
Redis 6's ``AUTH user password`` (ACL users). User name and password are percent-decoded, so a
password holding ``@``, ``:`` or ``/`` is written ``%40``, ``%3A``, ``%2F``.

Why not redis-py's own ``rediss://`` support: redis-py 2.10.6's SSLConnection calls
``ssl.wrap_socket``, which Python 3.12 removed, never checks the host name, ignores the system
trust store, and sends no user name. And txredisapi takes TLS only as a Twisted connection
creator, built here from the same options.

Every string form of a URL masks the password (``redis://user:***@host:6379/0``); errors name
the masked URL and the cause in one line.
"""

import re
import socket
import ssl
from dataclasses import dataclass, field
from typing import Any, Optional
from urllib.parse import parse_qsl, quote, unquote, urlsplit, urlunsplit

import redis
from redis.connection import Connection

CERT_REQS = {"none": ssl.CERT_NONE, "optional": ssl.CERT_OPTIONAL, "required": ssl.CERT_REQUIRED}
DEFAULT_PORT = 6379
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


def is_auth_refusal(error: Any) -> bool:
    """Whether an error (or its message) is Redis refusing the credentials or rights of the URL."""
    if isinstance(error, redis.exceptions.AuthenticationError):
        return True
    message = str(error)
    return any(refusal in message for refusal in AUTH_REFUSALS)


def refusal(reply: Any) -> str:
    """How to say what Redis answered (reply: its error or message) when it refused the URL."""
    if "NOPERM" in str(reply):
        return f"the Redis user lacks a right the channel layer needs: {reply}"
    return f"Redis refused the credentials: {reply}"


class RedisAuthenticationError(redis.exceptions.ConnectionError, redis.exceptions.AuthenticationError):
    """Redis refused the URL's credentials or rights.

    A ConnectionError too, so that code which rides out an unreachable Redis (runworker's
    outage handling, daphne's 503) rides this out as well instead of crashing on it; it lasts
    until someone fixes the URL or the server's users, and every attempt says so.
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

    @property
    def masked(self) -> str:
        credentials = ""
        if self.username or self.password:
            credentials = quote(self.username or "", safe="") + (":***" if self.password else "") + "@"
        host = f"[{self.host}]" if ":" in self.host else self.host
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

    # redis-py 2.10.6

    def connection_kwargs(self, **defaults: Any) -> dict:
        """Keyword arguments of a redis-py ConnectionPool of RedisConnection for this URL.

        defaults are redis-py connection arguments (asgi_redis's connection_kwargs); the URL's own
        timeouts win over them, as they do in redis-py's from_url.
        """
        kwargs = dict(defaults)
        for name in ("socket_timeout", "socket_connect_timeout"):
            if getattr(self, name) is not None:
                kwargs[name] = getattr(self, name)
        kwargs.update(
            connection_class=RedisConnection,
            redis_url=self,
            ssl_context=self.ssl_context(),
            host=self.host,
            port=self.port,
            db=self.db,
            password=self.password,
        )
        return kwargs

    def redis_client(self, client_class: type = redis.Redis, **defaults: Any):
        """A redis-py client for this URL (redis.Redis, as asgi_redis's own from_url makes)."""
        return client_class(connection_pool=redis.ConnectionPool(**self.connection_kwargs(**defaults)))

    def ssl_context(self) -> Optional[ssl.SSLContext]:
        """The TLS settings of the URL for the standard library; None for redis://."""
        if not self.tls:
            return None
        # The system trust store unless a CA file is named (create_default_context loads it).
        context = ssl.create_default_context(cafile=self.ca_certs)
        # Python 3.13 turned on strict RFC 5280 checks and partial chains; daphne's OpenSSL path and
        # Python 3.11/3.12 have neither, and a URL must be accepted or refused alike everywhere.
        context.verify_flags &= ~(ssl.VERIFY_X509_STRICT | ssl.VERIFY_X509_PARTIAL_CHAIN)
        context.check_hostname = self.check_hostname
        context.verify_mode = CERT_REQS[self.cert_reqs]
        if self.certfile:
            context.load_cert_chain(self.certfile, self.keyfile)
        return context

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
        return {
            "host": self.host,
            "port": self.port,
            "dbid": self.db,
            "password": self.password,
            "username": self.username,
            "ssl_context_factory": self.twisted_tls() or False,
        }


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
    parts = urlsplit(url)
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
    return re.sub(r"^rediss?://\S*: ", "", message)


def tls_failure_hint(reason: str) -> str:
    """What to try when a TLS handshake failed for reason (OpenSSL's words), in parentheses."""
    if "alert certificate required" in reason or "alert bad certificate" in reason:
        return "(the server wants a client certificate: ssl_certfile=PATH&ssl_keyfile=PATH)"
    return "(does the port speak TLS?)"


def _mask_loosely(url: str) -> str:
    # For a URL that does not parse: whatever sits between "user:" and "@" goes.
    return re.sub(r"(//[^/@:]*:)[^@]*@", r"\1***@", url)


def _parse(url: str) -> RedisURL:
    parts = urlsplit(url)
    if parts.scheme not in ("redis", "rediss"):
        raise ValueError("the scheme must be redis:// or rediss://")
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
    timeouts = {}
    for name in ("socket_timeout", "socket_connect_timeout"):
        if name in options:
            try:
                timeouts[name] = float(options[name])
            except ValueError:
                raise ValueError(f"{name}={options[name]!r} is not a number") from None
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
        **timeouts,
    )


# redis-py 2.10.6


class RedisConnection(Connection):
    """redis-py 2.10.6's Connection, with TLS from an ssl.SSLContext, ACL users and one-line errors.

    Each error names the masked URL and the cause: an unknown host, a refused or timed-out
    connection, a certificate that is not trusted or names another host, a TLS handshake that
    fails, a plain connection to a TLS-only port, refused credentials.
    """

    # Also what the pool's repr shows, from its connection kwargs: the masked URL.
    description_format = "RedisConnection<%(redis_url)s>"

    def __init__(self, *, redis_url: RedisURL, ssl_context: Optional[ssl.SSLContext] = None, **kwargs: Any):
        super().__init__(**kwargs)
        self.redis_url = redis_url
        self.username = redis_url.username
        self.ssl_context = ssl_context
        self._description_args = {"redis_url": redis_url.masked}
        self._answered = False

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
        if self.ssl_context is None:
            return sock
        # The handshake is part of connecting: it gets the connect timeout, then commands theirs.
        sock.settimeout(self.socket_connect_timeout)
        try:
            sock = self.ssl_context.wrap_socket(sock, server_hostname=url.host)
        except ssl.SSLCertVerificationError as error:
            sock.close()
            raise redis.exceptions.ConnectionError(
                f"{url}: TLS certificate refused: {error.verify_message} (name the CA that signed it with "
                "ssl_ca_certs=PATH; for a self-signed certificate, ssl_cert_reqs=none)"
            ) from error
        except ssl.SSLError as error:
            sock.close()
            reason = str(error.reason or error)
            raise redis.exceptions.ConnectionError(
                f"{url}: TLS handshake failed: {reason} {tls_failure_hint(reason)}"
            ) from error
        except TimeoutError as error:
            sock.close()
            raise redis.exceptions.TimeoutError(
                f"{url}: no TLS handshake within {self.socket_connect_timeout}s (does the port speak TLS?)"
            ) from error
        except OSError as error:
            sock.close()
            raise redis.exceptions.ConnectionError(
                f"{url}: TLS handshake failed: {error.strerror or error} (does the port speak TLS?)"
            ) from error
        sock.settimeout(self.socket_timeout)
        return sock

    def on_connect(self) -> None:
        # redis-py 2.10.6's own sends AUTH with the password alone, which means the default user;
        # an ACL user needs AUTH user password. The rest is as there: AUTH, then SELECT.
        self._parser.on_connect(self)
        if self.password:
            if self.username:
                self.send_command("AUTH", self.username, self.password)
            else:
                self.send_command("AUTH", self.password)
            reply = self.read_response()
            if reply not in (b"OK", "OK"):
                raise RedisAuthenticationError(f"{self.redis_url}: Redis answered AUTH with {reply!r}")
        if self.db:
            self.send_command("SELECT", self.db)
            reply = self.read_response()
            if reply not in (b"OK", "OK"):
                raise redis.exceptions.ConnectionError(f"{self.redis_url}: Redis answered SELECT with {reply!r}")

    def send_packed_command(self, command: Any) -> None:
        try:
            super().send_packed_command(command)
        except redis.exceptions.ConnectionError as error:
            clear = self._said_clearly(error)
            if clear is error:
                raise
            raise clear from error

    def read_response(self) -> Any:
        try:
            response = super().read_response()
        except redis.exceptions.ResponseError as error:
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
            return error  # Said by _connect or on_connect already.
        if self._answered or isinstance(error, redis.exceptions.TimeoutError):
            return type(error)(f"{url}: {error}")
        if self.ssl_context is None:
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


# txredisapi (Twisted)


def _pem_blocks(path: str, kind: str) -> list:
    with open(path, "rb") as pem:
        data = pem.read()
    return re.findall(rb"-----BEGIN " + kind + rb"-----.+?-----END " + kind + rb"-----", data, re.DOTALL)


def _twisted_trust(ca_certs: str):
    from twisted.internet import ssl as twisted_ssl

    blocks = _pem_blocks(ca_certs, b"CERTIFICATE")
    if not blocks:
        raise ValueError(f"ssl_ca_certs={ca_certs}: no PEM certificate in the file")
    return twisted_ssl.trustRootFromCertificates([twisted_ssl.Certificate.loadPEM(block) for block in blocks])


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
