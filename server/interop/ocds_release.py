"""One OCDS 1.1 release per event of the log: which tag, which fields.

A release is a pure function of its event (and, for a correction, the event
it corrects and the earlier corrections of the same event), the ocid prefix
and the agencies' names: the same event gives the same bytes whenever it is
asked for. Each release says only what its
event said; the compiled release (ocds.py, with ocdsmerge) folds them into
the project's current state. docs/ocds.md is the mapping in prose; the
tables here are the same mapping in code.

- Every release names the agency as `procuringEntity` (and `buyer` in the
  procurement categories), and carries the event itself as a document (its
  title, its body) in the part of the release its stage belongs to.
- Objections, complaints, their answers and penalties are documents of
  the tender (`complaints`); a correction, a clarification, a project
  amendment and a penalty's withdrawal are amendments.
- One award per project (`award`) and one contract (`contract`): Sunbid
  refuses a second award unless the first was corrected, and a later award
  then replaces the earlier one in the compiled release.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from server.facts import DataField, Kind
from server.interop.ocds_values import CURRENCY, count, money, number, prune, text, when

AWARD_ID = "award"
CONTRACT_ID = "contract"
# The categories where the agency buys (the others sell: land, mining rights,
# state and rural property, emission rights, where OCDS has no seller role).
PROCUREMENT = frozenset({"construction", "gov_procurement", "soe_procurement"})
MAIN_CATEGORY = {"construction": "works"}  # procurement's goods or services: not recorded
# 招标/采购方式 → tender.procurementMethod (the text also goes to procurementMethodDetails).
METHODS = {
    "公开招标": "open",
    "邀请招标": "selective",
    "竞争性谈判": "selective",
    "竞争性磋商": "selective",
    "询价": "selective",
    "单一来源": "limited",
    "单一来源采购": "limited",
    "网络竞价": "open",
    "挂牌": "open",
    "拍卖": "open",
    "招标": "open",
}
# 评标/评审方法 → tender.awardCriteria (the text also goes to awardCriteriaDetails).
AWARD_CRITERIA = {
    "综合评估法": "ratedCriteria",
    "综合评分法": "ratedCriteria",
    "经评审的最低投标价法": "lowestCost",
    "最低评标价法": "lowestCost",
    "最低价法": "priceOnly",
}
# Facts with a field of their own in the tender; other times become milestones.
TENDER_PERIOD_END = ("deadline", "listing_ends")
TENDER_PERIOD_START = ("auction_starts",)
SUBJECT_TEXTS = ("parcel", "use", "plot_ratio", "mineral")
SUBJECT_QUANTITIES = ("area_m2", "area_mu", "area_km2")
# Facts stated elsewhere in a release, never repeated as a milestone.
NOT_MILESTONES = frozenset(
    {*TENDER_PERIOD_END, *TENDER_PERIOD_START, "signed_at", "chosen_at", "accepted_at"}
)
OVERSIGHT_DOCUMENTS = {
    "objection": "complaints",
    "objection_reply": "complaints",
    "complaint": "complaints",
    "complaint_decision": "complaints",
    "penalty": None,  # no code in documentType; the document's title says 行政处罚
}
# Where a stage's facts live, for its document and for the amendments correcting it.
PHASES = {
    "registered": "tender",
    "amended": "tender",
    "plan": "planning",
    "candidates": "award",
    "award": "award",
    "contract": "contract",
    "performance": "implementation",
}
AMENDMENT_OWNERS = {"planning": "tender", "implementation": "contract"}
UPDATE_TAGS = {
    "planning": "planningUpdate",
    "tender": "tenderAmendment",
    "award": "awardUpdate",
    "contract": "contractAmendment",
    "implementation": "implementationUpdate",
}


@dataclass(frozen=True)
class Context:
    """What a release needs besides its event."""

    ocid_prefix: str
    agencies: Mapping[str, str]  # code → name (the directory's); unknown codes stand as names
    facts: Mapping[str, DataField]  # the vocabulary's labels, kinds and units

    def ocid(self, project: str) -> str:
        return f"{self.ocid_prefix}-{project}"


def release_of(
    event: Mapping[str, Any],
    context: Context,
    corrected: Mapping[str, Any] | None = None,
    basis: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """The release of `event`; `corrected`: the event a `correction` or
    `penalty_withdrawn` names in `data.corrects`, if the log holds it;
    `basis`: what a correction restates (`corrected_basis`), `corrected` if not given."""
    draft = Draft(event, context)
    stage = event["stage"]
    if stage in ("correction", "penalty_withdrawn"):
        if basis is None and corrected is not None:
            basis = corrected_basis(event, {corrected["seq"]: corrected}) or corrected
        draft.amend(corrected, basis)
    else:
        MAPPERS.get(stage, _other)(draft, draft.data)
    return draft.finish()


def corrected_seq(event: Mapping[str, Any]) -> int | None:
    """The seq a correction or withdrawal names, if it names one."""
    if event["stage"] not in ("correction", "penalty_withdrawn"):
        return None
    data = event.get("data")
    seq = data.get("corrects") if isinstance(data, dict) else None
    return seq if isinstance(seq, int) and not isinstance(seq, bool) else None


def corrected_basis(
    event: Mapping[str, Any], earlier: Mapping[int, Mapping[str, Any]]
) -> Mapping[str, Any] | None:
    """What a correction restates: the event at the start of its chain (a
    correction of a correction corrects the same facts), with every correction
    of that event up to this one applied in seq order, so that a second
    correction (of another fact, or of the first correction) never puts back a
    value an earlier one corrected. `earlier`: seq → event, the project's
    events before this one (those the log holds); None when the start of the
    chain is not among them."""
    root = _chain_start(event, earlier)
    if root is None:
        return None
    data = dict(_data(root))
    fixes = {seq: other for seq, other in earlier.items() if seq < event["seq"]}
    for seq in sorted({**fixes, event["seq"]: event}):
        other = event if seq == event["seq"] else fixes[seq]
        if other["stage"] != "correction":
            continue
        start = _chain_start(other, earlier)
        field = _corrected_field(other, earlier)
        if start is not None and start["seq"] == root["seq"] and field is not None:
            data[field] = _data(other)["now"]
    return {**root, "data": data}


def _corrected_field(
    correction: Mapping[str, Any], earlier: Mapping[int, Mapping[str, Any]]
) -> str | None:
    """The fact a correction sets (`field`, with a value `now`); for a
    correction of a correction's `now`, the fact the earlier one set."""
    data = _data(correction)
    field = data.get("field")
    if not isinstance(field, str) or "now" not in data:
        return None
    seq = corrected_seq(correction)
    target = earlier.get(seq) if seq is not None and seq < correction["seq"] else None
    if field == "now" and target is not None and target["stage"] == "correction":
        return _corrected_field(target, earlier)
    return field


