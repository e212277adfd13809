"""The staff console in a real browser: sign in, create a project, publish, see warnings live."""

from __future__ import annotations

import re
import time
from datetime import datetime, timedelta
from typing import Any

import httpx
from playwright.sync_api import expect

from tests.browser import RECORD_STAGES, BrowserErrors, unnamed_controls, visit, wait_until
from tests.conftest import ServerProcess, Staff
from tests.targets import small_targets

WARNING_WITHIN = 5.0  # seconds: the contract's bound for a compliance warning


def sign_in(page: Any, server: ServerProcess, token: str) -> None:
    visit(page, server.url + "/staff")
    form = page.locator("form[data-testid=signin]")
    form.locator("input[name=token]").fill(token)
    expect(form.locator("input[type=checkbox][name=remember]")).not_to_be_checked()
    form.locator("button[type=submit], input[type=submit]").first.click()
    expect(page.locator("[data-testid=staff-role]")).to_be_visible()
    assert page.locator("[data-testid=staff-role]").inner_text().strip()


def submit(form: Any) -> None:
    form.locator("button[type=submit], input[type=submit]").first.click()


def test_staff_signs_in_creates_a_project_and_publishes_a_notice(
    server: ServerProcess, admin: str, page: Any, browser_errors: BrowserErrors
) -> None:
    sign_in(page, server, admin)
    stored = page.evaluate("JSON.stringify(Object.assign({}, localStorage))")
    assert admin not in stored, "without 'remember', the token is kept for the session only"

    create = page.locator("form[data-testid=create-project]")
    create.locator("[name=id]").fill("PW-STAFF-1")
    create.locator("[name=title]").fill("义乌市某道路照明工程施工")
    create.locator("select[name=category]").select_option("construction")
    # Agency and region are picked by name from the directory, not typed as codes.
    create.locator("select[name=agency]").select_option("YW-GGZY")
    create.locator("select[name=region]").select_option("330782")
    create.locator("[name=budget]").fill("1250000")
    # Whether the law requires the tender: the hint gives 必须招标的工程项目规定's values.
    expect(create.locator("#c-must_tender-hint")).to_contain_text("施工 400 万元")
    create.locator("select[name=must_tender]").select_option("false")  # below 4 million: no
    submit(create)
    project = _wait_project(server, "PW-STAFF-1")
    assert project["title"] == "义乌市某道路照明工程施工"
    assert project["must_tender"] is False
    assert (project["category"], project["agency"], project["region"]) == (
        "construction",
        "YW-GGZY",
        "330782",
    )
    assert float(project["budget"]) == 1250000

    publish = page.locator("form[data-testid=publish]")
    expect(publish.locator('select[name=project] option[value="PW-STAFF-1"]')).to_have_count(1)
    publish.locator("select[name=project]").select_option("PW-STAFF-1")
    categories = httpx.get(server.url + "/api/categories", timeout=10).json()["items"]
    valid = {s["code"] for c in categories if c["code"] == "construction" for s in c["stages"]}
    offered = set(
        publish.locator("select[name=stage] option").evaluate_all(
            "options => options.map(o => o.value).filter(v => v)"
        )
    )
    assert "notice" in offered and offered <= valid, (offered, valid)
    publish.locator("select[name=stage]").select_option("notice")
    publish.locator("input[name=title]").fill("义乌市某道路照明工程施工招标公告")
    publish.locator("textarea[name=body]").fill("投标截止前递交投标文件。")
    deadline = (datetime.now() + timedelta(days=40)).replace(hour=9, minute=30)
    deadline_input = publish.locator('input[name="data.deadline"]')
    expect(deadline_input).to_have_attribute("type", "datetime-local")
    deadline_input.fill(deadline.strftime("%Y-%m-%dT%H:%M"))
    # Publishing is two steps: a preview of the publication, then the confirmation.
    submit(publish)
    preview = page.locator("[data-testid=publish-preview]")
    expect(preview).to_contain_text("义乌市某道路照明工程施工招标公告")
    assert _wait_project(server, "PW-STAFF-1")["timeline"][-1]["stage"] == "registered"
    preview.locator("[data-testid=confirm-publish]").click()

    result = page.locator("[data-testid=publish-result]")
    expect(result).to_contain_text(re.compile(r"\d+"))
    seqs = [int(n) for n in re.findall(r"\d+", result.inner_text())]
    timeline = _wait_project(server, "PW-STAFF-1", events=1)["timeline"]
    [event] = [e for e in timeline if e["stage"] not in RECORD_STAGES]
    assert [e["stage"] for e in timeline if e["stage"] in RECORD_STAGES] == ["registered"]
    assert event["seq"] in seqs, (result.inner_text(), event)
    assert event["stage"] == "notice" and event["title"] == "义乌市某道路照明工程施工招标公告"
    assert event["body"] == "投标截止前递交投标文件。"
    assert event["data"]["deadline"].startswith(deadline.strftime("%Y-%m-%dT%H:%M")), event

    # The server refuses a second project with the same id; the person is told so.
    browser_errors.expect(r"status of 409 \(Conflict\) \(.*/api/projects\)")
    create.locator("[name=id]").fill("PW-STAFF-1")
    create.locator("[name=title]").fill("重复")
    submit(create)
    expect(page.locator("[role=alert]").filter(has_text=re.compile(r"\S"))).not_to_have_count(0)
    assert unnamed_controls(page) == []


