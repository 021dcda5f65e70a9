"""Settings of the Channels 1 site of tests/kit/channels1, for Django 2.2, 5.2 and 6.1 alike.

Every process of one site sees the same SQLite file (CHANNELS1_SITE_DIR) and Redis (REDIS_URL);
CHANNELS1_SITE_PREFIX gives a test's workers a layer of their own on that Redis.
"""

import os
from pathlib import Path

SECRET_KEY = "channels1-site-test-only-insecure-key"
DEBUG = False
ALLOWED_HOSTS = ["127.0.0.1", "localhost"]

INSTALLED_APPS = [
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "channels",
    # The delay server as Channels 1 documents it: one line, its own app and its rundelay command.
    "channels.delay",
    "tests.kit.channels1.things.apps.ThingsConfig",
]

ROOT_URLCONF = "tests.kit.channels1.urls"

_site_dir = os.environ.get("CHANNELS1_SITE_DIR")
DATABASES = {
    "default": {
        "ENGINE": "django.db.backends.sqlite3",
        "NAME": str(Path(_site_dir) / "db.sqlite3") if _site_dir else ":memory:",
        # rundelay, a worker and the test's own commands write to one file: wait for the lock.
        "OPTIONS": {"timeout": 20},
    }
}

# Set explicitly: the defaults differ between Django 2.2 and 5.2.
USE_TZ = True
DEFAULT_AUTO_FIELD = "django.db.models.AutoField"

CHANNEL_LAYERS = {
    "default": {
        "BACKEND": "fanout_layer.FanoutRedisChannelLayer",
        "CONFIG": {
            "hosts": [os.environ.get("REDIS_URL", "redis://127.0.0.1:6379/0")],
            "prefix": os.environ.get("CHANNELS1_SITE_PREFIX", "channels1-site:"),
        },
        "ROUTING": "tests.kit.channels1.routing.channel_routing",
    }
}

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "handlers": {"console": {"class": "logging.StreamHandler"}},
    "root": {"handlers": ["console"], "level": "WARNING"},
}