def _chain_start(
    event: Mapping[str, Any], earlier: Mapping[int, Mapping[str, Any]]
) -> Mapping[str, Any] | None:
    """The first event a chain of corrections ending at `event` corrects (each
    link an earlier event of the same project), or None if a link is missing."""
    current = event
    while current["stage"] == "correction":
        seq = corrected_seq(current)
        found = earlier.get(seq) if seq is not None and seq < current["seq"] else None
        if found is None or found["project"] != event["project"]:
            return None
        current = found
    return current if current is not event else None


class Draft:
    """A release being written: the parts its stage fills in."""

    def __init__(self, event: Mapping[str, Any], context: Context) -> None:
        self.event = event
        self.context = context
        self.ocid = context.ocid(event["project"])
        self.id = f"{self.ocid}-{event['seq']}"
        # The event whose facts are mapped: the event itself, or the one a correction corrects.
        self.source: Mapping[str, Any] = event
        self.data: Mapping[str, Any] = _data(event)
        # A correction maps the facts of what it corrects (with the corrected
        # value), but not that event's document or amendment: only its own.
        self.remapping = False
        self.tags: list[str] = []
        self.parties: dict[str, dict[str, Any]] = {}
        self.planning: dict[str, Any] = {}
        self.tender: dict[str, Any] = {}
        self.award: dict[str, Any] = {}
        self.contract: dict[str, Any] = {}

    # --- the parts ------------------------------------------------------------------------

    def party(self, name: str, *roles: str, party_id: str | None = None) -> dict[str, str]:
        """Name an organisation with its roles; its reference for use elsewhere.
        Firms are known only by name: the name is their id."""
        party_id = party_id or name
        found = self.parties.setdefault(party_id, {"id": party_id, "name": name, "roles": []})
        found["roles"] += [role for role in roles if role not in found["roles"]]
        return {"id": party_id, "name": name}

    def document(self, phase: str, kind: str | None, description: str | None = None) -> None:
        if self.remapping:
            return
        event = self.event
        body = text(event.get("body")) or description or self.summary()
        document = {
            "id": str(event["seq"]),
            "documentType": kind,
            "title": text(event.get("title")),
            "description": body,
            "datePublished": event["published_at"],
            "language": "zh",
        }
        self.part(phase).setdefault("documents", []).append(document)

    def part(self, phase: str) -> dict[str, Any]:
        if phase == "planning":
            return self.planning
        if phase == "award":
            self.award.setdefault("id", AWARD_ID)
            return self.award
        if phase in ("contract", "implementation"):
            self.contract.setdefault("id", CONTRACT_ID)
            self.contract.setdefault("awardID", AWARD_ID)
            if phase == "implementation":
                implementation: dict[str, Any] = self.contract.setdefault("implementation", {})
                return implementation
            return self.contract
        return self.tender

    def milestone(self, key: str, value: object) -> None:
        due = when(value)
        fact = self.context.facts.get(key)
        if due is None:
            return
        # A publicity period follows candidates, awards, single-source notices:
        # one milestone each, so a later one does not replace an earlier.
        milestone_id = f"{self.source['stage']}.{key}" if key == "publicity_ends" else key
        self.tender.setdefault("milestones", []).append(
            {
                "id": milestone_id,
                "title": fact.zh if fact else key,
                "type": "engagement",
                "dueDate": due,
            }
        )

    def amendment(self, phase: str, rationale: str | None, description: str | None) -> None:
        """The event amends what was published before it (a clarification, a
        project amendment): the amendment is this release."""
        if self.remapping:
            return
        self.add_amendment(phase, {"rationale": rationale, "description": description})

    def add_amendment(self, phase: str, fields: dict[str, Any]) -> None:
        event = self.event
        entry = {"id": str(event["seq"]), "date": event["published_at"], **fields}
        entry["releaseID"] = self.id
        # Neither planning nor implementation has amendments in OCDS: the
        # tender's and the contract's stand for them.
        owner = AMENDMENT_OWNERS.get(phase, phase)
        self.part(owner).setdefault("amendments", []).append(entry)

    def summary(self) -> str | None:
        """The facts of the event as a line of text (for a document without a body)."""
        facts = self.context.facts
        shown = []
        for key, value in self.data.items():
            if isinstance(value, str | int | float) and not isinstance(value, bool):
                label = facts[key].zh if key in facts else key
                shown.append(f"{label}：{value}")
        return "；".join(shown) or None

    # --- corrections ----------------------------------------------------------------------

    def amend(self, corrected: Mapping[str, Any] | None, basis: Mapping[str, Any] | None) -> None:
        """A correction or a penalty's withdrawal: an amendment of the release it
        names (`corrected`), where the facts it corrects live (`basis`, the event
        at the start of a chain of corrections), and the corrected value in its field."""
        data, event = self.data, self.event
        field = text(data.get("field"))
        phase = "tender"
        if basis is not None:
            phase = PHASES.get(basis["stage"], "tender")
            if (
                event["stage"] == "correction"
                and field is not None
                and "now" in data
                and basis["stage"] not in ("correction", "penalty_withdrawn")
            ):
                # The basis has this correction's value in its field already.
                self.remapping, self.source, self.data = True, basis, _data(basis)
                MAPPERS.get(basis["stage"], _other)(self, self.data)
                self.remapping, self.source, self.data = False, event, data
        self.tags = [UPDATE_TAGS[phase]]
        description = text(event.get("body"))
        if field is not None and description is None:
            description = f"{field}：{data.get('was')} → {data.get('now')}"
        amends = {
            "rationale": text(event.get("title")) or text(data.get("reason")),
            "description": description,
        }
        if corrected is not None:
            amends["amendsReleaseID"] = f"{self.ocid}-{corrected['seq']}"
        self.add_amendment(phase, amends)
        self.document(phase, "clarifications" if phase == "tender" else None)

    # --- the release ----------------------------------------------------------------------

    def finish(self) -> dict[str, Any]:
        event, context = self.event, self.context
        category = event["category"]
        agency = event["agency"]
        roles = ("buyer", "procuringEntity") if category in PROCUREMENT else ("procuringEntity",)
        entity = self.party(context.agencies.get(agency, agency), *roles, party_id=agency)
        tender = {
            "id": event["project"],
            "procuringEntity": entity,
            "mainProcurementCategory": MAIN_CATEGORY.get(category),
            **self.tender,
        }
        release = {
            "ocid": self.ocid,
            "id": self.id,
            "date": event["published_at"],
            "tag": self.tags or ["tenderUpdate"],
            "initiationType": "tender",
            "language": "zh",
            "parties": list(self.parties.values()),
            "buyer": entity if category in PROCUREMENT else None,
            "planning": self.planning,
            "tender": tender,
            "awards": [self.award] if self.award else None,
            "contracts": [self.contract] if self.contract else None,
        }
        pruned: dict[str, Any] = prune(release)
        return pruned


