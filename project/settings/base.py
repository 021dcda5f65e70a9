"""Settings shared by every environment; each value comes from the environment (12-factor)."""

import os
from pathlib import Path

import dj_database_url
from django.core.exceptions import ImproperlyConfigured

from channels1_kit.redis_urls import split_urls, with_cert_reqs

BASE_DIR = Path(__file__).resolve().parent.parent.parent
VAR_DIR = Path(os.environ.get("VAR_DIR", BASE_DIR / "var"))


def env_list(name: str, default: str) -> list:
    return [item.strip() for item in os.environ.get(name, default).split(",") if item.strip()]


def env_int(name: str, default: int) -> int:
    return int(os.environ.get(name, default))


SECRET_KEY = os.environ.get("DJANGO_SECRET_KEY", "")
DEBUG = False
ALLOWED_HOSTS = env_list("DJANGO_ALLOWED_HOSTS", "localhost,127.0.0.1,[::1]")

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "channels",
    # The kit's worker side: graceful stop, Redis outages, the sweep, worker health, ops commands.
    "channels1_kit",
    "pages",
    "liveblog",
    "chat",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    # Serves static files from gunicorn and from daphne's workers alike, so that a
    # Procfile deploy with no web server in front still has the admin's CSS.
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
]

ROOT_URLCONF = "project.urls"
WSGI_APPLICATION = "project.wsgi.application"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.debug",
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
            ],
        },
    },
]

# SQLite by default (make run). Several runworker processes and gunicorn write at once:
# immediate transactions take the write lock first, so a second writer waits for it (up to the
# timeout) instead of failing at once with "database is locked" when two read-then-write
# transactions overlap (an admin publish beside presence joins); WAL lets readers go on beside
# the writer. 30 s is far above the longest wait our fault tests create (a reconnect storm
# re-joining every socket at once). Django 2.2 sites: channels1_kit.backports.sqlite3.
DATABASES = {
    "default": dj_database_url.config(
        env="DATABASE_URL",
        default="sqlite:///" + str(VAR_DIR / "db.sqlite3"),
        # Kept open between messages: a runworker closes its connection after every message
        # otherwise, and reopening costs each message a connect (on SQLite, closing the last
        # connection also checkpoints the WAL). Checked before reuse, so a restarted
        # database server costs one failed check, not a failed message.
        conn_max_age=env_int("DATABASE_CONN_MAX_AGE", 60),
        conn_health_checks=True,
    )
}
if DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3":
    Path(DATABASES["default"]["NAME"]).parent.mkdir(parents=True, exist_ok=True)
    DATABASES["default"].setdefault("OPTIONS", {}).update(
        {"timeout": 30, "transaction_mode": "IMMEDIATE", "init_command": "PRAGMA journal_mode=WAL"}
    )
# The primary keys the migrations created; BigAutoField would take a migration of every table.
DEFAULT_AUTO_FIELD = "django.db.models.AutoField"

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]

LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = True
USE_TZ = True

STATIC_URL = "/static/"
STATIC_ROOT = os.environ.get("DJANGO_STATIC_ROOT", str(BASE_DIR / "staticfiles"))

LOGIN_URL = "/accounts/login/"
LOGIN_REDIRECT_URL = "/chat/"
LOGOUT_REDIRECT_URL = "/"

REDIS_URL = os.environ.get("REDIS_URL", "redis://127.0.0.1:6379/0")
# How to treat the certificate of every rediss:// URL in REDIS_URL that does not say itself
# (none, optional or required; unset: required): Heroku Redis hands out, and rotates, a
# rediss:// URL with a self-signed certificate, so the deploy sets REDIS_SSL_CERT_REQS=none
# instead of editing the URL (docs/deploying.md, "Redis URLs").
REDIS_SSL_CERT_REQS = os.environ.get("REDIS_SSL_CERT_REQS", "")
# Several URLs, comma-separated, shard the channel layer over several Redis servers; the commas
# between the sentinels of a redis+sentinel:// URL stay within it (one sentinel service, one shard).
try:
    REDIS_HOSTS = [with_cert_reqs(url, REDIS_SSL_CERT_REQS) for url in split_urls(REDIS_URL)]
except ValueError as error:
    raise ImproperlyConfigured(f"REDIS_SSL_CERT_REQS={error}") from None

# The longest a WebSocket stays open, in seconds: daphne's --websocket_timeout in the
# Procfile and deploy/supervisor/site.conf, and the default group expiry below.
WEBSOCKET_MAX_AGE = 604800

