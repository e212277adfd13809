"""Each table of the statistics as CSV: the rows `GET /api/stats` serves
under that name, one line each, the columns in `figures.TABLES` order.

UTF-8 with a byte-order mark: without it Excel (the tool most readers open
a CSV with) takes the file for the local code page and garbles Chinese.
Lines end in CRLF (RFC 4180); a missing value is an empty field.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Mapping, Sequence
from typing import Any

from server.stats.figures import TABLES

BOM = "\ufeff"


def as_csv(table: str, rows: Sequence[Mapping[str, Any]]) -> bytes:
    columns = TABLES[table]
    out = io.StringIO()
    out.write(BOM)
    writer = csv.writer(out, lineterminator="\r\n")
    writer.writerow(columns)
    for row in rows:
        writer.writerow(["" if row.get(c) is None else row[c] for c in columns])
    return out.getvalue().encode("utf-8")


def filename(table: str, filters: Mapping[str, Any]) -> str:
    """`sunbid-stats-<table>[-<year>[-<month>]][-<category>][-<agency>].csv`."""
    parts = ["sunbid-stats", table.replace("_", "-")]
    if filters.get("year") is not None:
        parts.append(str(filters["year"]))
        if filters.get("month") is not None:
            parts[-1] += f"-{filters['month']:02d}"
    parts += [str(filters[k]) for k in ("category", "agency") if filters.get(k) is not None]
    return "-".join(parts) + ".csv"
