"""Settings of the peer: Channels and channels_redis with their defaults, on the bench's Redis."""

import os

SECRET_KEY = "bench-peer-not-secret"
DEBUG = False
ALLOWED_HOSTS = ["127.0.0.1", "localhost"]
INSTALLED_APPS = ["channels"]
ASGI_APPLICATION = "peerchat.asgi.application"
USE_TZ = True
DATABASES = {}
CHANNEL_LAYERS = {
    "default": {
        # channels_redis's defaults otherwise: capacity 100, expiry 60, group_expiry 86400.
        "BACKEND": "channels_redis.core.RedisChannelLayer",
        "CONFIG": {"hosts": [os.environ["REDIS_URL"]]},
    }
}
LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "handlers": {"console": {"class": "logging.StreamHandler"}},
    "root": {"handlers": ["console"], "level": "WARNING"},
}
