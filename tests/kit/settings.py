"""Settings of the kit's own Channels 1 site (tests/kit/site), for Django 2.2 and 5.2 alike.

Every process of one site (daphne, runworker, migrate) must see the same database and Redis,
so both come from the environment: KIT_SITE_DIR holds the SQLite file, REDIS_URL names the
channel layer's Redis (tests/kit/test_site.py starts a private one on a free port). Without
KIT_SITE_DIR (a pytest process that only imports the site) the database lives in memory.
"""

import os
from pathlib import Path

SECRET_KEY = "kit-site-test-only-insecure-key"
DEBUG = False
ALLOWED_HOSTS = ["127.0.0.1", "localhost"]

INSTALLED_APPS = [
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "channels",
    "tests.kit.site.echo",
]

MIDDLEWARE = [
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
]

ROOT_URLCONF = "tests.kit.site.urls"

_site_dir = os.environ.get("KIT_SITE_DIR")
DATABASES = {
    "default": {
        "ENGINE": "django.db.backends.sqlite3",
        "NAME": str(Path(_site_dir) / "db.sqlite3") if _site_dir else ":memory:",
        # Two workers write channel sessions to one file; wait for the lock instead of failing.
        "OPTIONS": {"timeout": 20},
    }
}
# Both workers read the login's session, so it lives in the database (the kit's engine: Django's, with
# a cheaper read); the channel sessions live in the layer's Redis (channels1_kit/channel_sessions.py).
SESSION_ENGINE = "channels1_kit.db_sessions"
CHANNEL_SESSION_ENGINE = "channels1_kit.channel_sessions"

# Set explicitly: the defaults differ between Django 2.2 and 5.2.
USE_TZ = True
DEFAULT_AUTO_FIELD = "django.db.models.AutoField"
PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]

CHANNEL_LAYERS = {
    "default": {
        "BACKEND": "fanout_layer.FanoutRedisChannelLayer",
        # The conventional local Redis, as in the project's settings, for running the site by hand.
        "CONFIG": {"hosts": [os.environ.get("REDIS_URL", "redis://127.0.0.1:6379/0")], "prefix": "kit-site:"},
        "ROUTING": "tests.kit.site.routing.channel_routing",
    }
}

# Tracebacks from the workers' views and consumers land in their logs, which a failing test prints
# (with DEBUG off Django logs nothing to the console).
LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "handlers": {"console": {"class": "logging.StreamHandler"}},
    "root": {"handlers": ["console"], "level": "WARNING"},
}
