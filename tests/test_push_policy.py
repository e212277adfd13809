"""TTL, Urgency and Topic per stage: the shipped table, its documentation, its checks."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from push.policy import MAX_TTL, PolicyFileError, PushPolicy, topic_for
from server.domain import Domain
from tests.conftest import ROOT

POLICY = PushPolicy.load()


def test_every_stage_of_the_vocabulary_has_an_explicit_sane_entry() -> None:
    for stage in Domain.load().stages:
        assert stage in POLICY.stages, f"{stage} falls back to [default]: give it its own entry"
        ttl = POLICY.for_stage(stage).ttl
        assert 3600 <= ttl <= MAX_TTL, stage


def test_urgency_is_high_exactly_for_bid_opening_award_and_warnings() -> None:
    high = {stage for stage, policy in POLICY.stages.items() if policy.urgency == "high"}
    assert high == {"bid_opening", "award"}
    assert POLICY.warning.urgency == "high"
    assert POLICY.default.urgency == "normal"


def test_an_award_outlives_its_objection_window() -> None:
    # Seven working days can span ten calendar days around a weekend.
    assert POLICY.for_stage("award").ttl >= 10 * 86400
    assert POLICY.for_stage("candidates").ttl >= 3 * 86400


def test_headers_are_strings_ready_to_send() -> None:
    headers = POLICY.headers("award", "YW-2026-0001")
    assert headers == {
        "TTL": str(POLICY.for_stage("award").ttl),
        "Urgency": "high",
        "Topic": topic_for("YW-2026-0001"),
    }
    assert POLICY.headers("no_such_stage", "P")["TTL"] == str(POLICY.default.ttl)


def test_topic_is_32_base64url_characters_stable_and_per_project() -> None:
    topic = topic_for("YW-2026-0001")
    assert re.fullmatch(r"[A-Za-z0-9_-]{32}", topic)
    assert topic == topic_for("YW-2026-0001")
    assert topic_for("YW-2026-0002") != topic
    assert re.fullmatch(r"[A-Za-z0-9_-]{32}", topic_for("a.b_c-" * 10))
    assert POLICY.headers("notice", "P-1")["Topic"] == POLICY.headers("award", "P-1")["Topic"]
    # A warning never collapses with the project's own event pushes.
    assert POLICY.warning_headers("P-1")["Topic"] != topic_for("P-1")


def test_documented_table_matches_the_shipped_file() -> None:
    documented = {}
    for line in (ROOT / "docs" / "push.md").read_text("utf-8").splitlines():
        cells = [cell.strip() for cell in line.strip().strip("|").split("|")]
        if len(cells) == 4 and cells[1].isdigit():
            documented[cells[0]] = (int(cells[1]), cells[2])
    shipped = {stage: (p.ttl, p.urgency) for stage, p in POLICY.stages.items()}
    shipped["(warning)"] = (POLICY.warning.ttl, POLICY.warning.urgency)
    shipped["(any other stage)"] = (POLICY.default.ttl, POLICY.default.urgency)
    assert documented == shipped


GOOD = """
[default]
ttl = 3600
urgency = "normal"
[warning]
ttl = 3600
urgency = "high"
"""


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        ('[stages.award]\nttl = 0\nurgency = "high"', "stages.award.ttl"),
        ('[stages.award]\nttl = 2419201\nurgency = "high"', "stages.award.ttl"),
        ('[stages.award]\nttl = "1 day"\nurgency = "high"', "stages.award.ttl"),
        ('[stages.award]\nttl = true\nurgency = "high"', "stages.award.ttl"),
        ('[stages.award]\nttl = 86400\nurgency = "urgent"', "stages.award.urgency"),
        ("[stages.award]\nttl = 86400", "stages.award.urgency"),
        ('[stages.award]\nttl = 86400\nurgency = "high"\npriority = 1', "stages.award.priority"),
        ('[stage.award]\nttl = 86400\nurgency = "high"', "unknown table"),
    ],
)
def test_mistakes_in_the_file_name_entry_and_field(
    tmp_path: Path, extra: str, message: str
) -> None:
    path = tmp_path / "policy.toml"
    path.write_text(GOOD + extra, "utf-8")
    with pytest.raises(PolicyFileError, match=re.escape(message)):
        PushPolicy.load(path)


def test_default_and_warning_tables_are_required(tmp_path: Path) -> None:
    path = tmp_path / "policy.toml"
    path.write_text('[default]\nttl = 3600\nurgency = "normal"\n', "utf-8")
    with pytest.raises(PolicyFileError, match=r"\[warning\]"):
        PushPolicy.load(path)
    path.write_text(GOOD, "utf-8")
    assert PushPolicy.load(path).for_stage("award").ttl == 3600