def test_supervisor_sees_a_broken_rule_within_five_seconds(
    server: ServerProcess, staff: Staff, page: Any
) -> None:
    sign_in(page, server, server.token("pw-supervisor", "supervisor"))
    warnings = page.locator("[data-testid=warnings]")
    expect(warnings).to_be_attached()
    # Let the console's live subscription settle before the rule is broken.
    expect(page.locator("[data-testid=live-status]")).to_have_attribute("data-state", "live")

    staff.project("PW-SUP-1", must_tender=True)
    staff.publish("PW-SUP-1", "notice")  # an award needs a notice (deadline far: no warning)
    staff.publish("PW-SUP-1", "candidates")
    staff.publish("PW-SUP-1", "award")  # the same day: 公示期不少于3日 is broken at once
    published = time.monotonic()
    warning = warnings.locator("[data-testid=warning]").filter(has_text="PW-SUP-1")
    warning.first.wait_for(state="attached", timeout=WARNING_WITHIN * 1000)
    assert time.monotonic() - published < WARNING_WITHIN
    expect(warning.locator("[data-testid=advisory-tag]")).to_have_count(0)

    # Local practice, not law (农村产权: the result within 10 working days of the bidding):
    # its warning says so next to its level.
    def ago(days: int) -> str:
        return (datetime.now() - timedelta(days=days)).astimezone().isoformat(timespec="seconds")

    staff.project("PW-SUP-RURAL", category="rural_property", agency="YW-NCCQ")
    staff.publish("PW-SUP-RURAL", "notice", occurred_at=ago(60), data={"listing_ends": ago(30)})
    staff.publish("PW-SUP-RURAL", "auction", occurred_at=ago(30))
    staff.publish("PW-SUP-RURAL", "award")
    rural = warnings.locator("[data-testid=warning]").filter(has_text="PW-SUP-RURAL")
    expect(rural.first.locator("[data-testid=advisory-tag]")).to_have_text("地方惯例")


def _wait_project(server: ServerProcess, project: str, events: int = 0) -> Any:
    """The project as the API serves it, once it exists with at least `events` published events
    (its registration and amendments not counted)."""

    def fetch() -> Any:
        response = httpx.get(f"{server.url}/api/projects/{project}", timeout=10)
        if response.status_code != 200:
            return None
        timeline = response.json()["timeline"]
        if len([e for e in timeline if e["stage"] not in RECORD_STAGES]) >= events:
            return response.json()
        return None

    return wait_until(fetch, f"{project} with {events} events in the API")


