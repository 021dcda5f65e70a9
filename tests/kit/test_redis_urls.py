"""channels1_kit.redis_urls without a server: what each URL form means to redis-py and to txredisapi,
that no string form shows the password, and that a mistyped URL fails at once, naming itself."""

import ssl

import pytest
import redis

from channels1_kit import redis_urls
from channels1_kit.redis_urls import RedisAuthenticationError, RedisConnection, parse


def test_a_plain_url_with_a_password_means_what_redis_py_made_of_it():
    url = parse("redis://:s3cret@cache.internal:6380/2")

    assert (url.host, url.port, url.db, url.username, url.password, url.tls) == (
        "cache.internal",
        6380,
        2,
        None,
        "s3cret",
        False,
    )
    assert url.redis_client().connection_pool.connection_class is RedisConnection
    assert url.twisted_tls() is None
    assert parse("redis://127.0.0.1").port == 6379
    assert parse("redis://127.0.0.1").db == 0
    assert parse("redis://127.0.0.1:6379?db=3").db == 3


def test_a_plain_url_makes_asgi_redis_the_same_pool_as_before_with_our_connection_class():
    client = parse("redis://:s3cret@127.0.0.1:6380/1").redis_client(socket_timeout=15, socket_connect_timeout=5)
    stock = redis.Redis.from_url("redis://:s3cret@127.0.0.1:6380/1", socket_timeout=15, socket_connect_timeout=5)

    ours, theirs = client.connection_pool.connection_kwargs, stock.connection_pool.connection_kwargs
    # A redis.Redis, on the kit's short command path (channels1_kit.redis_client).
    assert isinstance(client, redis.Redis) and type(stock) is redis.Redis
    # What the URL and the caller say reaches the connections as from_url would pass it; the rest
    # are redis-py 8's own additions and the 2.10.6 defaults the kit keeps (RedisURL.connection_kwargs).
    said = ("host", "port", "db", "password", "socket_timeout", "socket_connect_timeout")
    assert {key: ours[key] for key in said} == {key: theirs[key] for key in said}
    assert client.connection_pool.connection_class is RedisConnection
    assert issubclass(RedisConnection, redis.connection.Connection)


def test_an_acl_user_and_percent_encoded_credentials_are_decoded():
    url = parse("rediss://app%40site:p%40ss%3Aw%2Frd@cache.example.com:6379/0")

    assert url.username == "app@site"
    assert url.password == "p@ss:w/rd"
    assert url.txredisapi_kwargs()["username"] == "app@site"
    connection = url.redis_client().connection_pool.make_connection()
    assert (connection.username, connection.password) == ("app@site", "p@ss:w/rd")


@pytest.mark.parametrize(
    "url",
    [
        "rediss://user:hunter2@cache.example.com:6379/0?ssl_cert_reqs=none",
        "redis://:hunter2@127.0.0.1:6379/0",
        "rediss://:hunter2@[::1]:6380/4",
    ],
)
def test_no_string_form_shows_the_password(url):
    parsed = parse(url)
    client = parsed.redis_client()
    connection = client.connection_pool.make_connection()

    for shown in (str(parsed), repr(parsed), parsed.masked, repr(connection), repr(client.connection_pool)):
        assert "hunter2" not in shown
    assert ":***@" in str(parsed)
    assert redis_urls.mask(url) == parsed.masked
    # A URL that does not parse is masked too, in its own error.
    assert "hunter2" not in redis_urls.mask("redis://:hunter2@host:notaport/0")
    with pytest.raises(ValueError) as refused:
        parse("redis://user:hunter2@host:notaport/0")
    assert "hunter2" not in str(refused.value) and "***" in str(refused.value)


def test_the_masked_form_is_the_url_with_port_database_and_tls_options():
    assert parse("redis://127.0.0.1").masked == "redis://127.0.0.1:6379/0"
    assert parse("redis://app:pw@h:1/2").masked == "redis://app:***@h:1/2"
    assert parse("rediss://:pw@h?ssl_cert_reqs=none").masked == "rediss://:***@h:6379/0?ssl_cert_reqs=none"
    assert (
        parse("rediss://h/0?ssl_ca_certs=/etc/ca.pem").masked
        == "rediss://h:6379/0?ssl_cert_reqs=required&ssl_ca_certs=/etc/ca.pem"
    )
    assert parse("rediss://h?ssl_check_hostname=false").masked.endswith(
        "?ssl_cert_reqs=required&ssl_check_hostname=false"
    )
    # Every option the masked form shows means the same again.
    url = parse("rediss://u:pw@h:1/2?ssl_cert_reqs=optional&ssl_ca_certs=/c.pem&ssl_check_hostname=true")
    assert parse(url.masked.replace("***", "pw")) == url


