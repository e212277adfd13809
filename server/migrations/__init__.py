"""Bringing a data directory written by an older Sunbid up to today's schema.

Each SQLite file carries its schema version (server/core/versions.py); here
is, per file, the ordered list of steps from one version to the next
(steps.py) and the runner (run.py) that `sunbid migrate` uses and that
`sunbid serve` asks before it starts: a server refuses a directory that is
behind (or ahead), naming the command, rather than migrate it by itself:
migrating appends to the log, which an operator should decide (and back up
before), not a restart.

Every step is idempotent, so an interrupted `sunbid migrate` is simply run
again: a schema step commits together with the version it reaches, and the
step that appends events first looks in the log for the ones it appended.
"""

from __future__ import annotations


class MigrationError(Exception):
    """A file cannot be migrated by this code (written by a newer version)."""
