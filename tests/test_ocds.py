"""OCDS 1.1: every package Sunbid makes validates against the standard's schema.

The validator is the Open Contracting Partnership's own (`libcoveocds`),
pointed at the offline copy of the OCDS 1.1.5 schema and codelists in
tests/fixtures/ocds/ (nothing can be downloaded here): a package passes with
no schema error, no value outside a codelist, no failed additional check,
and no field beyond the standard but the extensions it declares.

Without I/O: a release of every stage of every category (and a correction of
each), as a release package and as each category's record package, and what
the mapping promises (docs/ocds.md). Against real servers: the demo's whole
feed followed through `links.next` (gapless, each page valid), every
project's record package, an enquiry answer, bad parameters; on SQLite and
on PostgreSQL.
"""

from __future__ import annotations

import io
import json
import zipfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import jsonref
import orjson
import pytest
from libcoveocds.api import ocds_json_output
from libcoveocds.config import LibCoveOCDSConfig

from server.domain import Domain
from server.facts import Kind
from server.interop.ocds import (
    ENQUIRIES,
    PAGINATION,
    RELEASE_SCHEMA,
    Context,
    Publication,
    record_package,
    release_package,
)
from server.interop.ocds_release import release_of
from tests.conftest import ServerProcess
from tests.services import postgres_schema

STANDARD = Path(__file__).parent / "fixtures" / "ocds" / "1__1__5"
SCHEMA_URL = "https://standard.open-contracting.org/schema/1__1__5/"
# The fields the declared extensions add: enquiries (tender.enquiries,
# tender.hasEnquiries is core) and pagination (the package's links).
EXTENSION_FIELDS = {
    ENQUIRIES: {
        "/releases/tender/enquiries",
        "/records/releases/tender/enquiries",
        "/records/compiledRelease/tender/enquiries",
    },
    PAGINATION: {"/links"},
}
DOMAIN = Domain.load()
CONTEXT = Context("ocds-sunbid", {"YW-GGZY": "义乌市公共资源交易中心"}, DOMAIN.facts)
PUBLICATION = Publication(
    "Sunbid", "https://creativecommons.org/licenses/by/4.0/", "http://x/catalog"
)


class LocalStandard:
    """`requests` for jsonref: the standard's schema files from the offline copy.
    (libcoveocds resolves the record package's `$ref` to the versioned release
    schema through jsonref, by URL.)"""

    def get(self, uri: str) -> Any:
        assert uri.startswith(SCHEMA_URL), f"would download {uri}"
        contents = json.loads((STANDARD / "schema" / uri.removeprefix(SCHEMA_URL)).read_text())

        class Answer:
            def raise_for_status(self) -> None:
                pass

            def json(self, **_: Any) -> Any:
                return contents

        return Answer()


@pytest.fixture(scope="module")
def cove() -> Iterator[LibCoveOCDSConfig]:
    """libcoveocds' settings with the standard given as a ZIP of the offline copy."""
    packed = io.BytesIO()
    with zipfile.ZipFile(packed, "w") as archive:
        archive.writestr("standard-1__1__5/", "")  # the top folder first, as GitHub's ZIPs
        for path in sorted((STANDARD / "schema").rglob("*")):
            if path.is_file():
                archive.write(path, f"standard-1__1__5/{path.relative_to(STANDARD)}")
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(jsonref, "requests", LocalStandard())
        yield LibCoveOCDSConfig({"standard_zip": packed.getvalue(), "context": "api"})


def problems(package: dict[str, Any], cove: LibCoveOCDSConfig) -> list[str]:
    """Everything libcoveocds finds wrong with `package`; [] when it is valid."""
    declared = package.get("extensions", [])
    assert set(declared) <= set(EXTENSION_FIELDS), declared
    # The extensions' own files are not here to download: the package is checked
    # against the core schema, and only the fields the extensions add are let through.
    core = {key: value for key, value in package.items() if key != "extensions"}
    found = ocds_json_output(json_data=core, lib_cove_ocds_config=cove)
    allowed = set().union(*(EXTENSION_FIELDS[url] for url in declared))
    wrong = [f"schema: {e}" for e in found["validation_errors"]]
    wrong += [f"closed codelist: {k}" for k in found["additional_closed_codelist_values"]]
    wrong += [f"open codelist: {k}" for k in found["additional_open_codelist_values"]]
    wrong += [f"check: {k}" for k in found.get("additional_checks") or {}]
    wrong += [
        f"field: {f['path']}/{f['field']}"
        for f in found.get("additional_fields", [])
        if f"{f['path']}/{f['field']}" not in allowed
    ]
    return wrong


