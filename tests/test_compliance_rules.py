"""The shipped time-limit rules and disclosure catalogue: complete against DOMAIN.md's
table, editable by staff, and refused with a precise message when malformed.
"""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

import pytest

from server.compliance.catalog import CATALOG_FILE, Catalog, CatalogFileError
from server.compliance.rules import RULES_FILE, Anchor, Kind, RuleFileError, Rules
from server.domain import Domain

DOMAIN = Domain.load()
RULES = Rules.load(RULES_FILE, DOMAIN)
CATALOG = Catalog.load(CATALOG_FILE, DOMAIN, RULES)

# The statutory time limits as checked against the statutes (LEGAL-REVIEW.md),
# rule by rule: (id, confidence, applies_when, advisory, trigger, target,
# kind, amount, unit). ✔ read in the statute's text, ◐ a secondary
# source, ○ unverified.
MUST = {"must_tender": True}  # only tenders the law requires (依法必须招标)
TENDER = {"method": ["公开招标", "邀请招标"]}  # tenders, not other methods
WITHIN, AT_LEAST = "due_within", "at_least"
# fmt: off
TABLE = [
    ("construction.notice-deadline", "✔", MUST, False,
     "notice", "notice.data.deadline", AT_LEAST, 20, "day"),
    ("construction.documents-on-sale", "✔", None, False,
     "notice", "notice.data.sale_ends", AT_LEAST, 5, "day"),
    ("construction.prequalification-on-sale", "✔", None, False,
     "prequalification", "prequalification.data.sale_ends", AT_LEAST, 5, "day"),
    ("construction.prequalification-submission", "✔", MUST, False,
     "prequalification.data.sale_ends", "prequalification.data.submission_deadline",
     AT_LEAST, 5, "day"),
    ("construction.clarification-deadline", "✔", None, False,
     "clarification", "notice.data.deadline", AT_LEAST, 15, "day"),
    ("construction.objection-reply", "✔", None, False,
     "objection", "objection_reply", WITHIN, 3, "day"),
    ("construction.evaluation-candidates", "✔", MUST, False,
     "evaluation", "candidates", WITHIN, 3, "day"),
    ("construction.candidates-publicity", "✔", MUST, False,
     "candidates", "award", AT_LEAST, 3, "day"),
    ("construction.award-notice", "✔", None, False,
     "award.data.chosen_at", "award.occurred_at", WITHIN, 15, "day"),
    ("construction.award-contract", "✔", None, False,
     "award", "contract.data.signed_at", WITHIN, 30, "day"),
    ("construction.complaint-acceptance", "✔", None, False,
     "complaint.data.received_at", "complaint.occurred_at", WITHIN, 3, "workday"),
    ("construction.complaint-decision", "✔", None, False,
     "complaint", "complaint_decision", WITHIN, 30, "workday"),
    ("gov_procurement.plan-notice", "◐", None, True,
     "plan", "notice", AT_LEAST, 30, "day"),
    ("gov_procurement.single-source-publicity", "✔", None, False,
     "single_source", "single_source.data.publicity_ends", AT_LEAST, 5, "workday"),
    ("gov_procurement.notice-deadline", "✔", TENDER, False,
     "notice", "notice.data.deadline", AT_LEAST, 20, "day"),
    ("gov_procurement.documents-available", "✔", TENDER, False,
     "notice", "notice.data.sale_ends", AT_LEAST, 5, "workday"),
    ("gov_procurement.clarification-deadline", "✔", TENDER, False,
     "clarification", "notice.data.deadline", AT_LEAST, 15, "day"),
    ("gov_procurement.evaluation-award", "✔", None, False,
     "evaluation", "award", WITHIN, 9, "workday"),
    ("gov_procurement.award-contract", "✔", None, False,
     "award", "contract.data.signed_at", WITHIN, 30, "day"),
    ("gov_procurement.contract-published", "✔", None, False,
     "contract.data.signed_at", "contract", WITHIN, 2, "workday"),
    ("gov_procurement.objection-reply", "✔", None, False,
     "objection", "objection_reply", WITHIN, 7, "workday"),
    ("gov_procurement.complaint-decision", "✔", None, False,
     "complaint", "complaint_decision", WITHIN, 30, "workday"),
    ("land.notice-auction", "○", None, False,
     "notice", "auction", AT_LEAST, 20, "day"),
    ("land.listing-period", "○", None, False,
     "auction", "auction.data.listing_ends", AT_LEAST, 10, "day"),
    ("land.auction-award", "◐", None, False,
     "auction.data.listing_ends", "award", WITHIN, 10, "workday"),
    ("mining.notice-auction", "○", None, False,
     "notice", "auction", AT_LEAST, 20, "day"),
    ("mining.auction-award", "◐", None, True,
     "auction.data.listing_ends", "award", WITHIN, 5, "workday"),
    ("mining.award-publicity", "◐", None, True,
     "award", "award.data.publicity_ends", AT_LEAST, 10, "workday"),
    ("state_assets.pre-disclosure", "◐", {"control_transfer": True}, False,
     "plan.data.approved_at", "plan", WITHIN, 10, "workday"),
    ("state_assets.pre-disclosure-period", "◐", {"control_transfer": True}, False,
     "plan", "plan.data.publicity_ends", AT_LEAST, 20, "workday"),
    ("state_assets.notice-auction", "◐", {"deal": "产权转让"}, False,
     "notice", "auction", AT_LEAST, 20, "workday"),
    ("state_assets.award-publicity", "○", None, False,
     "award", "award.data.publicity_ends", AT_LEAST, 5, "workday"),
    ("soe_procurement.notice-deadline", "✔", MUST, False,
     "notice", "notice.data.deadline", AT_LEAST, 20, "day"),
    ("soe_procurement.documents-on-sale", "✔", TENDER, False,
     "notice", "notice.data.sale_ends", AT_LEAST, 5, "day"),
    ("soe_procurement.prequalification-on-sale", "✔", None, False,
     "prequalification", "prequalification.data.sale_ends", AT_LEAST, 5, "day"),
    ("soe_procurement.prequalification-submission", "✔", MUST, False,
     "prequalification.data.sale_ends", "prequalification.data.submission_deadline",
     AT_LEAST, 5, "day"),
    ("soe_procurement.clarification-deadline", "✔", TENDER, False,
     "clarification", "notice.data.deadline", AT_LEAST, 15, "day"),
    ("soe_procurement.objection-reply", "✔", TENDER, False,
     "objection", "objection_reply", WITHIN, 3, "day"),
    ("soe_procurement.evaluation-candidates", "✔", MUST, False,
     "evaluation", "candidates", WITHIN, 3, "day"),
    ("soe_procurement.candidates-publicity", "✔", MUST, False,
     "candidates", "award", AT_LEAST, 3, "day"),
    ("soe_procurement.award-notice", "✔", TENDER, False,
     "award.data.chosen_at", "award.occurred_at", WITHIN, 15, "day"),
    ("soe_procurement.award-contract", "✔", TENDER, False,
     "award", "contract.data.signed_at", WITHIN, 30, "day"),
    ("soe_procurement.complaint-acceptance", "✔", TENDER, False,
     "complaint.data.received_at", "complaint.occurred_at", WITHIN, 3, "workday"),
    ("soe_procurement.complaint-decision", "✔", TENDER, False,
     "complaint", "complaint_decision", WITHIN, 30, "workday"),
    ("rural_property.notice-auction", "○", None, True,
     "notice", "auction", AT_LEAST, 20, "day"),
    ("rural_property.auction-award", "○", None, True,
     "auction", "award", WITHIN, 10, "workday"),
    ("emission_rights.notice-auction", "○", None, True,
     "notice", "auction", AT_LEAST, 20, "day"),
    ("emission_rights.auction-award", "○", None, True,
     "auction", "award", WITHIN, 10, "workday"),
    ("all.information-published", "✔", {"agency_kind": ["法律法规授权组织", "行政机关"]}, False,
     "*.occurred_at", "*", WITHIN, 20, "workday"),
    ("all.penalty-published", "○", None, True,
     "penalty.data.decided_at", "penalty", WITHIN, 7, "workday"),
    ("all.penalty-withdrawn", "✔", None, False,
     "penalty_withdrawn.occurred_at", "penalty_withdrawn", WITHIN, 3, "day"),
]
# fmt: on
CONFIDENCE = {"✔": "statute", "◐": "secondary", "○": "memory"}


