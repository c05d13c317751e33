"""Many rows as one fixed-shape statement on PostgreSQL: a column of values per array.

A group commit upserts its merged rows at its end (storage/merged.py). Written as
``VALUES (...), (...)``, every group size is a different statement: SQLAlchemy compiled
it again, psycopg converted its text again and PostgreSQL parsed and planned it again,
group after group (a fifth of a replica's time while 10,000 gateways reported after an
assign). ``SELECT unnest(:a), unnest(:b), ...`` takes the same rows as one array per
column, so the statement is the same whatever the rows: compiled once, and prepared by
psycopg after a few runs. The rows come out in the order given (parallel unnest), which
keeps the key order the merged writes lock rows in.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sqlalchemy import Table, bindparam, cast, func, select
from sqlalchemy.dialects.postgresql import ARRAY
from sqlalchemy.sql import Select

__all__ = ["array_params", "rows_from_arrays"]


def rows_from_arrays(table: Table, names: Sequence[str]) -> Select[Any]:
    """``SELECT unnest(:name_0), ...``: one column per name, typed as ``table``'s."""
    return select(
        *[
            func.unnest(cast(bindparam(f"rows_{name}"), ARRAY(table.c[name].type))).label(name)
            for name in names
        ]
    )


def array_params(names: Sequence[str], rows: Sequence[Sequence[Any]]) -> dict[str, list[Any]]:
    """The parameters of ``rows_from_arrays(table, names)`` for ``rows`` (tuples in the
    order of ``names``)."""
    return {f"rows_{name}": [row[i] for row in rows] for i, name in enumerate(names)}