# --- every stage of every category, without I/O ---------------------------------------------

SAMPLES: dict[Kind, Any] = {
    Kind.DATETIME: "2026-12-01T09:30:00+08:00",
    Kind.DATE: "2026-12-01",
    Kind.AMOUNT: "1285万元",
    Kind.NUMBER: 186.5,
    Kind.INTEGER: 3,
    Kind.PERCENT: 0.12,
    Kind.TEXT: "公开招标",
    Kind.BOOLEAN: True,
}
LISTS = {
    "candidates": [
        {"rank": 1, "name": "浙江测试建设有限公司", "price": 1_000_000},
        {"rank": 2, "name": "义乌市测试工程有限公司", "price": 1_100_000},
    ],
    "indicators": [{"pollutant": "COD", "tonnes_per_year": 2.5}],
}


def sample_data(category: str, stage: str, seq: int) -> dict[str, Any]:
    """A value of the right kind for each fact the stage carries in the category."""
    data: dict[str, Any] = {}
    for key in DOMAIN.categories[category].uses[stage].fields:
        kind = DOMAIN.facts[key].kind
        if kind is Kind.LIST:
            data[key] = LISTS.get(key, ["甲", "乙"])
        elif kind is Kind.EVENT:
            data[key] = seq - 1
        else:
            data[key] = SAMPLES[kind]
    if stage == "award":
        data["amount"] = 1_000_000  # a number here, text (万元) elsewhere: both map
    if stage == "registered":
        data.update(title="测试项目", budget=1_000_000.0, currency="CNY", must_tender=True)
    if stage == "amended":
        data.update(changes={"budget": 1_200_000.0, "title": "测试项目（变更）"}, reason="调整预算")
    if stage == "enquiry_answer":
        data.update(enquiry="qabcdefghijkl", question="保证金何时退还？", answer="开标后五日内。")
        data["asked_at"] = "2026-12-01T09:30:00+08:00"
    return data


def every_stage(category: str) -> list[dict[str, Any]]:
    """A project's events: its registration, each stage the category has (lifecycle,
    oversight, record), and after each a correction of it."""
    events: list[dict[str, Any]] = []
    stages = ["registered", *DOMAIN.categories[category].uses]
    for stage in dict.fromkeys(stages):
        seq = len(events) + 1
        events.append(event(category, stage, seq, sample_data(category, stage, seq)))
        if stage not in ("correction", "penalty_withdrawn", "registered"):
            fixed = {"corrects": seq, "field": "amount", "was": 1, "now": "2000万元"}
            events.append(event(category, "correction", seq + 1, fixed))
    return events


def event(category: str, stage: str, seq: int, data: dict[str, Any]) -> dict[str, Any]:
    return {
        "seq": seq,
        "project": f"T-{category}",
        "category": category,
        "agency": "YW-GGZY",
        "region": "330782",
        "stage": stage,
        "title": f"{stage} 公告",
        "body": "" if seq % 2 else "正文。",
        "data": data,
        "occurred_at": "2026-12-01T09:00:00+08:00",
        "published_at": f"2026-12-01T{9 + seq // 60:02d}:{seq % 60:02d}:00+08:00",
        "hash": "0" * 64,
    }


@pytest.mark.parametrize("category", list(DOMAIN.categories))
def test_every_stage_of_every_category_validates(category: str, cove: LibCoveOCDSConfig) -> None:
    events = every_stage(category)
    by_seq = {e["seq"]: e for e in events}
    package = release_package(
        events,
        by_seq,
        CONTEXT,
        PUBLICATION,
        uri="http://x/api/ocds/releases?since=0&limit=1000",
        published=events[-1]["published_at"],
        next_page="http://x/api/ocds/releases?since=99&limit=1000",
    )
    assert len(package["releases"]) == len(events)
    assert problems(package, cove) == []
    record = record_package(events, CONTEXT, PUBLICATION, uri="http://x/api/ocds/records/T")
    assert problems(record, cove) == []
    compiled = record["records"][0]["compiledRelease"]
    assert compiled["ocid"] == f"ocds-sunbid-T-{category}"
    assert compiled["tag"] == ["compiled"]


