"""channels1_kit.auth: a frame's user, read with a plain statement, is the user Django's
auth.get_user finds, with the same effects on the session, on Django 2.2, 5.2 and 6.1."""

from importlib import import_module

import pytest
from django.conf import settings
from django.contrib import auth
from django.contrib.auth.backends import ModelBackend
from django.contrib.auth.models import AnonymousUser, User
from django.db import connection
from django.http import HttpRequest
from django.test import override_settings
from django.test.utils import CaptureQueriesContext

from channels1_kit import auth as kit_auth

MODEL_BACKEND = "django.contrib.auth.backends.ModelBackend"
ALLOW_ALL = "django.contrib.auth.backends.AllowAllUsersModelBackend"
OWN_READ = "tests.kit.test_auth.OwnReadBackend"

pytestmark = pytest.mark.django_db


class OwnReadBackend(ModelBackend):
    """A site's backend with its own user read: the kit must leave the read to it."""

    reads = 0

    def get_user(self, user_id):
        OwnReadBackend.reads += 1
        return super().get_user(user_id)


@pytest.fixture
def model_backend_reads(monkeypatch) -> list:
    """Counts the reads that go through ModelBackend.get_user (Django's own way)."""
    reads = []
    original = ModelBackend.get_user

    def counting(self, user_id):
        reads.append(user_id)
        return original(self, user_id)

    monkeypatch.setattr(ModelBackend, "get_user", counting)
    # The kit decides per backend whether its read is ModelBackend's: decide again with the spy in place.
    kit_auth._plain_backend.cache_clear()
    yield reads
    kit_auth._plain_backend.cache_clear()


def session_store(session_key=None):
    return import_module(settings.SESSION_ENGINE).SessionStore(session_key)


def logged_in(user, backend: str = MODEL_BACKEND) -> str:
    """Logs `user` in as a login view does; the session's key."""
    request = HttpRequest()
    request.session = session_store()
    auth.login(request, user, backend=backend)
    request.session.save()
    return request.session.session_key


def outcome(user, session, key: str) -> tuple:
    """What a read ended with: who, and what became of the session."""
    who = ("anonymous",) if isinstance(user, AnonymousUser) else (type(user).__name__, user.pk)
    return who, session.get(auth.SESSION_KEY), session.get(auth.HASH_SESSION_KEY), session.session_key == key


def both_ways(key: str) -> tuple:
    """The kit's read and Django's, each of its own copy of the stored session."""
    ours, djangos = session_store(key), session_store(key)
    # Both loaded first: a read that rotates the session deletes the stored one.
    ours.keys(), djangos.keys()
    return outcome(kit_auth.get_user(ours), ours, key), outcome(auth.get_user(_Request(djangos)), djangos, key)


class _Request:
    def __init__(self, session):
        self.session = session


@pytest.fixture
def alice():
    return User.objects.create_user("alice", password="x", is_staff=True)


def test_a_verified_login_is_read_with_one_plain_statement_and_equals_the_orms_user(alice, model_backend_reads):
    key = logged_in(alice)
    with CaptureQueriesContext(connection) as queries:
        user = kit_auth.get_user(session_store(key))

    assert model_backend_reads == []
    assert len([query for query in queries if "auth_user" in query["sql"]]) == 1
    expected = User.objects.get(pk=alice.pk)
    assert type(user) is User and user.pk == alice.pk
    for field in User._meta.concrete_fields:
        assert getattr(user, field.attname) == getattr(expected, field.attname), field.name
    # Booleans and datetimes come back as the ORM's (SQLite stores 0/1 and naive times).
    assert user.is_staff is True and user.is_active is True
    assert user.last_login is not None and user.last_login.tzinfo is not None
    assert user._state.db == "default" and not user._state.adding


def test_no_session_and_a_session_without_a_login_are_anonymous(model_backend_reads):
    assert isinstance(kit_auth.get_user(None), AnonymousUser)
    assert isinstance(kit_auth.get_user(session_store()), AnonymousUser)


@pytest.mark.parametrize(
    "spoil",
    [
        pytest.param(lambda user, session: None, id="verified"),
        pytest.param(lambda user, session: session.__setitem__(auth.HASH_SESSION_KEY, "forged"), id="wrong-hash"),
        pytest.param(lambda user, session: session.pop(auth.HASH_SESSION_KEY), id="no-hash"),
        pytest.param(lambda user, session: session.__setitem__(auth.SESSION_KEY, "999999"), id="no-such-user"),
        pytest.param(lambda user, session: (user.set_password("y"), user.save()), id="password-changed"),
        pytest.param(lambda user, session: (setattr(user, "is_active", False), user.save()), id="inactive"),
        pytest.param(lambda user, session: user.delete(), id="user-deleted"),
        pytest.param(
            lambda user, session: session.__setitem__(auth.BACKEND_SESSION_KEY, "unlisted.Backend"), id="unlisted"
        ),
    ],
)
def test_every_case_ends_as_djangos_get_user_ends_it(alice, spoil):
    key = logged_in(alice)
    session = session_store(key)
    spoil(alice, session)
    session.save()

    ours, djangos = both_ways(key)
    assert ours == djangos


def test_a_session_signed_before_a_secret_key_rotation_ends_as_djangos(alice):
    key = logged_in(alice)
    # The new key with the old one as a fallback: Django (4.1.8+) keeps the login and rotates the
    # session's hash; earlier Django logs the session out. The kit leaves it to Django either way.
    with override_settings(SECRET_KEY="a-new-secret-key-" + "x" * 40, SECRET_KEY_FALLBACKS=[settings.SECRET_KEY]):
        ours, djangos = both_ways(key)
    assert ours == djangos


@override_settings(AUTHENTICATION_BACKENDS=[ALLOW_ALL])
def test_a_backend_that_lets_inactive_users_in_is_read_the_cheap_way_and_lets_them_in(alice, model_backend_reads):
    alice.is_active = False
    alice.save()
    key = logged_in(alice, backend=ALLOW_ALL)

    ours, djangos = both_ways(key)
    assert ours == djangos and ours[0] == ("User", alice.pk)
    assert model_backend_reads == [alice.pk]  # Django's read only, in both_ways's second half


@override_settings(AUTHENTICATION_BACKENDS=[OWN_READ])
def test_a_backend_with_its_own_user_read_is_asked(alice):
    key = logged_in(alice, backend=OWN_READ)
    OwnReadBackend.reads = 0

    user = kit_auth.get_user(session_store(key))

    assert user.pk == alice.pk and OwnReadBackend.reads == 1
