"""Settings shared by every environment; each value comes from the environment (12-factor)."""

import os
from pathlib import Path

import dj_database_url

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
    # Its ready() makes runworker stop between messages (project/workers.py).
    "project.apps.ProjectConfig",
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

# SQLite by default; several runworker processes write at once, so SQLite waits for
# its lock instead of failing at once with "database is locked".
DATABASES = {
    "default": dj_database_url.config(
        env="DATABASE_URL",
        default="sqlite:///" + str(VAR_DIR / "db.sqlite3"),
        conn_max_age=env_int("DATABASE_CONN_MAX_AGE", 60),
    )
}
if DATABASES["default"]["ENGINE"] in ("django.db.backends.postgresql", "django.db.backends.postgresql_psycopg2"):
    # Django 2.2's backend with the psycopg2 2.9 fix it never received (see the module).
    DATABASES["default"]["ENGINE"] = "project.db.postgresql"
if DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3":
    Path(DATABASES["default"]["NAME"]).parent.mkdir(parents=True, exist_ok=True)
    DATABASES["default"].setdefault("OPTIONS", {})["timeout"] = 30
    # Connections are per thread in a worker; persistent SQLite handles gain nothing.
    DATABASES["default"]["CONN_MAX_AGE"] = 0

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]

LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = True
USE_L10N = True
USE_TZ = True

STATIC_URL = "/static/"
STATIC_ROOT = os.environ.get("DJANGO_STATIC_ROOT", str(BASE_DIR / "staticfiles"))

LOGIN_URL = "/accounts/login/"
LOGIN_REDIRECT_URL = "/chat/"
LOGOUT_REDIRECT_URL = "/"

REDIS_URL = os.environ.get("REDIS_URL", "redis://127.0.0.1:6379/0")
# Several URLs, comma-separated, shard the channel layer over several Redis servers.
REDIS_HOSTS = env_list("REDIS_URL", "redis://127.0.0.1:6379/0")

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
            # Group membership outlives any socket: daphne's websocket timeout is tied
            # to it, so a short value would close healthy sockets.
            "group_expiry": env_int("CHANNEL_LAYER_GROUP_EXPIRY", 86400),
            # Messages a channel holds before sends to it fail. With plain asgi_redis this
            # also bounds a group fan-out: every socket of one daphne shares its reply channel.
            "capacity": env_int("CHANNEL_LAYER_CAPACITY", 1000),
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
            "process_local_capacity": env_int("CHANNEL_LAYER_PROCESS_LOCAL_CAPACITY", 10000),
            # Messages a daphne takes off its reply channel per round trip to Redis.
            "receive_batch_size": env_int("CHANNEL_LAYER_RECEIVE_BATCH_SIZE", 100),
        }
    )

# Bearer token for /ops/channels (project/monitoring.py); unset, only staff logins may read it.
MONITORING_TOKEN = os.environ.get("MONITORING_TOKEN", "")

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