# --- the stages ---------------------------------------------------------------------------


def _data(event: Mapping[str, Any]) -> Mapping[str, Any]:
    data = event.get("data")
    return data if isinstance(data, dict) else {}


def _registered(draft: Draft, data: Mapping[str, Any]) -> None:
    draft.tags = ["planning"]
    _project_facts(draft, data)


def _amended(draft: Draft, data: Mapping[str, Any]) -> None:
    draft.tags = ["tenderAmendment"]
    changes = data.get("changes")
    changes = changes if isinstance(changes, dict) else {}
    _project_facts(draft, changes)
    named = "、".join(str(key) for key in changes)
    draft.amendment("tender", text(data.get("reason")), f"变更：{named}" if named else None)


def _project_facts(draft: Draft, facts: Mapping[str, Any]) -> None:
    """A project's registered or amended title and budget."""
    draft.tender["title"] = text(facts.get("title"))
    currency = facts.get("currency")
    currency = currency if isinstance(currency, str) and len(currency) == 3 else CURRENCY
    budget = money(facts.get("budget"), currency)
    if budget is not None:
        draft.planning["budget"] = {"id": "budget", "amount": budget}


def _plan(draft: Draft, data: Mapping[str, Any]) -> None:
    draft.tags = ["planning"]
    draft.tender["status"] = "planned"
    draft.tender["description"] = text(data.get("items"))
    budget = money(data.get("budget"))
    if budget is not None:
        draft.planning["budget"] = {"id": "budget", "amount": budget}
    draft.document("planning", "plannedProcurementNotice")


