"""The projects' facts summed per cell: what a figure adds up, kept as it is
written, so that a question reads a few thousand cells and not every project.

A cell is a month (the one a project counts in), a category, an agency and a
stage: every filter of `GET /api/stats` picks whole cells, and every figure
but the medians is a sum over them. A project counts in exactly one cell,
with its `contribution`; when its facts change, the write path takes its
old contribution out and puts the new one in (`Cells.move`). The cells are
thus a pure function of the projects' facts (`cells_of`), which `sunbid
verify` recomputes and compares.

Amounts are summed in fen (分), each amount rounded to the fen first: whole
numbers add up exactly in any order, where the sum of floats would depend on
the order of the additions (and so on how the log was cut into batches).
They are kept as doubles, which are exact to 2**53 fen (90 trillion yuan,
万亿) per sum; an integer column would overflow on an absurd amount.
"""

from __future__ import annotations

from collections.abc import Iterable

from server.stats.fold import ProjectFacts

# (month as YYYYMM, category, agency, stage)
CellKey = tuple[int, str, str, str]
FIELDS = (
    "projects",
    "budget_count",
    "budget_fen",
    "award_count",
    "award_fen",
    "counted",  # projects with a number of bidders
    "bidders_sum",
    "bidders_0",
    "bidders_1",
    "bidders_2",
    "bidders_3_5",
    "bidders_6_plus",
    "awarded",
    "failed",
    "timed",  # awarded projects with a notice: days from notice to award
)
SUM_FIELDS = frozenset({"budget_fen", "award_fen"})
EXACT_FEN = 2**53  # below it a double holds every whole number of fen
NOT_STARTED = "registered"  # the stage of a project no lifecycle event has moved yet
Vector = tuple[float, ...]
_BUCKET = {0: 7, 1: 8, 2: 9}  # the index in FIELDS of bidders_0, _1, _2


def fen(amount: float) -> float:
    return float(round(amount * 100))


def key_of(facts: ProjectFacts) -> CellKey:
    return (facts.month, facts.category, facts.agency, facts.stage or NOT_STARTED)


def contribution(facts: ProjectFacts) -> tuple[CellKey, Vector]:
    """The project's cell and what it adds to each of FIELDS."""
    values = [0.0] * len(FIELDS)
    values[0] = 1
    if (budget := facts.budget_cny) is not None:
        values[1], values[2] = 1, fen(budget)
    if facts.award_amount is not None:
        values[3], values[4] = 1, fen(facts.award_amount)
    if (bidders := facts.bidders) is not None:
        values[5], values[6] = 1, bidders
        values[_BUCKET.get(bidders, 10 if bidders <= 5 else 11)] = 1
    if facts.outcome == "awarded":
        values[12] = 1
        values[14] = 1 if facts.days_us is not None else 0
    elif facts.outcome == "failed":
        values[13] = 1
    return key_of(facts), tuple(values)


class Cells:
    """Sums per cell (or changes to them: a cell may go negative in a delta)."""

    def __init__(self) -> None:
        self.sums: dict[CellKey, list[float]] = {}

    def add(self, key: CellKey, vector: Vector, sign: int = 1) -> None:
        cell = self.sums.get(key)
        if cell is None:
            cell = self.sums[key] = [0.0] * len(FIELDS)
        for index, value in enumerate(vector):
            if value:
                cell[index] += sign * value

    def move(self, before: tuple[CellKey, Vector] | None, after: tuple[CellKey, Vector]) -> None:
        """A project's contribution changed from `before` (None: a new project)."""
        if before is not None:
            if before == after:
                return
            self.add(*before, sign=-1)
        self.add(*after)

    def changed(self) -> dict[CellKey, list[float]]:
        """The cells with some change (a move within one cell may cancel out)."""
        return {key: cell for key, cell in self.sums.items() if any(cell)}


def cells_of(records: Iterable[ProjectFacts]) -> dict[CellKey, list[float]]:
    """Every cell, summed from the projects' facts: what the table must hold."""
    cells = Cells()
    for facts in records:
        cells.add(*contribution(facts))
    return cells.sums


def same_value(have: float, want: float) -> bool:
    """Whether a stored sum is the one the facts yield: exactly, but for a
    sum beyond the doubles' whole numbers (absurd amounts), to 1e-12."""
    if have == want:
        return True
    return abs(want) >= EXACT_FEN and abs(have - want) <= 1e-12 * abs(want)