def rule_text(**changes: str | None) -> str:
    """One valid rule, with fields changed (a value is a TOML literal) or removed (None)."""
    fields: dict[str, str | None] = {
        "id": '"construction.award-contract"',
        "name": '"中标通知书发出之日起30日内订立书面合同"',
        "category": '"construction"',
        "trigger": '"award"',
        "target": '"contract.data.signed_at"',
        "kind": '"due_within"',
        "amount": "30",
        "unit": '"day"',
        "basis": '"招标投标法 §46"',
        "confidence": '"secondary"',
    }
    fields.update(changes)
    lines = [f"{k} = {v}" for k, v in fields.items() if v is not None]
    return "[[rule]]\n" + "\n".join(lines) + "\n"


# --- the shipped rules --------------------------------------------------------


def test_every_row_of_the_statutory_table_is_a_rule() -> None:
    assert [row[0] for row in TABLE] == [rule.id for rule in RULES]
    for rule_id, mark, applies, advisory, trigger, target, kind, amount, unit in TABLE:
        rule = RULES[rule_id]
        shape = (str(rule.trigger), str(rule.target), str(rule.kind), rule.amount, str(rule.unit))
        assert shape == (trigger, target, kind, amount, unit), rule_id
        assert str(rule.confidence) == CONFIDENCE[mark], rule_id
        assert rule.conditions() == applies, rule_id
        assert rule.advisory is advisory, rule_id
        assert rule.basis and rule.name and rule.basis_en != rule.basis, rule_id