def _single_source(draft: Draft, data: Mapping[str, Any]) -> None:
    draft.tags = ["tender"]
    tender = draft.tender
    tender.update(status="active", procurementMethod="limited")
    tender["procurementMethodDetails"] = "单一来源采购"
    tender["procurementMethodRationale"] = text(data.get("reason"))
    tender["value"] = money(data.get("budget"))
    supplier = text(data.get("supplier"))
    if supplier is not None:
        tender["tenderers"] = [draft.party(supplier, "tenderer")]
    _tender_facts(draft, data)
    draft.document("tender", "tenderNotice")


def _notice(draft: Draft, data: Mapping[str, Any]) -> None:
    draft.tags = ["tender"]
    draft.tender["status"] = "active"
    _tender_facts(draft, data)
    draft.document("tender", "tenderNotice")


def _clarification(draft: Draft, data: Mapping[str, Any]) -> None:
    draft.tags = ["tenderAmendment"]
    _tender_facts(draft, data)
    draft.amendment("tender", text(draft.source.get("title")), text(draft.source.get("body")))
    draft.document("tender", "clarifications")


def _opening(draft: Draft, data: Mapping[str, Any]) -> None:
    draft.tags = ["tenderUpdate"]
    _tender_facts(draft, data)
    draft.document("tender", "bidders")


def _auction(draft: Draft, data: Mapping[str, Any]) -> None:
    draft.tags = ["tenderUpdate"]
    _tender_facts(draft, data)
    draft.document("tender", None)


def _evaluation(draft: Draft, data: Mapping[str, Any]) -> None:
    draft.tags = ["tenderUpdate"]
    # Here `method` is the evaluation method (评标办法), not the tender's.
    _award_criteria(draft, data.get("method"))
    _tender_facts(draft, {k: v for k, v in data.items() if k != "method"})
    draft.document("tender", "evaluationReports")