def _tls_connection(url):
    """The redis-py connection a rediss:// URL makes: the TLS settings redis-py will use."""
    connection = url.redis_client().connection_pool.make_connection()
    assert isinstance(connection, redis.connection.SSLConnection)
    return connection


def test_rediss_verifies_against_the_system_trust_store_and_checks_the_host_name_by_default():
    url = parse("rediss://:pw@cache.example.com:6379")
    connection = _tls_connection(url)

    assert url.cert_reqs == "required" and url.check_hostname
    assert connection.cert_reqs == ssl.CERT_REQUIRED
    assert connection.check_hostname is True
    # No CA file named: redis-py's context is ssl.create_default_context's, the system's store.
    assert connection.ca_certs is None and connection.ca_path is None and connection.ca_data is None
    # Python 3.13's strict checks off, as daphne's OpenSSL path has none.
    assert ssl.VERIFY_X509_STRICT in connection.ssl_exclude_verify_flags
    from twisted.internet._sslverify import ClientTLSOptions

    assert isinstance(url.twisted_tls(), ClientTLSOptions)


def test_ssl_cert_reqs_none_encrypts_without_verifying_as_heroku_redis_needs():
    url = parse("rediss://:pw@ec2-1-2-3-4.compute-1.amazonaws.com:12345?ssl_cert_reqs=none")
    connection = _tls_connection(url)

    assert connection.cert_reqs == ssl.CERT_NONE
    assert connection.check_hostname is False
    creator = url.twisted_tls()
    options = creator._options
    assert options.verify is False
    from twisted.internet.interfaces import IOpenSSLClientConnectionCreator

    assert IOpenSSLClientConnectionCreator.providedBy(creator)


def test_optional_verifies_the_chain_but_not_the_host_name_unless_asked():
    optional = parse("rediss://h?ssl_cert_reqs=optional")
    assert _tls_connection(optional).cert_reqs == ssl.CERT_OPTIONAL
    assert _tls_connection(optional).check_hostname is False
    assert optional.twisted_tls()._options.verify is True
    assert _tls_connection(parse("rediss://h?ssl_cert_reqs=optional&ssl_check_hostname=true")).check_hostname
    assert not _tls_connection(parse("rediss://h?ssl_check_hostname=false")).check_hostname


@pytest.mark.parametrize(
    ("url", "complaint"),
    [
        ("http://127.0.0.1:6379", "redis:// or rediss://"),
        ("redis://:pw@", "no host"),
        ("rediss://h?ssl_cert_reqs=maybe", "expected none, optional or required"),
        ("rediss://h?ssl_cert_req=none", "unknown option(s) ssl_cert_req"),
        ("redis://h?ssl_cert_reqs=none", "only apply to rediss://"),
        ("rediss://h?ssl_cert_reqs=none&ssl_check_hostname=true", "needs ssl_cert_reqs=optional or required"),
        ("rediss://h?ssl_check_hostname=perhaps", "expected true or false"),
        ("rediss://h?ssl_keyfile=/k.pem", "ssl_keyfile needs ssl_certfile"),
        ("redis://h/zero", "is not a number"),
        ("redis://user@h", "a user name needs a password"),
        ("rediss+sentinel://h1,h2/mymaster", "TLS with Sentinel is not supported"),
        ("redis+sentinel://h1,h2/mymaster?ssl_cert_reqs=none", "TLS with Sentinel is not supported"),
        ("redis+sentinel://h1,h2", "no service name"),
        ("redis+sentinel://h1:port/mymaster", "is not a number"),
        ("redis+sentinel://h1/mymaster/zero", "is not a number"),
        ("redis+sentinel://h1/mymaster?sentinel_pasword=x", "unknown option(s) sentinel_pasword"),
        ("redis+sentinel://h1/mymaster?sentinel_username=u", "sentinel_username needs sentinel_password"),
        ("redis+sentinel://user@h1/mymaster", "a user name needs a password"),
        ("redis://h1:6379,h2:6379/0", "several sentinels need redis+sentinel://"),
    ],
)
def test_a_mistyped_url_fails_at_once_saying_what_is_wrong(url, complaint):
    with pytest.raises(ValueError) as refused:
        parse(url)

    assert complaint in str(refused.value)