def test_a_rule_is_marked_statute_only_where_its_comment_quotes_the_text_read() -> None:
    """Each rule's comment says what was read where: `read:` for a statute's
    text, `secondary:` or `memory:` otherwise, matching its confidence."""
    text = RULES_FILE.read_text("utf-8")
    for block in text.split("\n[[rule]]\n")[1:]:
        rule_id = block.split('id = "', 1)[1].split('"', 1)[0]
        said = {word for word in ("read:", "secondary:", "memory:") if f"# {word}" in block}
        expected = {"statute": "read:", "secondary": "secondary:", "memory": "memory:"}
        assert expected[str(RULES[rule_id].confidence)] in said, rule_id


def test_local_practice_is_advisory_and_never_marked_statute() -> None:
    for rule in RULES:
        if rule.category in ("rural_property", "emission_rights"):
            assert rule.advisory, rule.id
        if rule.advisory:
            assert str(rule.confidence) != "statute", rule.id
    # No rule cites the expired mining rules as its basis.
    assert not [r.id for r in RULES if "国土资规〔2017〕7号" in r.basis and "失效" not in r.basis]


def test_lookups_resolve_all_and_every_event() -> None:
    ids = {r.id for r in RULES.triggered_by("gov_procurement", "contract")}
    assert ids == {"gov_procurement.contract-published", "all.information-published"}
    ids = {r.id for r in RULES.targeting("land", "penalty")}
    assert ids == {"all.penalty-published", "all.information-published"}
    ids = {r.id for r in RULES.triggered_by("construction", "evaluation")}
    assert ids == {"construction.evaluation-candidates", "all.information-published"}
    assert "construction.candidates-publicity" in {
        r.id for r in RULES.targeting("construction", "award")
    }
    assert RULES.triggered_by("construction", "no_such_stage") == ()


def test_rules_serialise_with_the_contract_field_names() -> None:
    body = RULES.to_json()
    assert len(body) == len(RULES)
    keys = {"id", "category", "trigger", "target", "kind", "amount", "unit", "basis"}
    assert all(keys | {"confidence"} <= set(rule) for rule in body)
    award = next(r for r in body if r["id"] == "construction.award-contract")
    assert award["target"] == "contract.data.signed_at" and award["kind"] == "due_within"


def test_a_changed_rule_file_loads_the_changed_value(tmp_path: Path) -> None:
    text = RULES_FILE.read_text("utf-8")
    block = re.search(r'id = "construction\.award-contract"(.*?)\n\n', text, re.S)
    assert block is not None and "amount = 30" in block[0]
    changed = text.replace(block[0], block[0].replace("amount = 30", "amount = 45"))
    path = tmp_path / "rules.toml"
    path.write_text(changed, "utf-8")
    rules = Rules.load(path, DOMAIN)
    assert rules["construction.award-contract"].amount == 45
    assert rules["gov_procurement.award-contract"].amount == 30
    assert rules["construction.award-contract"].kind is Kind.DUE_WITHIN