def test_releases_follow_their_stage() -> None:
    """What the mapping promises, stage by stage (docs/ocds.md)."""
    notice = event("construction", "notice", 5, {"deadline": "2026-12-30T09:30:00+08:00"})
    notice["data"].update(max_price="1285万元", method="公开招标", evaluation="综合评估法")
    released = release_of(notice, CONTEXT)
    assert released["id"] == "ocds-sunbid-T-construction-5"
    assert released["date"] == notice["published_at"]
    assert released["tag"] == ["tender"]
    tender = released["tender"]
    assert tender["tenderPeriod"] == {"endDate": "2026-12-30T09:30:00+08:00"}
    assert tender["value"] == {"amount": 12_850_000, "currency": "CNY"}
    assert (tender["procurementMethod"], tender["awardCriteria"]) == ("open", "ratedCriteria")
    assert released["buyer"] == {"id": "YW-GGZY", "name": "义乌市公共资源交易中心"}
    assert tender["documents"][0]["documentType"] == "tenderNotice"
    # The same event gives the same bytes.
    assert orjson.dumps(release_of(notice, CONTEXT)) == orjson.dumps(released)

    land = event("land", "award", 9, {"winner": "义乌澄屿置业有限公司", "amount": 726_000_000})
    sold = release_of(land, CONTEXT)
    assert "buyer" not in sold  # the agency sells: it runs the process, it does not buy
    assert sold["parties"][0]["roles"] == ["tenderer", "supplier"]
    assert sold["awards"][0]["value"]["amount"] == 726_000_000

    failed = release_of(event("soe_procurement", "failed", 3, {"bidders": 2}), CONTEXT)
    assert failed["tag"] == ["tenderUpdate"] and failed["tender"]["status"] == "unsuccessful"
    stopped = release_of(event("land", "failed", 3, {"reason": "终止"}), CONTEXT)
    assert stopped["tag"] == ["tenderCancellation"]
    assert stopped["tender"]["status"] == "cancelled"

    objection = release_of(event("construction", "objection", 4, {"subject": "招标文件"}), CONTEXT)
    assert objection["tender"]["documents"][0]["documentType"] == "complaints"

    answer = event("construction", "enquiry_answer", 6, sample_data("land", "enquiry_answer", 6))
    enquiries = release_of(answer, CONTEXT)["tender"]["enquiries"]
    assert enquiries == [
        {
            "id": "qabcdefghijkl",
            "date": "2026-12-01T09:30:00+08:00",
            "title": "enquiry_answer 公告",
            "description": "保证金何时退还？",
            "answer": "开标后五日内。",
            "dateAnswered": answer["published_at"],
        }
    ]


def test_a_correction_amends_and_the_record_compiles_the_corrected_value() -> None:
    events = [
        event("gov_procurement", "registered", 1, sample_data("gov_procurement", "registered", 1)),
        event("gov_procurement", "award", 2, {"winner": "甲公司", "amount": 3_598_000}),
        event(
            "gov_procurement",
            "correction",
            3,
            {"corrects": 2, "field": "amount", "was": 3_598_000, "now": 3_958_000},
        ),
    ]
    correction = release_of(events[2], CONTEXT, events[1])
    assert correction["tag"] == ["awardUpdate"]
    award = correction["awards"][0]
    assert award["amendments"][0]["amendsReleaseID"] == "ocds-sunbid-T-gov_procurement-2"
    assert award["value"]["amount"] == 3_958_000
    assert [d["id"] for d in award["documents"]] == ["3"]  # its own document, not the award's
    record = record_package(events, CONTEXT, PUBLICATION, uri="http://x/r")["records"][0]
    compiled = record["compiledRelease"]
    assert compiled["awards"][0]["value"]["amount"] == 3_958_000
    assert compiled["awards"][0]["suppliers"] == [{"id": "甲公司", "name": "甲公司"}]
    assert [r["id"].rsplit("-", 1)[1] for r in record["releases"]] == ["1", "2", "3"]


def test_the_merge_rules_come_from_the_schema_shipped_with_the_server() -> None:
    shipped = RELEASE_SCHEMA.read_bytes()
    assert shipped == (STANDARD / "schema" / "release-schema.json").read_bytes()


# --- real servers -----------------------------------------------------------------------------


def follow_feed(server: ServerProcess, limit: int) -> list[dict[str, Any]]:
    """Every page of the feed from the start, following `links.next`."""
    pages = []
    url: str | None = f"{server.url}/api/ocds/releases?limit={limit}"
    while url is not None:
        answer = httpx.get(url, timeout=30)
        assert answer.status_code == 200, answer.text
        pages.append(answer.json())
        url = pages[-1].get("links", {}).get("next")
        cache = "public, max-age=3600" if url else "public, max-age=5"
        assert answer.headers["cache-control"] == cache
    return pages


