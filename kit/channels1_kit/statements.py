"""Plain SQL statements for the reads a worker makes on every frame.

Building an ORM query costs a worker more than the database takes to answer it: 150 to 500 us
for a one-row read by key, against 10 to 20 us to run the same SQL. A read made on every frame
of every socket (the user behind a frame, a chat's room) is written once per process from the
models' own table and column names, quoted by the connection, and its values pass through the
converters the ORM itself would apply, so the objects equal the ORM's (SQLite's booleans are 0 or
1 and its datetimes naive until converted).
"""

from typing import Callable, List, NamedTuple, Sequence

from django.db.backends.base.base import BaseDatabaseWrapper


class Columns(NamedTuple):
    """A select list (``"table"."column", ...``) and the conversion of its rows' values."""

    sql: str
    # convert(row, connection): the row's values as the model fields hold them.
    convert: Callable[[Sequence, BaseDatabaseWrapper], List]


def columns(fields: Sequence, *, connection: BaseDatabaseWrapper) -> Columns:
    """The select list of `fields` (of one model or of joined ones) for `connection`'s database.

    The converters depend on the database's kind, not on the connection: convert takes the
    connection of the thread that runs the statement."""
    quote = connection.ops.quote_name
    cols = [field.get_col(field.model._meta.db_table) for field in fields]
    converters = [
        [*connection.ops.get_db_converters(col), *field.get_db_converters(connection)]
        for field, col in zip(fields, cols, strict=True)
    ]

    def convert(row: Sequence, connection: BaseDatabaseWrapper) -> List:
        values = []
        for value, col, steps in zip(row, cols, converters, strict=True):
            for step in steps:
                value = step(value, col, connection)
            values.append(value)
        return values

    sql = ", ".join(f"{quote(field.model._meta.db_table)}.{quote(field.column)}" for field in fields)
    return Columns(sql, convert)


def rows(sql: str, params: Sequence, *, connection: BaseDatabaseWrapper) -> List[tuple]:
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        return cursor.fetchall()