BAD_RULES = [
    (rule_text(deadline="3"), "'construction.award-contract': deadline"),
    (rule_text(basis=None), "'construction.award-contract': basis"),
    (rule_text(name='""'), "'construction.award-contract': name"),
    (rule_text(amount='"30"'), "'construction.award-contract': amount"),
    (rule_text(amount="0"), "'construction.award-contract': amount"),
    (rule_text(amount="2.5"), "'construction.award-contract': amount"),
    (rule_text(amount="true"), "'construction.award-contract': amount"),
    (rule_text(kind='"within"'), "'construction.award-contract': kind"),
    (rule_text(unit='"week"'), "'construction.award-contract': unit"),
    (rule_text(confidence='"sure"'), "'construction.award-contract': confidence"),
    (rule_text(category='"airport"'), "'construction.award-contract': category"),
    (rule_text(trigger='"auction"'), "'construction.award-contract': trigger"),  # not a stage here
    (rule_text(trigger='"bidding"'), "'construction.award-contract': trigger"),  # no such stage
    (rule_text(target='"contract.signed_at"'), "'construction.award-contract': target"),
    (rule_text(target='"contract.data."'), "'construction.award-contract': target"),
    (rule_text(target='"contract.data.Signed-At"'), "'construction.award-contract': target"),
    (rule_text(target='"award"'), "'construction.award-contract': target"),  # same as trigger
    (rule_text(target='"*"'), "'construction.award-contract': target"),  # * outside "all"
    (rule_text(id='"Award contract"'), "rule #1 'Award contract': id"),
    (rule_text(id='"land.award-contract"'), "'land.award-contract': id"),  # wrong category
    (rule_text(id="7"), "rule #1: id"),
    (
        rule_text(id='"all.plan"', category='"all"', trigger='"plan"', target='"notice"'),
        "'all.plan': trigger",  # plan is not a stage of every category
    ),
    (
        rule_text(id='"all.any"', category='"all"', trigger='"*.occurred_at"', target='"penalty"'),
        "'all.any': target",  # * on one side only
    ),
    (rule_text(anchor='"received"'), "'construction.award-contract': anchor"),
    (
        rule_text(trigger='"contract.data.signed_at"', target='"contract"', anchor='"occurred"'),
        "'construction.award-contract': anchor",  # a data time names its own moment
    ),
    (rule_text() + rule_text(), "rule #2 'construction.award-contract': id"),  # duplicate
    (rule_text(applies_when="{ size = 3 }"), "'construction.award-contract': applies_when"),
    (rule_text(applies_when="{ must_tender = 1 }"), "'construction.award-contract': applies_when"),
    (rule_text(applies_when="{ method = [] }"), "'construction.award-contract': applies_when"),
    (rule_text(applies_when="{}"), "'construction.award-contract': applies_when"),
    (rule_text(advisory='"yes"'), "'construction.award-contract': advisory"),
    (rule_text(after_period="true"), "'construction.award-contract': after_period"),  # due_within
    (rule_text(if_stated="true", target='"contract"'), "'construction.award-contract': if_stated"),
    (rule_text() + '[must_tender]\nbasis = "x"\n', "must_tender: threshold"),
    (
        rule_text() + '[must_tender]\nbasis = "x"\n[[must_tender.threshold]]\nzh = "施工"\n',
        "threshold #1 '施工': en",
    ),
    ("[rules]\nid = 1\n", "rules: unknown key"),
    ("rule = 1\n", "rule: write each entry"),
    ("", "no [[rule]]"),
]


@pytest.mark.parametrize(("text", "where"), BAD_RULES)
def test_a_malformed_rule_names_file_entry_and_field(tmp_path: Path, text: str, where: str) -> None:
    path = tmp_path / "rules.toml"
    path.write_text(text, "utf-8")
    with pytest.raises(RuleFileError) as caught:
        Rules.load(path, DOMAIN)
    message = str(caught.value)
    assert message.startswith(f"{path}: "), message
    assert where in message, message


def test_the_minimal_valid_rule_loads(tmp_path: Path) -> None:
    path = tmp_path / "rules.toml"
    path.write_text(rule_text(), "utf-8")
    assert len(Rules.load(path, DOMAIN)) == 1


