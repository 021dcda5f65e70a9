"""Django 2.2's PostgreSQL backend, made to work with psycopg2 2.9 (for sites still on 2.2).

psycopg2 2.9 hands the tzinfo factory a timedelta instead of minutes, and Django 2.2's
factory (fixed only in 3.1+) compares it with 0, so every datetime read fails with
"database connection isn't set to UTC". psycopg2 2.8, which Django 2.2 knew, has no
wheels for Python 3.11. A Django 2.2 site names it as its ENGINE: "channels1_kit.backports.postgresql".
Django 3.1+ has the fix; there the stock backend is the one to use.
"""

import datetime

from django.conf import settings
from django.db.backends.postgresql import base
from django.utils.timezone import utc


def utc_tzinfo_factory(offset) -> datetime.tzinfo:
    if offset not in (0, datetime.timedelta(0)):
        raise AssertionError("database connection isn't set to UTC")
    return utc


class DatabaseWrapper(base.DatabaseWrapper):
    def create_cursor(self, name=None):
        cursor = super().create_cursor(name)
        cursor.tzinfo_factory = utc_tzinfo_factory if settings.USE_TZ else None
        return cursor
