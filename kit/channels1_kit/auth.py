"""channels.auth's user decorators, with the user read that every frame makes made cheap.

channels' ``channel_session_user`` finds a frame's user with Django's ``auth.get_user`` on every
frame, and ``http_session_user`` on every connect. For the stock ``ModelBackend`` that is an ORM
query whose building cost a worker 150 to 200 us; in a crowd's join burst it was 37% of a
worker's time for a join frame, and 40% over the crowd's connects and joins together.

These decorators do what channels' do (same attributes, same session transfer), and find the
user as Django does, with one difference in how: when the session's backend is one whose
``get_user`` is ModelBackend's and the user model's default manager is a plain one, the user's
row is read with a plain statement (channels1_kit.statements) on the database the manager would
read, and the login is accepted as Django accepts it: the backend's ``user_can_authenticate`` and
the session's hash equal to the user's ``get_session_auth_hash()``. Everything else (no login, an
unknown or custom backend, a custom manager, a user gone or inactive, a hash that does not match,
a session verified only by a fallback secret, which Django then rotates) goes through Django's
own ``auth.get_user``, so that its outcome and its effects on the session are Django's.

Adopting them is an import: ``from channels1_kit.auth import channel_session_user`` in place of
``from channels.auth import ...`` (docs/adopting.md).
"""

import functools
from typing import Any, NamedTuple, Optional

from channels.auth import transfer_user
from channels.sessions import channel_session, http_session
from django.conf import settings
from django.contrib import auth
from django.contrib.auth.backends import ModelBackend
from django.db import connections
from django.db.models import Model, QuerySet
from django.db.models.manager import BaseManager
from django.utils.crypto import constant_time_compare
from django.utils.module_loading import import_string

from . import statements


class _Reader(NamedTuple):
    sql: str
    columns: statements.Columns
    attnames: list


@functools.cache
def _reader(model: type, alias: str) -> _Reader:
    """The statement that reads one `model` row by primary key on database `alias`."""
    connection = connections[alias]
    meta = model._meta
    fields = list(meta.concrete_fields)
    columns = statements.columns(fields, connection=connection)
    quote = connection.ops.quote_name
    sql = f"SELECT {columns.sql} FROM {quote(meta.db_table)} WHERE {quote(meta.db_table)}.{quote(meta.pk.column)} = %s"
    return _Reader(sql, columns, [field.attname for field in fields])


@functools.cache
def _plain_backend(backend_path: str) -> Optional[ModelBackend]:
    """An instance of the backend at `backend_path` if its user read is ModelBackend's own, else None."""
    try:
        backend_class = import_string(backend_path)
    except ImportError:
        return None
    if not (isinstance(backend_class, type) and issubclass(backend_class, ModelBackend)):
        return None
    if backend_class.get_user is not ModelBackend.get_user:
        return None
    return backend_class()


def _plain_manager(model: type) -> Any:
    """The user model's default manager if reading a row through it is a plain read by key."""
    manager = model._default_manager
    if type(manager).get_queryset is not BaseManager.get_queryset or manager._queryset_class is not QuerySet:
        return None
    return manager


def _row_user(model: type, alias: str, pk: Any) -> Optional[Model]:
    reader = _reader(model, alias)
    connection = connections[alias]
    found = statements.rows(reader.sql, [pk], connection=connection)
    if not found:
        return None
    return model.from_db(alias, reader.attnames, reader.columns.convert(found[0], connection))


def _verified_user(session) -> Optional[Model]:
    """The session's user when the login verifies as Django verifies it, read the cheap way; None
    when that way does not apply or anything is not plainly right (Django's get_user then decides)."""
    try:
        backend_path = session[auth.BACKEND_SESSION_KEY]
        raw_pk = session[auth.SESSION_KEY]
    except KeyError:
        return None
    session_hash = session.get(auth.HASH_SESSION_KEY)
    if not session_hash or backend_path not in settings.AUTHENTICATION_BACKENDS:
        return None
    backend = _plain_backend(backend_path)
    model = auth.get_user_model()
    manager = _plain_manager(model)
    if backend is None or manager is None:
        return None
    try:
        pk = model._meta.pk.to_python(raw_pk)
    except Exception:
        return None
    user = _row_user(model, manager.db, pk)
    if user is None or not backend.user_can_authenticate(user) or not hasattr(user, "get_session_auth_hash"):
        return None
    if not constant_time_compare(session_hash, user.get_session_auth_hash()):
        return None
    return user


def get_user(session) -> Any:
    """The user of a session (an AnonymousUser if none), as ``django.contrib.auth.get_user`` finds it."""
    if session is None:
        from django.contrib.auth.models import AnonymousUser

        return AnonymousUser()
    user = _verified_user(session)
    if user is not None:
        return user
    return auth.get_user(_SessionOnly(session))


class _SessionOnly:
    """What auth.get_user reads of a request: its session."""

    __slots__ = ("session",)

    def __init__(self, session):
        self.session = session


def channel_session_user(func):
    """channels.auth.channel_session_user: ``message.user`` from the channel session's login."""

    @channel_session
    @functools.wraps(func)
    def inner(message, *args, **kwargs):
        if not hasattr(message, "channel_session"):
            raise ValueError("Did not see a channel session to get auth from")
        message.user = get_user(message.channel_session)
        return func(message, *args, **kwargs)

    return inner


def http_session_user(func):
    """channels.auth.http_session_user: ``message.http_session`` and ``message.user`` from the
    handshake's session cookie (both None and anonymous without one)."""

    @http_session
    @functools.wraps(func)
    def inner(message, *args, **kwargs):
        if not hasattr(message, "http_session"):
            raise ValueError("Did not see a http session to get auth from")
        message.user = get_user(message.http_session)
        return func(message, *args, **kwargs)

    return inner


def channel_session_user_from_http(func):
    """channels.auth.channel_session_user_from_http: the handshake's login copied into the
    channel session, and ``message.user``; for websocket.connect."""

    @http_session_user
    @channel_session
    @functools.wraps(func)
    def inner(message, *args, **kwargs):
        if message.http_session is not None:
            transfer_user(message.http_session, message.channel_session)
        return func(message, *args, **kwargs)

    return inner
