"""SQLite for several runworker processes on Django 2.2: immediate transactions and WAL.

Django 2.2 starts every transaction with a plain (deferred) BEGIN. Two workers that each read
and then write in one transaction (a presence join, a publish) both take a shared lock and
then both need the write lock; SQLite sees that neither can wait for the other and fails one
at once with "database is locked", whatever the busy timeout. BEGIN IMMEDIATE takes the write
lock first, so the second writer waits (up to OPTIONS["timeout"] seconds) instead of failing.
WAL lets readers go on beside the writer. Django 5.1+ does the first itself
(OPTIONS={"transaction_mode": "IMMEDIATE"}) and the second with
OPTIONS={"init_command": "PRAGMA journal_mode=WAL"}; a site on 2.2 names this backend as its
ENGINE: "channels1_kit.backports.sqlite3".
"""

from django.db.backends.sqlite3 import base


class DatabaseWrapper(base.DatabaseWrapper):
    def get_new_connection(self, conn_params):
        connection = super().get_new_connection(conn_params)
        # Kept by the file once set. Asked first: reading the mode takes no lock, and two
        # connections switching it at the same moment could fail.
        name = self.settings_dict["NAME"]
        if name not in ("", ":memory:") and "mode=memory" not in name:
            if connection.execute("PRAGMA journal_mode").fetchone()[0] != "wal":
                connection.execute("PRAGMA journal_mode=WAL")
        return connection

    def _start_transaction_under_autocommit(self):
        self.cursor().execute("BEGIN IMMEDIATE")