def test_the_anchor_defaults_to_publication_and_moves_the_start(tmp_path: Path) -> None:
    path = tmp_path / "rules.toml"
    path.write_text(rule_text(), "utf-8")
    [rule] = Rules.load(path, DOMAIN)
    assert rule.anchor is Anchor.PUBLISHED and rule.start == rule.trigger
    assert rule.to_json()["anchor"] == "published"
    path.write_text(rule_text(anchor='"occurred"'), "utf-8")
    [rule] = Rules.load(path, DOMAIN)
    assert (str(rule.trigger), str(rule.start)) == ("award", "award.occurred_at")
    assert rule.to_json()["anchor"] == "occurred"


def test_every_shipped_rule_on_a_stage_states_its_anchor_with_the_statute() -> None:
    """The anchor is a legal reading: no shipped rule may leave it to the default."""
    raw = tomllib.loads(RULES_FILE.read_text("utf-8"))["rule"]
    text = RULES_FILE.read_text("utf-8")
    for entry in raw:
        rule = RULES[entry["id"]]
        if rule.trigger.field != "published_at" or rule.trigger.stage == "*":
            assert "anchor" not in entry and rule.anchor is None, rule.id
            assert rule.to_json()["anchor"] is None
            continue
        assert entry.get("anchor") in ("occurred", "published"), rule.id
        # the comment just above the anchor line gives the reason
        block = text[text.index(f'id = "{rule.id}"') :]
        before = block[: block.index("\nanchor = ")]
        assert before.splitlines()[-1].startswith("# "), rule.id
    # the moments the issue names are anchored where the law counts
    for rule_id in (
        "construction.evaluation-candidates",
        "construction.award-contract",
        "construction.complaint-decision",
        "gov_procurement.award-contract",
    ):
        assert RULES[rule_id].anchor is Anchor.OCCURRED, rule_id


# --- the catalogue -------------------------------------------------------------


def test_catalogue_links_are_valid_and_every_rule_is_linked() -> None:
    linked: set[str] = set()
    for item in CATALOG:
        linked.update(item.rules)
        for rule_id in item.rules:
            assert RULES[rule_id].category in ("all", *item.categories), (item.code, rule_id)
        for stage in item.stages:
            assert any(stage in DOMAIN.categories[c].stages for c in item.categories)
    assert linked == {r.id for r in RULES}


def test_catalogue_covers_the_seed_items_and_every_stage() -> None:
    groups = {item.name[0] for item in CATALOG}
    seed = {"交易前提条件", "交易信息", "交易过程", "交易结果", "合同及履约", "信用信息"}
    seed |= {"异议质疑", "投诉处理", "行政处罚", "服务收费", "专家抽取", "交易场所"}
    assert seed <= groups
    # The seed's heading is 举报投诉: reports sit beside complaints.
    assert ("投诉处理", "举报") in {item.name[:2] for item in CATALOG}
    for code, category in DOMAIN.categories.items():
        for stage in category.lifecycle:
            assert CATALOG.for_stage(code, stage), (code, stage)
    carried = {stage for item in CATALOG for stage in item.stages}
    # Every oversight stage; `registered` and `amended` record the project
    # itself (no staff publication, so no catalogue item).
    assert {s for s, stage in DOMAIN.stages.items() if stage.oversight} <= carried
    assert 20 <= len(CATALOG) <= 40


def test_catalogue_serialises_with_the_contract_field_names() -> None:
    fields = {"code", "name", "content", "basis", "time_limit", "body", "channel"}
    fields |= {"audience", "mode", "level", "stages"}
    for item in CATALOG.to_json():
        assert fields <= set(item)
        assert 1 <= len(item["name"]) <= 3
        assert item["audience"] in ("全社会", "特定对象") and item["mode"] in ("主动", "依申请")
    penalty = CATALOG["GGZY-09-01"].to_json()
    assert penalty["rules"] == ["all.penalty-published", "all.penalty-withdrawn"]
    assert penalty["stages"] == ["penalty", "penalty_withdrawn"]


