"""Many rows as one fixed-shape statement on PostgreSQL: a column of values per array.

A group commit upserts its merged rows at its end (storage/merged.py). Written as
``VALUES (...), (...)``, every group size is a different statement: SQLAlchemy compiled
it again, psycopg converted its text again and PostgreSQL parsed and planned it again,
group after group (a fifth of a replica's time while 10,000 gateways reported after an
assign). ``SELECT unnest(:a), unnest(:b), ...`` takes the same rows as one array per
column, so the statement is the same whatever the rows; the rows come out in the order
given (parallel unnest), which keeps the key order the merged writes lock rows in.

The upserts are SQL text made once from the table's metadata (``upsert``): SQLAlchemy's
``postgresql.insert`` has no cache key (``inherit_cache = False`` in 2.0), so an
``ON CONFLICT`` statement built with it is compiled again at every execution, however
fixed its shape. A ``text()`` is compiled once and then prepared by psycopg.
"""

from __future__ import annotations

import functools
from collections.abc import Sequence
from typing import Any

from sqlalchemy import Table, TextClause, bindparam, cast, func, select, text
from sqlalchemy.dialects import postgresql
from sqlalchemy.dialects.postgresql import ARRAY
from sqlalchemy.sql import Select

__all__ = ["array_params", "rows_from_arrays", "upsert"]


def rows_from_arrays(table: Table, names: Sequence[str]) -> Select[Any]:
    """``SELECT unnest(:rows_name), ...``: one column per name, typed as ``table``'s."""
    return select(
        *[
            func.unnest(cast(bindparam(f"rows_{name}"), ARRAY(table.c[name].type))).label(name)
            for name in names
        ]
    )


def array_params(names: Sequence[str], rows: Sequence[Sequence[Any]]) -> dict[str, list[Any]]:
    """The parameters of ``rows_from_arrays`` or ``upsert`` for ``rows`` (tuples in the
    order of ``names``)."""
    return {f"rows_{name}": [row[i] for row in rows] for i, name in enumerate(names)}


@functools.cache
def upsert(
    table: Table,
    names: tuple[str, ...],
    conflict: tuple[str, ...],
    assignments: tuple[str, ...],
    where: str = "",
    returning: tuple[str, ...] = (),
) -> TextClause:
    """``INSERT INTO table (names) SELECT * FROM unnest(:rows_name::type[], ...) ON
    CONFLICT (conflict) DO UPDATE SET assignments [WHERE where] [RETURNING returning]``,
    or ``DO NOTHING`` when there are no ``assignments``.

    ``assignments`` and ``where`` are SQL fragments over the table's columns, ``excluded``
    and named parameters (``:name``), written by the caller; column types come from the
    table's metadata. Made once per distinct statement.
    """
    dialect = postgresql.dialect()  # type: ignore[no-untyped-call]
    arrays = ", ".join(
        f"CAST(:rows_{name} AS {table.c[name].type.compile(dialect=dialect)}[])" for name in names
    )
    columns = ", ".join(names)
    action = f"DO UPDATE SET {', '.join(assignments)}" if assignments else "DO NOTHING"
    sql = (
        f"INSERT INTO {table.name} ({columns}) SELECT * FROM unnest({arrays}) "
        f"ON CONFLICT ({', '.join(conflict)}) {action}"
    )
    if where:
        sql += f" WHERE {where}"
    if returning:
        sql += f" RETURNING {', '.join(returning)}"
    return text(sql)
