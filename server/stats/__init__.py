"""Statistics (统计分析): figures a journalist or an evaluator asks for.

- `fold.py`: the pure fold from events to the facts the figures need (no I/O);
- `table.py`: that fold kept beside the log, written with each append,
  checked and rebuilt by `sunbid verify`/`rebuild`;
- `figures.py`: the figures, aggregated from it and the projects table in
  SQL, with the on-time rates of the compliance scorecard and the
  enquiries of the respond scorecard beside them;
- `tables.py`: the figures as flat tables, and each table as CSV.
"""

from __future__ import annotations

from server.stats.table import StatsTable
from server.store import EventStore
from server.store.postgres import PostgresStore
from server.store.sqlite import SQLiteStore


def open_stats(store: EventStore) -> StatsTable:
    """The statistics' facts of `store`'s log, written with every append from
    now on: call before the store opens (it catches the table up at open)."""
    if not isinstance(store, SQLiteStore | PostgresStore):
        raise TypeError(f"no statistics table for {type(store).__name__}")
    return StatsTable(store)
