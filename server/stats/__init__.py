"""Statistics (统计分析): figures a journalist or an evaluator asks for.

- `fold.py`: the pure fold from events to the facts the figures need (no I/O);
- `cells.py`: those facts summed per month, category, agency and stage;
- `table.py`: both kept beside the log, written with each append,
  checked and rebuilt by `sunbid verify`/`rebuild`;
- `figures.py`: the figures, summed from the cells (medians looked up by
  rank), with the on-time rates of the compliance scorecard and the
  enquiries of the respond scorecard beside them;
- `tables.py`: the figures as flat tables, and each table as CSV.
"""

from __future__ import annotations

from server.domain import Domain
from server.stats.table import StatsTable
from server.store import EventStore
from server.store.postgres import PostgresStore
from server.store.sqlite import SQLiteStore


def open_stats(store: EventStore, domain: Domain) -> StatsTable:
    """The statistics' facts of `store`'s log, written with every append from
    now on: call before the store opens (it catches the table up at open)."""
    if not isinstance(store, SQLiteStore | PostgresStore):
        raise TypeError(f"no statistics table for {type(store).__name__}")
    return StatsTable(store, domain.lifecycle_stages)