# LEGAL-REVIEW.md "The catalogue": the items it found missing, by code:
# (code, categories or None for all, stages, a citation the basis must hold)
ADDED = [
    ("GGZY-01-04", ("land",), (), "国土资源部令第39号）第六条"),
    ("GGZY-02-09", ("gov_procurement",), ("single_source",), "《政府采购法实施条例》第三十八条"),
    ("GGZY-05-03", ("gov_procurement",), ("performance",), "《政府采购法实施条例》第四十五条"),
    ("GGZY-08-02", None, (), "《政府采购法》第七十条"),
    ("GGZY-13-01", None, (), "《政府信息公开条例》第二十七条至第三十三条"),
]


@pytest.mark.parametrize(("code", "categories", "stages", "cited"), ADDED)
def test_the_items_the_review_found_missing_are_listed(
    code: str, categories: tuple[str, ...] | None, stages: tuple[str, ...], cited: str
) -> None:
    item = CATALOG[code]
    assert item.categories == (categories or tuple(DOMAIN.categories))
    assert item.stages == stages
    assert cited in item.basis
    assert item.basis_en != item.basis
    assert item.mode == "主动" and item.audience == "全社会"


def test_the_new_items_say_what_the_statutes_say() -> None:
    assert "不少于5个工作日" in CATALOG["GGZY-02-09"].time_limit
    assert "法律未规定具体天数" in CATALOG["GGZY-05-03"].time_limit
    guide = CATALOG["GGZY-13-01"].time_limit
    assert "20个工作日内答复" in guide and "最长不超过20个工作日" in guide
    assert "举报" in CATALOG["GGZY-08-02"].name[-1]


def test_the_new_limits_are_linked_from_their_items() -> None:
    for code, rule_id in (
        ("GGZY-02-09", "gov_procurement.single-source-publicity"),
        ("GGZY-09-01", "all.penalty-withdrawn"),
        ("GGZY-08-01", "construction.complaint-acceptance"),
        ("GGZY-01-03", "state_assets.pre-disclosure"),
    ):
        assert rule_id in CATALOG[code].rules, (code, rule_id)


def test_objection_replies_go_actively_to_the_objector() -> None:
    for code in ("GGZY-07-01", "GGZY-07-02"):
        assert (CATALOG[code].mode, CATALOG[code].audience) == ("主动", "特定对象"), code


def test_no_item_cites_an_expired_or_ambiguous_basis() -> None:
    for item in CATALOG:
        assert "国土资规〔2017〕7号" not in item.basis, item.code
        assert "Guozigui [2017] No. 7" not in item.basis_en, item.code
        # 公共资源交易平台管理暂行办法 is also an Order No. 39: name its issuers.
        if "公共资源交易平台管理暂行办法" in item.basis:
            assert "国家发展改革委等14部委令第39号" in item.basis, item.code
            assert "NDRC and 13 other departments" in item.basis_en, item.code
    for code in ("GGZY-02-05", "GGZY-04-05"):
        assert "自然资规〔2023〕1号" in CATALOG[code].basis, code
        assert "Zirangui [2023] No. 1" in CATALOG[code].basis_en, code
    assert "活动结束后" in CATALOG["GGZY-04-05"].time_limit
    assert "确定竞得人后" not in CATALOG["GGZY-04-05"].time_limit


def test_where_the_law_says_promptly_no_day_limit_is_claimed() -> None:
    for code in ("GGZY-03-04", "GGZY-04-02", "GGZY-05-03"):
        limit = CATALOG[code].time_limit
        assert "及时" in limit and "法律未规定具体天数" in limit, code
        assert not re.search(r"\d+个?(工作)?日", limit), (code, limit)


# (code, citations its basis must hold, citations it must no longer hold)
BASES = [
    ("GGZY-01-03", ["第32号）第十三条"], []),
    ("GGZY-02-02", ["财政部令第87号"], []),
    (
        "GGZY-03-02",
        ["《招标投标法》第三十七条", "财政部令第87号）第六十九条"],
        ["第四十六条", "第四十三条"],
    ),
    ("GGZY-06-01", ["《政府采购法实施条例》第六十三条", "《招标投标法实施条例》第七十九条"], []),
    ("GGZY-08-01", ["《政府采购法实施条例》第五十八条"], []),
    ("GGZY-09-01", ["《行政处罚法》第四十八条", "国办发〔2015〕51号"], ["地方公开事项标准目录"]),
    ("GGZY-11-01", ["财库〔2016〕198号"], []),
]


