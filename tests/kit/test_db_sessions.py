"""channels1_kit.db_sessions: Django's database sessions read with a plain statement find what
Django's engine finds, on Django 2.2, 5.2 and 6.1."""

import datetime

import pytest
from django.contrib.sessions.backends import db
from django.contrib.sessions.models import Session
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from channels1_kit import db_sessions

pytestmark = pytest.mark.django_db


def saved(engine, data: dict) -> str:
    store = engine.SessionStore()
    store.update(data)
    store.save()
    return store.session_key


def loaded(engine, key) -> tuple:
    store = engine.SessionStore(key)
    return dict(store.items()), store.session_key


@pytest.mark.parametrize("writer", [db, db_sessions], ids=["written-by-django", "written-by-the-kit"])
def test_a_session_reads_the_same_through_either_engine(writer):
    key = saved(writer, {"_auth_user_id": "7", "rooms": [1, 2], "when": "2026-12-06"})

    assert (
        loaded(db_sessions, key)
        == loaded(db, key)
        == (
            {"_auth_user_id": "7", "rooms": [1, 2], "when": "2026-12-06"},
            key,
        )
    )


def test_the_read_is_one_plain_statement():
    key = saved(db, {"a": 1})
    with CaptureQueriesContext(connection) as queries:
        assert loaded(db_sessions, key)[0] == {"a": 1}
    assert len(queries) == 1
    # The ORM's get() asks for at most 21 rows; the statement asks for the row.
    assert "LIMIT" not in queries[0]["sql"].upper()


@pytest.mark.parametrize(
    "spoil",
    [
        pytest.param(lambda key: Session.objects.filter(pk=key).delete(), id="deleted"),
        pytest.param(
            lambda key: Session.objects.filter(pk=key).update(
                expire_date=timezone.now() - datetime.timedelta(seconds=1)
            ),
            id="expired",
        ),
        pytest.param(
            lambda key: Session.objects.filter(pk=key).update(
                expire_date=timezone.now() + datetime.timedelta(seconds=30)
            ),
            id="expiring-soon",
        ),
        pytest.param(lambda key: Session.objects.filter(pk=key).update(session_data="tampered"), id="tampered"),
    ],
)
def test_a_missing_expired_or_tampered_session_ends_as_with_djangos_engine(spoil):
    key = saved(db, {"a": 1})
    spoil(key)

    assert loaded(db_sessions, key) == loaded(db, key)


def test_an_unknown_key_gives_an_empty_session_that_saves_under_a_new_key():
    store = db_sessions.SessionStore("x" * 32)
    assert dict(store.items()) == {} and store.session_key is None
    store["a"] = 1
    store.save()
    assert store.session_key not in (None, "x" * 32)
    assert loaded(db, store.session_key)[0] == {"a": 1}