def _candidates(draft: Draft, data: Mapping[str, Any]) -> None:
    """中标候选人公示: the award to come, pending, with the candidates in rank order."""
    draft.tags = ["award"]
    ranked = []
    tenderers = []
    listed = data.get("candidates")
    for position, candidate in enumerate(listed if isinstance(listed, list) else [], 1):
        name = text(candidate.get("name")) if isinstance(candidate, dict) else text(candidate)
        if name is None:
            continue
        tenderers.append(draft.party(name, "tenderer"))
        rank = candidate.get("rank", position) if isinstance(candidate, dict) else position
        price = money(candidate.get("price")) if isinstance(candidate, dict) else None
        shown = f"第{rank}名：{name}"
        ranked.append(shown + (f"（{price['amount']}元）" if price else ""))
    draft.tender["tenderers"] = tenderers
    draft.award.update(id=AWARD_ID, status="pending", description="；".join(ranked) or None)
    _tender_facts(draft, {k: v for k, v in data.items() if k != "candidates"})
    draft.document("award", "awardNotice")


def _award(draft: Draft, data: Mapping[str, Any]) -> None:
    draft.tags = ["award"]
    award = draft.award
    award.update(id=AWARD_ID, status="active")
    award["date"] = when(data.get("chosen_at")) or draft.source["published_at"]
    award["value"] = money(data.get("amount"))
    winner = text(data.get("winner"))
    if winner is not None:
        award["suppliers"] = [draft.party(winner, "tenderer", "supplier")]
    award["contractPeriod"] = _duration(data)
    draft.tender["status"] = "complete"
    draft.tender["numberOfTenderers"] = count(data.get("bidders"))
    _milestones(draft, data)
    draft.document("award", "awardNotice")


def _contract(draft: Draft, data: Mapping[str, Any]) -> None:
    draft.tags = ["contract"]
    contract = draft.part("contract")
    contract["status"] = "active"
    contract["dateSigned"] = when(data.get("signed_at"))
    contract["value"] = money(data.get("amount"))
    contract["period"] = _duration(data)
    draft.document("contract", "contractNotice")


def _performance(draft: Draft, data: Mapping[str, Any]) -> None:
    draft.tags = ["implementation"]
    implementation = draft.part("implementation")
    paid = money(data.get("paid"))
    if paid is not None:
        seq = str(draft.source["seq"])
        payment = {"id": seq, "date": draft.source["published_at"], "value": paid}
        implementation["transactions"] = [payment]
    accepted = when(data.get("accepted_at"))
    if accepted is not None:
        implementation["milestones"] = [
            {
                "id": "accepted_at",
                "title": "验收",
                "type": "delivery",
                "status": "met",
                "dateMet": accepted,
            }
        ]
    kind = "completionCertificate" if accepted is not None else "physicalProgressReport"
    draft.document("implementation", kind)


def _failed(draft: Draft, data: Mapping[str, Any]) -> None:
    """流标 (bids came, too few or none valid) is unsuccessful; 终止 without bids, cancelled."""
    bidders = count(data.get("bidders"))
    unsuccessful = bidders is not None
    draft.tags = ["tenderUpdate" if unsuccessful else "tenderCancellation"]
    draft.tender["status"] = "unsuccessful" if unsuccessful else "cancelled"
    draft.tender["numberOfTenderers"] = bidders
    draft.document("tender", "cancellationDetails", text(data.get("reason")))


def _oversight(draft: Draft, data: Mapping[str, Any]) -> None:
    draft.tags = ["tenderUpdate"]
    authority = text(data.get("authority"))
    if authority is not None:
        draft.party(authority, "reviewBody")
    draft.document("tender", OVERSIGHT_DOCUMENTS.get(draft.source["stage"]))


def _enquiry_answer(draft: Draft, data: Mapping[str, Any]) -> None:
    """An answer to the public (issue 14) as the enquiries extension's Enquiry."""
    draft.tags = ["tenderUpdate"]
    source = draft.source
    enquiry = {
        "id": text(data.get("enquiry")) or str(source["seq"]),
        "date": when(data.get("asked_at")),
        "title": text(source.get("title")),
        "description": text(data.get("question")),
        "answer": text(data.get("answer")),
        "dateAnswered": source["published_at"],
    }
    draft.tender.update(hasEnquiries=True, enquiries=[enquiry])


