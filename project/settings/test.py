"""The test suite: fast hashing, the same environment-driven database and Redis as dev."""

from .base import *  # noqa: F401,F403
from .base import os

DEBUG = False
SECRET_KEY = os.environ.get("DJANGO_SECRET_KEY") or "test-only-insecure-key"
PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
# The processes the integration tests start serve static files without collectstatic.
WHITENOISE_USE_FINDERS = True
