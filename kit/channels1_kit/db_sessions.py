"""Django's database sessions, with the read a handshake makes made cheap.

Every WebSocket connect of a logged-in page reads its login's session (channels'
``http_session``). With ``django.contrib.sessions.backends.db`` that read is an ORM query whose
building cost a worker more than running it: 14% of a worker's time over a crowd's connects and
joins. This engine is Django's own database engine (same table, same rows, same encoding, writes
untouched), with only the read by key written once per process as a plain statement
(channels1_kit.statements): switching to it or back logs no one out.

    SESSION_ENGINE = "channels1_kit.db_sessions"
"""

import functools
from typing import NamedTuple, Optional

from django.contrib.sessions.backends import db
from django.db import connections
from django.db.models import Model
from django.utils import timezone

from . import statements


class _Reader(NamedTuple):
    sql: str
    columns: statements.Columns
    attnames: list
    expire_date: object


@functools.cache
def _reader(model: type, alias: str) -> _Reader:
    connection = connections[alias]
    meta = model._meta
    fields = list(meta.concrete_fields)
    columns = statements.columns(fields, connection=connection)
    quote = connection.ops.quote_name
    table = quote(meta.db_table)
    key, expire_date = meta.get_field("session_key"), meta.get_field("expire_date")
    sql = (
        f"SELECT {columns.sql} FROM {table} "
        f"WHERE {table}.{quote(key.column)} = %s AND {table}.{quote(expire_date.column)} > %s"
    )
    return _Reader(sql, columns, [field.attname for field in fields], expire_date)


class SessionStore(db.SessionStore):
    def _get_session_from_db(self) -> Optional[Model]:
        model = self.model
        if model is not db.SessionStore.get_model_class():
            # A subclass with a model of its own: the ORM's read, as Django does it.
            return super()._get_session_from_db()
        alias = model._default_manager.db
        reader = _reader(model, alias)
        connection = connections[alias]
        # The parameter as the ORM would pass it (SQLite keeps naive UTC text, PostgreSQL a timestamptz).
        now = reader.expire_date.get_db_prep_value(timezone.now(), connection)
        found = statements.rows(reader.sql, [self.session_key, now], connection=connection)
        if not found:
            # What Django does when the session is missing or expired: the key is not reused.
            self._session_key = None
            return None
        return model.from_db(alias, reader.attnames, reader.columns.convert(found[0], connection))