@pytest.mark.parametrize(("code", "present", "absent"), BASES)
def test_the_bases_the_review_corrected(code: str, present: list[str], absent: list[str]) -> None:
    basis = CATALOG[code].basis
    for cited in present:
        assert cited in basis, (code, cited)
    for cited in absent:
        assert cited not in basis, (code, cited)


def test_the_english_basis_cites_the_same_documents() -> None:
    # basis_en is kept in step by hand: every document number in the Chinese
    # basis appears in the English one.
    for item in CATALOG:
        for year, number in re.findall(r"〔(\d{4})〕(\d+)号", item.basis):
            assert f"[{year}] No. {number}" in item.basis_en, (item.code, year, number)
        for number in re.findall(r"令第(\d+)号", item.basis):
            assert f"Order No. {number}" in item.basis_en, (item.code, number)


def test_state_asset_pre_disclosure_has_its_terms() -> None:
    limit = CATALOG["GGZY-01-03"].time_limit
    assert "10个工作日内" in limit and "不少于20个工作日" in limit and "控制权" in limit


def test_the_whole_catalogue_names_its_basis() -> None:
    header = CATALOG_FILE.read_text("utf-8").split("[[item]]")[0]
    assert "国办发〔2017〕97号" in header


def item_text(**changes: str | None) -> str:
    fields: dict[str, str | None] = {
        "code": '"GGZY-09-01"',
        "name": '["行政处罚", "行政处罚决定"]',
        "content": '"决定书文号、违法事实、处罚内容"',
        "basis": '"《行政处罚法》第四十八条"',
        "time_limit": '"作出决定之日起7个工作日内"',
        "rules": '["all.penalty-published"]',
        "body": '"行业监管部门"',
        "channel": '"义乌市公共资源交易网"',
        "audience": '"全社会"',
        "mode": '"主动"',
        "level": '["市", "县"]',
        "stages": '["penalty"]',
    }
    fields.update(changes)
    lines = [f"{k} = {v}" for k, v in fields.items() if v is not None]
    return "[[item]]\n" + "\n".join(lines) + "\n"


BAD_ITEMS = [
    (item_text(rules='["all.no-such-rule"]'), "'GGZY-09-01': rules"),
    (item_text(rules='["land.auction-award"]', categories='["construction"]'), "rules"),
    (item_text(stages='["bidding"]'), "'GGZY-09-01': stages"),
    (item_text(stages='["candidates"]', categories='["land"]'), "'GGZY-09-01': stages"),
    (item_text(stages='["penalty", "penalty"]'), "'GGZY-09-01': stages"),
    (item_text(categories='["airport"]'), "'GGZY-09-01': categories"),
    (item_text(audience='"公众"'), "'GGZY-09-01': audience"),
    (item_text(mode='"被动"'), "'GGZY-09-01': mode"),
    (item_text(level='["省"]'), "'GGZY-09-01': level"),
    (item_text(level="[]"), "'GGZY-09-01': level"),
    (item_text(name='["一", "二", "三", "四"]'), "'GGZY-09-01': name"),
    (item_text(name='"行政处罚"'), "'GGZY-09-01': name"),
    (item_text(content=None), "'GGZY-09-01': content"),
    (item_text(owner='"x"'), "'GGZY-09-01': owner"),
    (item_text(code='"行政处罚"'), "item #1 '行政处罚': code"),
    (item_text() + item_text(), "item #2 'GGZY-09-01': code"),
]


@pytest.mark.parametrize(("text", "where"), BAD_ITEMS)
def test_a_malformed_catalogue_item_names_file_item_and_field(
    tmp_path: Path, text: str, where: str
) -> None:
    path = tmp_path / "catalog.toml"
    path.write_text(text, "utf-8")
    with pytest.raises(CatalogFileError) as caught:
        Catalog.load(path, DOMAIN, RULES)
    message = str(caught.value)
    assert message.startswith(f"{path}: "), message
    assert where in message, message


def test_the_minimal_valid_item_loads(tmp_path: Path) -> None:
    path = tmp_path / "catalog.toml"
    path.write_text(item_text(), "utf-8")
    assert len(Catalog.load(path, DOMAIN, RULES)) == 1