def check_demo(server: ServerProcess, cove: LibCoveOCDSConfig) -> None:
    """The demo's whole feed and every project's record package validate."""
    admin = {"Authorization": "Bearer " + server.token("ocds-admin")}
    asked = httpx.post(
        f"{server.url}/api/projects/YW-GC-2026-0187/enquiries", json={"question": "工期可否顺延？"}
    )
    assert asked.status_code == 201, asked.text
    answered = httpx.post(
        f"{server.url}/api/enquiries/{asked.json()['id']}/answer",
        json={"answer": "不可顺延。"},
        headers=admin,
    )
    assert answered.status_code == 201, answered.text
    head = server.head()
    pages = follow_feed(server, limit=40)
    seqs = [int(r["id"].rsplit("-", 1)[1]) for page in pages for r in page["releases"]]
    assert seqs == list(range(1, head + 1)), "the feed is gapless and in seq order"
    for page in pages:
        assert page["version"] == "1.1" and page["publisher"]["name"] == "Sunbid"
        assert page["publishedDate"] == page["releases"][-1]["date"]
        assert problems(page, cove) == []
    projects = {r["ocid"].removeprefix("ocds-sunbid-") for p in pages for r in p["releases"]}
    assert len(projects) >= 20
    packages = []
    for project in sorted(projects):
        answer = httpx.get(f"{server.url}/api/ocds/records/{project}", timeout=30)
        assert answer.status_code == 200, answer.text
        packages.append(answer.json())
        assert packages[-1]["records"][0]["ocid"] == f"ocds-sunbid-{project}"
    # One run of the validator over every record (each package's fields are the same).
    every_record = {**packages[0], "records": [p["records"][0] for p in packages]}
    assert problems(every_record, cove) == []
    record = httpx.get(f"{server.url}/api/ocds/records/YW-GC-2026-0187").json()
    compiled = record["records"][0]["compiledRelease"]
    assert compiled["tender"]["enquiries"][0]["answer"] == "不可顺延。"
    assert compiled["tender"]["hasEnquiries"] is True


def test_the_demo_feed_and_records_validate(tmp_path: Path, cove: LibCoveOCDSConfig) -> None:
    server = ServerProcess(tmp_path / "data", SUNBID_DEMO="1").start()
    try:
        check_demo(server, cove)
        # Bad parameters get the contract's errors; an unknown project is a 404.
        for params in ({"limit": "0"}, {"limit": "1001"}, {"since": "-1"}, {"since": "x"}):
            bad = httpx.get(f"{server.url}/api/ocds/releases", params=params)
            assert bad.status_code == 422, params
            assert bad.json()["error"]["details"]["field"] in params
        missing = httpx.get(f"{server.url}/api/ocds/records/NO-SUCH")
        assert missing.status_code == 404 and missing.json()["error"]["code"] == "not_found"
        caught_up = httpx.get(f"{server.url}/api/ocds/releases?since={server.head()}").json()
        assert caught_up["releases"] == [] and "links" not in caught_up
    finally:
        server.stop()


def test_the_demo_feed_validates_on_postgresql(tmp_path: Path, cove: LibCoveOCDSConfig) -> None:
    with postgres_schema() as (url, schema):
        env = {"SUNBID_DATABASE_URL": url, "SUNBID_DATABASE_SCHEMA": schema}
        server = ServerProcess(tmp_path / "data", SUNBID_DEMO="1", **env).start()
        try:
            check_demo(server, cove)
        finally:
            server.stop()


def test_the_ocid_prefix_is_a_setting(tmp_path: Path) -> None:
    server = ServerProcess(tmp_path / "data", SUNBID_OCID_PREFIX="ocds-a1b2c3").start()
    try:
        staff = {"Authorization": "Bearer " + server.token("ocds-admin")}
        body = {"id": "P-1", "title": "项目", "category": "land", "agency": "YW-ZRZY"}
        assert httpx.post(f"{server.url}/api/projects", json=body, headers=staff).status_code == 201
        record = httpx.get(f"{server.url}/api/ocds/records/P-1").json()["records"][0]
        assert record["ocid"] == "ocds-a1b2c3-P-1"
        assert record["releases"][0]["id"] == "ocds-a1b2c3-P-1-1"
    finally:
        server.stop()