FANOUT_LAYER = "fanout_layer.FanoutRedisChannelLayer"
CHANNEL_LAYERS = {
    "default": {
        # The project's own layer: asgi_redis that does not drop group messages on a
        # daphne's shared reply channel and fans out in one round trip (see fanout_layer).
        "BACKEND": os.environ.get("CHANNEL_LAYER_BACKEND", FANOUT_LAYER),
        "ROUTING": "project.routing.channel_routing",
        "CONFIG": {
            "hosts": REDIS_HOSTS,
            "prefix": os.environ.get("CHANNEL_LAYER_PREFIX", "asgi:"),
            # Seconds a message waits in a channel before it expires unread.
            "expiry": env_int("CHANNEL_LAYER_EXPIRY", 60),
            # Seconds a group membership lasts. A socket open longer would silently stop
            # hearing its groups, so daphne closes sockets at this age (its
            # --websocket_timeout, which the Procfile and deploy/supervisor/site.conf set
            # to the same 604800) and the page reconnects and catches up. A week, so that
            # a page left open is not dropped every day; gone sockets' memberships are
            # swept well before (SOCKET_SWEEP_SECONDS).
            "group_expiry": env_int("CHANNEL_LAYER_GROUP_EXPIRY", WEBSOCKET_MAX_AGE),
            # Messages a channel holds before sends to it fail. With plain asgi_redis this
            # also bounds a group fan-out: every socket of one daphne shares its reply channel.
            "capacity": env_int("CHANNEL_LAYER_CAPACITY", 1000),
            # A Redis that stops answering (a half-open connection) must not hang a worker
            # or a request forever; longer than the layer's 5 s BLPOP.
            "connection_kwargs": {
                "socket_connect_timeout": env_int("REDIS_CONNECT_TIMEOUT", 5),
                "socket_timeout": env_int("REDIS_SOCKET_TIMEOUT", 15),
            },
        },
    },
}
if CHANNEL_LAYERS["default"]["BACKEND"] == FANOUT_LAYER:
    # Keys only this layer takes; asgi_redis would refuse them.
    CHANNEL_LAYERS["default"]["CONFIG"].update(
        {
            # Room in a daphne's shared reply channel: one group message puts an entry
            # there for each of its sockets in the group, so it needs far more than
            # `capacity`. Messages past it are left out and logged, never silently.
            # 100,000: a daphne left holding 10,000 sockets while the other restarts has a
            # whole channel's worth behind every post at 10,000 (make bench's rolling restart
            # lost posts to it); an entry is about 50 bytes of Redis.
            "process_local_capacity": env_int("CHANNEL_LAYER_PROCESS_LOCAL_CAPACITY", 100000),
            # Messages a daphne takes off its reply channel per round trip to Redis.
            "receive_batch_size": env_int("CHANNEL_LAYER_RECEIVE_BATCH_SIZE", 100),
        }
    )