def test_a_ca_file_is_trusted_on_both_paths(tmp_path):
    from tools.processes import RedisTLS

    tls = RedisTLS(tmp_path)
    url = parse(f"rediss://127.0.0.1:6380?ssl_ca_certs={tls.ca_file}")

    assert _tls_connection(url).ca_certs == str(tls.ca_file)
    assert url.twisted_tls() is not None
    empty = tmp_path / "empty.pem"
    empty.write_text("not a certificate\n")
    with pytest.raises(ValueError, match="no PEM certificate"):
        parse(f"rediss://127.0.0.1:6380?ssl_ca_certs={empty}").twisted_tls()


@pytest.mark.parametrize(
    "message",
    [
        "WRONGPASS invalid username-password pair or user is disabled.",
        "NOAUTH Authentication required.",
        "Protocol error: unauthenticated multibulk length",
        "invalid password",
        "ERR AUTH <password> called without any password configured for the default user.",
        "NOPERM this user has no permissions to run the 'eval' command",
    ],
)
def test_every_way_redis_refuses_credentials_is_recognized(message):
    assert redis_urls.is_auth_refusal(redis.exceptions.ResponseError(message))
    assert redis_urls.is_auth_refusal(message)


def test_other_errors_are_not_taken_for_refused_credentials():
    assert not redis_urls.is_auth_refusal(redis.exceptions.ResponseError("WRONGTYPE Operation against a key"))
    assert not redis_urls.is_auth_refusal(redis.exceptions.ResponseError("ERR unknown command 'FOO'"))
    # Refused credentials are a ConnectionError too: code riding out an outage rides this out.
    assert issubclass(RedisAuthenticationError, redis.exceptions.ConnectionError)
    assert issubclass(RedisAuthenticationError, redis.exceptions.AuthenticationError)


def test_an_error_message_without_its_url_is_the_cause_alone():
    message = "rediss://:***@h:6379/0?ssl_cert_reqs=none: Redis refused the credentials: WRONGPASS x"
    assert redis_urls.without_url(message) == "Redis refused the credentials: WRONGPASS x"
    assert redis_urls.without_url("Connection refused") == "Connection refused"


def test_the_layer_shows_its_hosts_masked():
    from fanout_layer import FanoutRedisChannelLayer

    layer = FanoutRedisChannelLayer(hosts=["rediss://app:hunter2@127.0.0.1:1/0?ssl_cert_reqs=none"])

    assert "hunter2" not in str(layer)
    assert "rediss://app:***@127.0.0.1:1/0?ssl_cert_reqs=none" in str(layer)


# -- REDIS_SSL_CERT_REQS: a default for URLs the platform hands out -------------------------


def test_a_default_cert_reqs_goes_on_a_rediss_url_that_names_none_as_heroku_hands_it_out():
    heroku = "rediss://:p%40ss@ec2-1-2-3-4.compute-1.amazonaws.com:12345"

    url = redis_urls.with_cert_reqs(heroku, "none")

    assert url == heroku + "?ssl_cert_reqs=none"
    parsed = parse(url)
    assert (parsed.host, parsed.port, parsed.password, parsed.cert_reqs) == (
        "ec2-1-2-3-4.compute-1.amazonaws.com",
        12345,
        "p@ss",
        "none",
    )
    assert _tls_connection(parsed).cert_reqs == ssl.CERT_NONE
    assert parsed.twisted_tls()._options.verify is False
    # Beside the URL's other options; case and spaces as a config var may have them.
    assert redis_urls.with_cert_reqs("rediss://h:1/2?ssl_ca_certs=/ca.pem", " Optional ") == (
        "rediss://h:1/2?ssl_ca_certs=/ca.pem&ssl_cert_reqs=optional"
    )
    assert parse(redis_urls.with_cert_reqs("rediss://u:pw@[::1]:6380/0", "required")).cert_reqs == "required"


@pytest.mark.parametrize("own", ["none", "optional", "required"])
def test_the_urls_own_ssl_cert_reqs_wins_over_the_default(own):
    url = f"rediss://:pw@cache.example.com:6380/0?ssl_cert_reqs={own}"

    for default in ("none", "optional", "required"):
        assert redis_urls.with_cert_reqs(url, default) == url
        assert parse(redis_urls.with_cert_reqs(url, default)).cert_reqs == own


def test_a_default_cert_reqs_leaves_plain_urls_and_an_unset_default_leaves_every_url_alone():
    for plain in ("redis://:pw@127.0.0.1:6379/0", "redis://app:pw@cache:6380", "unix:///run/redis.sock"):
        assert redis_urls.with_cert_reqs(plain, "none") == plain
    for unset in ("", None, "  "):
        assert redis_urls.with_cert_reqs("rediss://:pw@h:1", unset) == "rediss://:pw@h:1"
    assert parse(redis_urls.with_cert_reqs("rediss://:pw@h:1", "")).cert_reqs == "required"


