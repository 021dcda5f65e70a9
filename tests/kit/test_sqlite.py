"""channels1_kit.backports.sqlite3: two writers that read first both succeed, on Django 2.2 and 5.2.

Each writer reads, waits, then writes in one transaction, as a presence join does. With the
stock deferred BEGIN one of two overlapping writers fails with "database is locked" (the busy
timeout cannot help: each holds what the other waits for); with the backend's BEGIN IMMEDIATE
the second waits for the first and both commit.
"""

import sqlite3
import threading
import time

import django
import pytest
from django.db.backends.sqlite3.base import DatabaseWrapper as StockWrapper
from django.db.utils import OperationalError

from channels1_kit.backports.sqlite3.base import DatabaseWrapper as KitWrapper


def settings_dict(path, options=None) -> dict:
    return {
        "ENGINE": "",
        "NAME": str(path),
        "OPTIONS": {"timeout": 10, **(options or {})},
        "TIME_ZONE": None,
        "CONN_MAX_AGE": 0,
        "CONN_HEALTH_CHECKS": False,
        "AUTOCOMMIT": True,
        "ATOMIC_REQUESTS": False,
        "USER": "",
        "PASSWORD": "",
        "HOST": "",
        "PORT": "",
        "TEST": {},
    }


def two_writers(wrapper_class, path, options=None) -> list:
    """Runs two overlapping read-then-write transactions; returns what each ended with."""
    with sqlite3.connect(str(path)) as setup:
        # As `migrate` leaves the file before the processes start: in WAL once a first
        # connection has switched it (two switching at once could fail).
        setup.execute("PRAGMA journal_mode=WAL")
        setup.execute("CREATE TABLE IF NOT EXISTS rows (n INTEGER)")
    start = threading.Barrier(2)
    outcomes = [None, None]

    def write(index: int) -> None:
        wrapper = wrapper_class(settings_dict(path, options), alias=f"writer{index}")
        try:
            wrapper.ensure_connection()
            start.wait(timeout=10)
            wrapper._start_transaction_under_autocommit()
            cursor = wrapper.cursor()
            cursor.execute("SELECT count(*) FROM rows")
            cursor.fetchone()
            time.sleep(0.3)
            cursor.execute("INSERT INTO rows (n) VALUES (%s)", [index])
            wrapper.connection.commit()
            outcomes[index] = "committed"
        except OperationalError as error:
            outcomes[index] = str(error)
        except Exception as error:  # anything else is the test's failure, said in its outcome
            outcomes[index] = repr(error)
        finally:
            wrapper.close()

    threads = [threading.Thread(target=write, args=(index,)) for index in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)
    return outcomes


@pytest.fixture(autouse=True)
def _own_connections(django_db_blocker):
    # These tests open their own connections to their own files, not the test database.
    with django_db_blocker.unblock():
        yield


def test_with_immediate_transactions_both_overlapping_writers_commit(tmp_path):
    assert two_writers(KitWrapper, tmp_path / "kit.sqlite3") == ["committed", "committed"]
    with sqlite3.connect(str(tmp_path / "kit.sqlite3")) as check:
        assert check.execute("SELECT count(*) FROM rows").fetchone() == (2,)


def test_the_backend_puts_a_new_database_file_in_wal(tmp_path):
    wrapper = KitWrapper(settings_dict(tmp_path / "new.sqlite3"), alias="new")
    wrapper.ensure_connection()
    wrapper.close()
    with sqlite3.connect(str(tmp_path / "new.sqlite3")) as check:
        assert check.execute("PRAGMA journal_mode").fetchone() == ("wal",)


def test_with_the_stock_deferred_begin_one_overlapping_writer_fails_at_once(tmp_path):
    """What the backend is for: the failure it removes, with the stock backend's default BEGIN."""
    outcomes = two_writers(StockWrapper, tmp_path / "stock.sqlite3")
    assert outcomes.count("committed") < 2
    assert any("database is locked" in outcome for outcome in outcomes), outcomes


@pytest.mark.skipif(django.VERSION < (5, 1), reason="OPTIONS transaction_mode and init_command came in Django 5.1")
def test_on_django_5_1_the_sites_options_do_the_same_with_the_stock_backend(tmp_path):
    """What project/settings/base.py gives a SQLite DATABASE_URL (tests/project checks it does)."""
    options = {"transaction_mode": "IMMEDIATE", "init_command": "PRAGMA journal_mode=WAL"}
    assert two_writers(StockWrapper, tmp_path / "site.sqlite3", options) == ["committed", "committed"]