def test_an_award_without_a_winner_is_refused_at_the_field_and_a_valid_one_asks_to_confirm(
    server: ServerProcess, staff: Staff, admin: str, page: Any, browser_errors: BrowserErrors
) -> None:
    browser_errors.expect(r"status of 422 .*/api/projects/PW-AWARD-1/events\?dry_run=1")
    staff.project("PW-AWARD-1", must_tender=True)
    deadline = (datetime.now() - timedelta(days=5)).astimezone().isoformat(timespec="seconds")
    staff.publish("PW-AWARD-1", "notice", data={"deadline": deadline})
    publicity_ends = (datetime.now() + timedelta(days=3)).astimezone().isoformat(timespec="seconds")
    staff.publish(
        "PW-AWARD-1",
        "candidates",
        data={
            "candidates": ["义乌市某某建设有限公司", "金华某工程公司"],
            "publicity_ends": publicity_ends,
        },
    )
    head = server.head()
    sign_in(page, server, admin)
    publish = page.locator("form[data-testid=publish]")
    expect(publish.locator('select[name=project] option[value="PW-AWARD-1"]')).to_have_count(1)
    publish.locator("select[name=project]").select_option("PW-AWARD-1")
    publish.locator("select[name=stage]").select_option("award")
    # The stage's facts, labelled, with their units; required ones say so.
    winner = publish.locator('input[name="data.winner"]')
    amount = publish.locator('input[name="data.amount"]')
    expect(winner).to_be_visible()
    expect(publish.locator("label[for='d-winner']")).to_contain_text("必填")
    expect(publish.locator("label[for='d-amount']")).to_contain_text("元")
    publish.locator("input[name=title]").fill("某道路照明工程中标结果公告")
    amount.fill("1180000.5")
    submit(publish)

    # Refused before anything is published, next to the field it concerns.
    expect(winner).to_have_attribute("aria-invalid", "true")
    note = publish.locator("#d-winner-error")
    expect(note).to_contain_text("中标")
    expect(page.locator("[data-testid=publish-preview]")).to_be_hidden()
    assert server.head() == head, "nothing was appended"

    winner.fill("义乌市某某建设有限公司")
    submit(publish)
    preview = page.locator("[data-testid=publish-preview]")
    expect(preview).to_be_visible()
    expect(note).to_have_count(0)  # one message at a time
    expect(preview).to_contain_text("某道路照明工程中标结果公告")
    expect(preview).to_contain_text("义乌市某某建设有限公司")
    expect(preview).to_contain_text("1,180,000.5")  # exactly as published, not rounded
    # Published the same day as the candidates: their publicity period is cut short.
    short = preview.locator("[data-testid=preview-warning]").filter(has_text="时限不足")
    expect(short).to_have_count(1)
    expect(short).to_contain_text("公示")
    assert server.head() == head, "a preview appends nothing"
    assert small_targets(page) == []
    preview.locator("[data-testid=confirm-publish]").click()
    result = page.locator("[data-testid=publish-result]")
    expect(result).to_contain_text("已发布")
    award = _wait_project(server, "PW-AWARD-1", events=3)["timeline"][-1]
    assert award["stage"] == "award" and award["data"]["winner"] == "义乌市某某建设有限公司"
    assert award["data"]["amount"] == 1180000.5

    # A new attempt clears the old 「已发布」 before saying anything else.
    publish.locator("select[name=stage]").select_option("award")
    publish.locator("input[name=title]").fill("第二次中标结果")
    submit(publish)
    expect(result).not_to_contain_text("已发布")
    expect(page.locator("[role=alert]").filter(has_text="未能")).to_have_count(1)
    assert page.locator("text=已发布：").count() == 0