def test_a_mistyped_default_cert_reqs_is_refused_without_naming_the_url():
    with pytest.raises(ValueError) as refused:
        redis_urls.with_cert_reqs("rediss://:hunter2@h:1", "off")

    assert str(refused.value) == "'off': expected none, optional or required"
    assert "hunter2" not in str(refused.value)


def test_a_url_given_its_default_cert_reqs_shows_masked_in_the_layer():
    from fanout_layer import FanoutRedisChannelLayer

    url = redis_urls.with_cert_reqs("rediss://:hunter2@127.0.0.1:1", "none")
    layer = FanoutRedisChannelLayer(hosts=[url])

    assert "hunter2" not in str(layer) and "hunter2" not in redis_urls.mask(url) and "hunter2" not in repr(parse(url))
    assert "rediss://:***@127.0.0.1:1/0?ssl_cert_reqs=none" in str(layer)


# Sentinel


def test_a_sentinel_url_names_the_sentinels_the_service_and_the_data_servers_credentials():
    url = parse("redis+sentinel://app:p%40ss@10.0.0.1:26380,sentinel-b,[::1]:26381/mymaster/2?sentinel_password=spw")

    assert url.is_sentinel
    assert url.sentinels == (("10.0.0.1", 26380), ("sentinel-b", 26379), ("::1", 26381))
    assert (url.service, url.db, url.username, url.password) == ("mymaster", 2, "app", "p@ss")
    assert (url.sentinel_username, url.sentinel_password) == (None, "spw")
    sentinels = url.sentinel()
    assert [client.connection_pool.connection_kwargs["port"] for client in sentinels.sentinels] == [26380, 26379, 26381]
    assert {client.connection_pool.connection_kwargs["password"] for client in sentinels.sentinels} == {"spw"}
    assert url.sentinel() is sentinels
    assert parse("redis+sentinel://h/mymaster").db == 0
    client = url.redis_client(socket_timeout=15)
    assert isinstance(client.connection_pool, redis_urls.SentinelConnectionPool)
    assert client.connection_pool.connection_class is redis_urls.SentinelRedisConnection


def test_a_sentinel_url_masks_both_passwords_everywhere():
    text = "redis+sentinel://app:datapw@h1:26379,h2:26379/mymaster/0?sentinel_username=watch&sentinel_password=sentpw"
    url = parse(text)

    for shown in (str(url), repr(url), redis_urls.mask(text), redis_urls.mask(text.replace("/mymaster", ""))):
        assert "datapw" not in shown and "sentpw" not in shown, shown
    assert str(url) == (
        "redis+sentinel://app:***@h1:26379,h2:26379/mymaster/0?sentinel_username=watch&sentinel_password=***"
    )
    assert redis_urls.without_url(f"{url}: no sentinel named the master") == "no sentinel named the master"


def test_the_commas_between_sentinels_do_not_separate_shards():
    sentinels = "redis+sentinel://h1:26379,h2:26379,h3:26379/mymaster/0"

    assert redis_urls.split_urls(sentinels) == [sentinels]
    assert redis_urls.split_urls(f"redis://a:6379/0, {sentinels} ,rediss://:pw@b:6380/0,") == [
        "redis://a:6379/0",
        sentinels,
        "rediss://:pw@b:6380/0",
    ]
    # A plain URL's stray comma is not glued to it: parse says what is wrong.
    assert redis_urls.split_urls("redis://a:6379/0,b:6379") == ["redis://a:6379/0", "b:6379"]


def test_no_sentinel_that_answers_is_one_connection_error_naming_each(monkeypatch):
    import socket as sockets

    with sockets.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    url = parse(f"redis+sentinel://:pw@127.0.0.1:{port},127.0.0.1:{port}/mymaster/0?sentinel_password=spw")
    client = url.redis_client()

    with pytest.raises(redis.exceptions.ConnectionError) as error:
        client.ping()
    message = str(error.value)
    assert message.startswith(f"redis+sentinel://:***@127.0.0.1:{port},")
    assert "no sentinel named the master of 'mymaster'" in message
    # What each sentinel answered, in the kit's words, with the sentinels' password masked.
    assert message.count(f"redis://:***@127.0.0.1:{port}/0: cannot connect (Connection refused)") >= 2
    assert "spw" not in message and ":pw@" not in message
