"""A small Channels 1 site that adopts channels1_kit through its settings only (tests/kit/test_wheel_site.py).

WHEELSITE_DIR holds the SQLite file; REDIS_URL names the channel layer's Redis.
"""

import os
from pathlib import Path

import django

SECRET_KEY = "wheelsite-test-only-insecure-key"
DEBUG = False
ALLOWED_HOSTS = ["127.0.0.1", "localhost"]

INSTALLED_APPS = [
    "django.contrib.contenttypes",
    "django.contrib.auth",
    "django.contrib.sessions",
    "channels",
    "channels1_kit",
    "chat",
    "posts",
]

ROOT_URLCONF = "wheelsite.urls"

_db = {
    "NAME": str(Path(os.environ.get("WHEELSITE_DIR", ".")) / "db.sqlite3"),
    "CONN_MAX_AGE": 0,
}
if django.VERSION >= (5, 1):
    _db["ENGINE"] = "django.db.backends.sqlite3"
    _db["OPTIONS"] = {"timeout": 30, "transaction_mode": "IMMEDIATE", "init_command": "PRAGMA journal_mode=WAL"}
else:
    # Django 2.2: the kit's backport does immediate transactions, WAL and the busy timeout.
    _db["ENGINE"] = "channels1_kit.backports.sqlite3"
    _db["OPTIONS"] = {"timeout": 30}
DATABASES = {"default": _db}

USE_TZ = True
DEFAULT_AUTO_FIELD = "django.db.models.AutoField"

CHANNEL_LAYERS = {
    "default": {
        "BACKEND": "fanout_layer.FanoutRedisChannelLayer",
        "CONFIG": {"hosts": [os.environ["REDIS_URL"]], "prefix": "wheelsite:", "capacity": 1000},
        "ROUTING": "wheelsite.routing.channel_routing",
    }
}

CHANNELS1_KIT_HEARTBEAT_SECONDS = 1
CHANNELS1_KIT_SWEEP_SECONDS = 1
CHANNELS1_KIT_CLOCK_SKEW_SECONDS = 1
CHANNELS1_KIT_FRAME_BURST = 1000
CHANNELS1_KIT_FRAME_RATE = 1000
# Its tests open up to 300 sockets from one address at once, a load test: the per-client budgets
# (handshakes, sockets, frames; channels1_kit/client_budgets.py) are lifted, as make bench does.
CHANNELS1_KIT_HANDSHAKE_RATE = 0
CHANNELS1_KIT_CLIENT_SOCKETS = 0
CHANNELS1_KIT_CLIENT_FRAME_RATE = 0

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "handlers": {"console": {"class": "logging.StreamHandler"}},
    "root": {"handlers": ["console"], "level": "WARNING"},
    "loggers": {"channels1_kit": {"level": "INFO"}},
}
