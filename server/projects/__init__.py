"""Projects: a view of the log.

- `fold.py`: the pure fold from events to project records (no I/O);
- `table.py`: the fold kept in the log's SQLite file, written with each
  append; reads for the API; check and rebuild for `sunbid verify`/`rebuild`;
- `changes.py`: the events that register and amend a project.
"""

from __future__ import annotations

from server.domain import Domain
from server.projects.fold import FoldRules
from server.projects.table import ProjectTable
from server.store import EventStore
from server.store.postgres import PostgresStore
from server.store.sqlite import SQLiteStore


def open_projects(store: EventStore, domain: Domain) -> ProjectTable:
    """The projects of `store`'s log, written with every append from now on:
    call before the store opens (it catches the table up at open)."""
    if not isinstance(store, SQLiteStore | PostgresStore):
        raise TypeError(f"no projects table for {type(store).__name__}")
    return ProjectTable(store, FoldRules.of(domain))