# The kit's settings (docs/adopting.md has them all), from the site's environment variables.
# Faults and hostile input (README, docs/reliability.md, docs/security.md).
# A WebSocket frame larger than this never enters Redis: the client gets "frame-too-large".
# HTTP sessions in the database, Django's engine with the read a WebSocket handshake makes as a
# plain statement (channels1_kit/db_sessions.py: same table and rows, so switching logs no one out).
SESSION_ENGINE = "channels1_kit.db_sessions"
# Channel sessions (channel_session, enforce_ordering, the chat's login) in the layer's Redis:
# every frame reads and writes its socket's session, which in the database is a committed
# write per frame (channels1_kit/channel_sessions.py). HTTP sessions stay in the database.
# CHANNEL_SESSION_ENGINE=django.contrib.sessions.backends.db puts them back there.
CHANNEL_SESSION_ENGINE = os.environ.get("CHANNEL_SESSION_ENGINE", "channels1_kit.channel_sessions")
# There, a socket's session expires this many seconds after its last write unless its daphne
# renews it (every open socket's, each heartbeat it is due); its disconnect deletes it sooner.
CHANNELS1_KIT_CHANNEL_SESSION_SECONDS = env_int("CHANNEL_SESSION_SECONDS", 300)
CHANNELS1_KIT_MAX_FRAME_BYTES = env_int("WEBSOCKET_MAX_FRAME_BYTES", 65536)
# A socket whose frames have been parked this long, waiting for one that was lost with a
# killed worker, is closed so that it reconnects (channels1_kit/websocket.py close_if_stalled).
# Less than CHANNEL_LAYER_EXPIRY, after which the parked frames themselves expire.
CHANNELS1_KIT_ORDER_STALL_SECONDS = env_int("WEBSOCKET_ORDER_STALL_SECONDS", 30)
# Per socket, enforced by daphne before a frame reaches Redis (channels1_kit/floods.py): this
# many frames at once, then this many a second; a socket refused FLOOD_CLOSE_AFTER frames
# within 10 s is closed with 4429. Chat's own limits (below) stay, for what passes.
CHANNELS1_KIT_FRAME_BURST = env_int("WEBSOCKET_FRAME_BURST", 30)
CHANNELS1_KIT_FRAME_RATE = env_int("WEBSOCKET_FRAME_RATE", 10)
CHANNELS1_KIT_FLOOD_CLOSE_AFTER = env_int("WEBSOCKET_FLOOD_CLOSE_AFTER", 100)
# Per client, enforced by daphne before Redis (channels1_kit/client_budgets.py): a client is a
# browser session and, always, its address, which stands for WEBSOCKET_ADDRESS_CLIENTS sessions
# (people behind one NAT). Far above what a person does: a user with a dozen tabs that all
# reconnect after a deploy stays within them. A load test from one address lifts them with 0.
CHANNELS1_KIT_HANDSHAKE_BURST = env_int("WEBSOCKET_HANDSHAKE_BURST", 20)
CHANNELS1_KIT_HANDSHAKE_RATE = env_int("WEBSOCKET_HANDSHAKE_RATE", 1)
CHANNELS1_KIT_HANDSHAKE_AWAY_AFTER = env_int("WEBSOCKET_HANDSHAKE_AWAY_AFTER", 20)
CHANNELS1_KIT_CLIENT_SOCKETS = env_int("WEBSOCKET_CLIENT_SOCKETS", 20)
CHANNELS1_KIT_CLIENT_FRAME_BURST = env_int("WEBSOCKET_CLIENT_FRAME_BURST", 100)
CHANNELS1_KIT_CLIENT_FRAME_RATE = env_int("WEBSOCKET_CLIENT_FRAME_RATE", 20)
CHANNELS1_KIT_CLIENT_AWAY_SECONDS = env_int("WEBSOCKET_CLIENT_AWAY_SECONDS", 60)
CHANNELS1_KIT_ADDRESS_CLIENTS = env_int("WEBSOCKET_ADDRESS_CLIENTS", 10)
# Every daphne lists its open sockets in Redis this often (channels1_kit/interface.py), and
# notices a Redis that restarted empty; a daphne silent for three times as long is gone.
CHANNELS1_KIT_HEARTBEAT_SECONDS = env_int("SOCKET_HEARTBEAT_SECONDS", 10)
# daphne, on SIGTERM: seconds over which it closes its sockets in slices, each page told when to
# come back (4012). Inside the 30 s Heroku and deploy/supervisor give before SIGKILL.
CHANNELS1_KIT_DRAIN_SECONDS = env_int("DAPHNE_DRAIN_SECONDS", 20)
# daphne: handshakes waiting for a worker at once, past which a new one is told when to come back
# (4013) rather than queue past daphne's 5 s connect timeout into work no page waits for.
CHANNELS1_KIT_CONNECT_PENDING_LIMIT = env_int("DAPHNE_CONNECT_PENDING_LIMIT", 200)
# How often each worker removes the presence and group memberships of gone sockets
# (channels1_kit/sockets.py); 0 turns it off (`manage.py sweep_sockets` does one sweep).
CHANNELS1_KIT_SWEEP_SECONDS = env_int("SOCKET_SWEEP_SECONDS", 30)
# How far apart the clocks of the daphne and worker hosts may be.
CHANNELS1_KIT_CLOCK_SKEW_SECONDS = env_int("SOCKET_CLOCK_SKEW_SECONDS", 10)
# A chat member whose last socket went stays counted this long, so that a page reconnecting
# within it (a deploy, a network blip) is no "left" and "joined" (channels1_kit/presence.py).
CHANNELS1_KIT_PRESENCE_GRACE_SECONDS = env_int("PRESENCE_GRACE_SECONDS", 15)
# Per chat socket, in any window of CHAT_RATE_LIMIT_SECONDS: at most this many messages
# sent, and this many joins and leaves; past that a frame gets "rate-limited".
CHAT_RATE_LIMIT_SECONDS = env_int("CHAT_RATE_LIMIT_SECONDS", 10)
CHAT_RATE_LIMIT_MESSAGES = env_int("CHAT_RATE_LIMIT_MESSAGES", 10)
CHAT_RATE_LIMIT_JOINS = env_int("CHAT_RATE_LIMIT_JOINS", 20)

# Files in one multipart request before Django answers 400 (CVE-2023-24580, docs/security.md);
# Django's own setting, with its default, still overridable from the environment.
DATA_UPLOAD_MAX_NUMBER_FILES = env_int("DATA_UPLOAD_MAX_NUMBER_FILES", 100)

# Bearer token for /ops/channels (channels1_kit/monitoring.py); unset, only staff logins may read it.
CHANNELS1_KIT_MONITORING_TOKEN = os.environ.get("MONITORING_TOKEN", "")

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {
        "plain": {"format": "%(asctime)s %(levelname)s %(process)d %(name)s: %(message)s"},
    },
    "handlers": {
        "console": {"class": "logging.StreamHandler", "formatter": "plain"},
    },
    "root": {"handlers": ["console"], "level": os.environ.get("DJANGO_LOG_LEVEL", "INFO")},
    "loggers": {
        "django.db.backends": {"level": "WARNING"},
    },
}