def _other(draft: Draft, data: Mapping[str, Any]) -> None:
    """A stage the vocabulary gained after this mapping was written: a document."""
    draft.tags = ["tenderUpdate"]
    draft.document(PHASES.get(draft.source["stage"], "tender"), None)


# --- facts of the tender ------------------------------------------------------------------


def _tender_facts(draft: Draft, data: Mapping[str, Any]) -> None:
    """The facts notices, clarifications, openings and auctions state about the tender."""
    tender = draft.tender
    period = {
        "startDate": _first_time(data, TENDER_PERIOD_START),
        "endDate": _first_time(data, TENDER_PERIOD_END),
    }
    tender["tenderPeriod"] = period
    if "max_price" in data:
        tender["value"] = money(data["max_price"])
    if "start_price" in data:
        tender["minValue"] = money(data["start_price"])
    method = text(data.get("method"))
    if method is not None:
        tender["procurementMethodDetails"] = method
        tender["procurementMethod"] = METHODS.get(method)
    _award_criteria(draft, data.get("evaluation"))
    tender["eligibilityCriteria"] = text(data.get("qualification"))
    tender["contractPeriod"] = _duration(data)
    tender["numberOfTenderers"] = count(data.get("bidders"))
    tender["items"] = _items(draft, data)
    _milestones(draft, data)


def _milestones(draft: Draft, data: Mapping[str, Any]) -> None:
    facts = draft.context.facts
    for key, value in data.items():
        fact = facts.get(key)
        if fact is not None and fact.kind is Kind.DATETIME and key not in NOT_MILESTONES:
            draft.milestone(key, value)


def _award_criteria(draft: Draft, value: object) -> None:
    criteria = text(value)
    if criteria is not None:
        draft.tender["awardCriteriaDetails"] = criteria
        draft.tender["awardCriteria"] = AWARD_CRITERIA.get(criteria)


def _duration(data: Mapping[str, Any]) -> dict[str, Any] | None:
    days = count(data.get("duration_days"))
    return None if days is None else {"durationInDays": days}


def _first_time(data: Mapping[str, Any], keys: tuple[str, ...]) -> str | None:
    for key in keys:
        found = when(data.get(key))
        if found is not None:
            return found
    return None


def _items(draft: Draft, data: Mapping[str, Any]) -> list[dict[str, Any]] | None:
    """What is sold or bought, where a notice describes it: a parcel, a mine,
    an area; emission rights by indicator."""
    facts = draft.context.facts
    described = [
        f"{facts[key].zh if key in facts else key}：{data[key]}"
        for key in SUBJECT_TEXTS
        if text(data.get(key)) is not None
    ]
    subject: dict[str, Any] = {"id": "1", "description": "；".join(described) or None}
    for key in SUBJECT_QUANTITIES:
        quantity = number(data.get(key))
        if quantity is not None:
            fact = facts.get(key)
            subject["quantity"] = quantity
            subject["unit"] = {"name": fact.unit[0] if fact and fact.unit else key}
            break
    items = [subject] if prune(subject) != {"id": "1"} else []
    indicators = data.get("indicators")
    for position, indicator in enumerate(indicators if isinstance(indicators, list) else [], 1):
        if not isinstance(indicator, dict):
            continue
        name = text(indicator.get("pollutant")) or text(indicator.get("name"))
        if name is None:
            continue
        item: dict[str, Any] = {"id": f"indicator-{position}", "description": name}
        tonnes = number(indicator.get("tonnes_per_year"))
        if tonnes is not None:
            item.update(quantity=tonnes, unit={"name": "吨/年"})
        items.append(item)
    return items or None


Mapper = Callable[[Draft, Mapping[str, Any]], None]
MAPPERS: dict[str, Mapper] = {
    "registered": _registered,
    "amended": _amended,
    "plan": _plan,
    "single_source": _single_source,
    "prequalification": _notice,
    "notice": _notice,
    "clarification": _clarification,
    "bid_opening": _opening,
    "auction": _auction,
    "evaluation": _evaluation,
    "candidates": _candidates,
    "award": _award,
    "contract": _contract,
    "performance": _performance,
    "failed": _failed,
    **dict.fromkeys(OVERSIGHT_DOCUMENTS, _oversight),
    "enquiry_answer": _enquiry_answer,
}
