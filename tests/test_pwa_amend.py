"""A project's own record in the app: its registration on the timeline, an amendment made in the
staff console, and a bidder's open page following that amendment live.

A real `sunbid serve`, a real chromium at 360 px for each person (a publisher of the project's
agency, a bidder), and the PATCH the console sends is the contract's.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from datetime import datetime, timedelta
from typing import Any

import httpx
import pytest
from playwright.sync_api import expect

from tests.browser import BrowserErrors, unnamed_controls, visit, wait_ready
from tests.conftest import ServerProcess, Staff

AGENCY = "YW-GGZY"


def in_30_days() -> str:
    """A bid deadline a notice may carry: thirty days ahead."""
    return (datetime.now() + timedelta(days=30)).astimezone().isoformat(timespec="seconds")


def require_project_events(server: ServerProcess) -> None:
    """Projects are registered and amended as events (POST and PATCH /api/projects): a server
    without those stages cannot show them. Only a checkout older than that change skips."""
    categories = httpx.get(server.url + "/api/categories", timeout=10).json()["items"]
    codes = {s["code"] for c in categories for s in c["stages"]}
    if not {"registered", "amended"} <= codes:
        pytest.skip("this server does not record projects as events yet (registered, amended)")


@pytest.fixture
def publisher(server: ServerProcess) -> str:
    return server.token("pw-publisher", "publisher", agency=AGENCY)


@pytest.fixture
def staff_page(browser: Any, browser_errors: BrowserErrors) -> Iterator[Any]:
    """A second phone, the publisher's, beside the bidder's `page`."""
    from tests.browser import PHONE, watch

    phone = browser.new_context(**PHONE)
    phone.set_default_timeout(10_000)
    watch(phone, browser_errors)
    yield phone.new_page()
    phone.close()


def project(server: ServerProcess, project_id: str) -> Any:
    response = httpx.get(f"{server.url}/api/projects/{project_id}", timeout=10)
    assert response.status_code == 200, response.text
    return response.json()


def region_name(server: ServerProcess, code: str) -> str:
    directory = httpx.get(server.url + "/api/directory", timeout=10).json()
    return next((r["zh"] for r in directory["regions"] if r["code"] == code), code)


def register(staff: Staff, project_id: str, **fields: Any) -> dict[str, Any]:
    body = {"id": project_id, "title": f"测试项目 {project_id}", "category": "construction"}
    response = staff.client.post("/api/projects", json={**body, "agency": AGENCY, **fields})
    assert response.status_code == 201, response.text
    return dict(response.json())


def sign_in_as_publisher(page: Any, server: ServerProcess, token: str) -> Any:
    """The console signed in, showing the agency's projects; its amend form."""
    visit(page, server.url + "/staff")
    signin = page.locator("form[data-testid=signin]")
    signin.locator("input[name=token]").fill(token)
    signin.locator("button[type=submit]").click()
    # The role in plain words, without its API code.
    expect(page.locator("[data-testid=staff-role]")).to_have_text("发布人员")
    # The agency is picked by name from the directory, then shown.
    page.locator("select[name=my-agency]").select_option(AGENCY)
    page.locator("select[name=my-agency]").locator("xpath=..").locator("button").click()
    return page.locator("form[data-testid=amend-project]")


def test_the_registration_shows_on_the_timeline_and_is_not_a_stage(
    server: ServerProcess, staff: Staff, page: Any
) -> None:
    require_project_events(server)
    register(staff, "PW-REG-1", budget=1250000, region="330782")
    visit(page, f"{server.url}/p/PW-REG-1")

    registered = page.locator("li[data-testid=timeline-event][data-stage=registered]")
    expect(registered).to_have_count(1)
    expect(registered).to_contain_text("项目登记")
    expect(registered).to_contain_text("¥1,250,000.00")  # the budget with its currency
    expect(registered).to_contain_text(region_name(server, "330782"))
    # Registering is not a stage of the transaction: nothing is published yet, and what comes
    # next starts with the category's first stage.
    expect(registered).not_to_have_attribute("aria-current", "step")
    expect(page.locator("#current-stage")).to_have_text("尚未发布")
    expect(page.locator("#next")).not_to_contain_text("项目登记")

    page.locator("button[data-testid=lang]").click()
    expect(page.locator("html")).to_have_attribute("lang", "en")
    expect(registered).to_contain_text(re.compile("registered", re.I))
    expect(registered).to_contain_text("CN¥1,250,000.00")


def test_a_publisher_amends_a_project_and_an_open_page_follows_live(
    server: ServerProcess, staff: Staff, publisher: str, page: Any, staff_page: Any
) -> None:
    require_project_events(server)
    register(staff, "PW-AMEND-1", budget=1250000, region="330782")
    notice = staff.publish("PW-AMEND-1", "notice", data={"deadline": in_30_days()})

    # The bidder has the project open, live.
    visit(page, f"{server.url}/p/PW-AMEND-1")
    expect(page.locator("[data-testid=live-status]")).to_have_attribute("data-state", "live")
    page.evaluate("() => { window.sameDocument = true; }")
    expect(page.locator("[data-testid=budget]")).to_have_text("125 万元")

    # The publisher amends it in the console.
    form = sign_in_as_publisher(staff_page, server, publisher)
    expect(form.locator('select[name=project] option[value="PW-AMEND-1"]')).to_have_count(1)
    form.locator("select[name=project]").select_option("PW-AMEND-1")
    expect(form.locator("input[name=title]")).to_have_value("测试项目 PW-AMEND-1")
    expect(form.locator("input[name=budget]")).to_have_value(re.compile(r"^1250000(\.0+)?$"))
    form.locator("input[name=title]").fill("义乌市某道路照明工程施工（调整后）")
    form.locator("input[name=budget]").fill("1200000")
    form.locator("textarea[name=reason]").fill("财政评审核减预算")
    form.locator("button[type=submit]").click()
    expect(staff_page.locator("[data-testid=amend-result]")).to_contain_text("¥1,200,000.00")
    assert unnamed_controls(staff_page) == []

    amended = project(server, "PW-AMEND-1")
    assert amended["title"] == "义乌市某道路照明工程施工（调整后）"
    assert float(amended["budget"]) == 1200000
    assert amended["stage"] == "notice", "an amendment does not move the stage"
    [event] = [e for e in amended["timeline"] if e["stage"] == "amended"]
    assert event["data"] == {
        "changes": {"title": "义乌市某道路照明工程施工（调整后）", "budget": 1200000},
        "reason": "财政评审核减预算",
    }, "only what was changed is sent, with the reason"

    # The bidder's page shows it without a reload: the timeline, the title and the budget.
    item = page.locator(f'li[data-testid=timeline-event][data-seq="{event["seq"]}"]')
    expect(item).to_contain_text("项目信息变更")
    expect(item).to_contain_text("财政评审核减预算")
    # Named as the vocabulary names the field (GET /api/categories `fields`).
    budget = httpx.get(server.url + "/api/categories", timeout=10).json()["fields"]["budget"]
    expect(item.locator("[data-testid=change][data-field=budget]")).to_contain_text(
        f"{budget['zh']} → ¥1,200,000.00"
    )
    expect(item.locator("[data-testid=change][data-field=title]")).to_contain_text("（调整后）")
    expect(item).to_have_class(re.compile(r"\bis-new\b"))
    expect(page.locator("h1")).to_have_text("义乌市某道路照明工程施工（调整后）")
    expect(page.locator("[data-testid=budget]")).to_have_text("120 万元")
    # Still at the notice: the amendment is neither the current stage nor a next one.
    current = page.locator("li[data-testid=timeline-event][aria-current=step]")
    expect(current).to_have_attribute("data-seq", str(notice["seq"]))
    expect(page.locator("#current-stage")).to_have_text(re.compile("公告"))
    expect(page.locator("#next")).not_to_contain_text("项目信息变更")
    assert page.evaluate("() => window.sameDocument === true"), "the page was reloaded"


def test_the_amend_form_says_what_is_wrong(
    server: ServerProcess,
    staff: Staff,
    publisher: str,
    page: Any,
    browser_errors: BrowserErrors,
) -> None:
    require_project_events(server)
    register(staff, "PW-AMEND-2")
    register(staff, "PW-OTHER-2", agency="YW-ZFCG")
    form = sign_in_as_publisher(page, server, publisher)
    form.locator("select[name=project]").select_option("PW-AMEND-2")
    expect(form.locator("input[name=title]")).to_have_value("测试项目 PW-AMEND-2")
    alert = form.locator("[role=alert]")

    # Nothing sent without a reason, and the reason field says so.
    form.locator("input[name=title]").fill("新标题")
    form.locator("button[type=submit]").click()
    reason = form.locator("textarea[name=reason]")
    expect(reason).to_have_attribute("aria-invalid", "true")
    expect(reason).to_be_focused()
    expect(alert).to_contain_text("变更原因")

    # The server's 422 lands next to the field it names.
    browser_errors.expect(r"status of 422")
    form.locator("input[name=currency]").fill("cn")
    reason.fill("币种更正")
    form.locator("button[type=submit]").click()
    currency = form.locator("input[name=currency]")
    expect(currency).to_have_attribute("aria-invalid", "true")
    expect(alert).to_contain_text("币种")
    assert project(server, "PW-AMEND-2")["title"] == "测试项目 PW-AMEND-2"

    # A project of another agency: the server refuses (403) and the console says why, in English
    # once English is chosen.
    browser_errors.expect(r"status of 403")
    page.locator("button[data-testid=lang]").click()
    expect(page.locator("html")).to_have_attribute("lang", "en")
    form = page.locator("form[data-testid=amend-project]")
    # The agency is picked by name from the directory, then shown.
    page.locator("select[name=my-agency]").select_option("YW-ZFCG")
    page.locator("select[name=my-agency]").locator("xpath=..").locator("button").click()
    form.locator("select[name=project]").select_option("PW-OTHER-2")
    expect(form.locator("input[name=title]")).to_have_value("测试项目 PW-OTHER-2")
    form.locator("input[name=title]").fill("不是本机构的项目")
    form.locator("textarea[name=reason]").fill("试一试")
    form.locator("button[type=submit]").click()
    expect(form.locator("[role=alert]")).to_contain_text("own agency")
    assert project(server, "PW-OTHER-2")["title"] == "测试项目 PW-OTHER-2"


def test_an_amendment_whose_answer_was_lost_is_not_made_twice(
    server: ServerProcess,
    staff: Staff,
    publisher: str,
    page: Any,
    browser_errors: BrowserErrors,
) -> None:
    require_project_events(server)
    register(staff, "PW-AMEND-3", budget=500000)
    form = sign_in_as_publisher(page, server, publisher)
    form.locator("select[name=project]").select_option("PW-AMEND-3")
    expect(form.locator("input[name=title]")).to_have_value("测试项目 PW-AMEND-3")

    # The PATCH reaches the server, but its answer never reaches the phone.
    browser_errors.expect_offline()

    def lose_the_answer(route: Any) -> None:
        if route.request.method != "PATCH":
            route.continue_()
            return
        route.fetch()
        route.abort("connectionreset")

    page.route("**/api/projects/PW-AMEND-3", lose_the_answer)
    form.locator("input[name=budget]").fill("480000")
    form.locator("textarea[name=reason]").fill("核减预算")
    form.locator("button[type=submit]").click()
    expect(form.locator("[role=alert]")).to_contain_text("不会重复")
    page.unroute("**/api/projects/PW-AMEND-3")

    form.locator("button[type=submit]").click()
    expect(page.locator("[data-testid=amend-result]")).to_contain_text("没有重复提交")
    timeline = project(server, "PW-AMEND-3")["timeline"]
    assert [e["data"]["changes"] for e in timeline if e["stage"] == "amended"] == [
        {"budget": 480000}
    ]


def test_an_amendment_seen_still_shows_offline(
    server: ServerProcess, staff: Staff, context: Any, page: Any, browser_errors: BrowserErrors
) -> None:
    require_project_events(server)
    register(staff, "PW-AMEND-4", budget=800000, region="330782")
    visit(page, f"{server.url}/p/PW-AMEND-4")
    page.evaluate("async () => { await navigator.serviceWorker.ready; return true; }")
    if not page.evaluate("() => !!navigator.serviceWorker.controller"):
        page.reload()  # a worker that does not claim open pages controls them from the next load
        wait_ready(page)
    expect(page.locator("[data-testid=live-status]")).to_have_attribute("data-state", "live")
    response = staff.client.patch(
        "/api/projects/PW-AMEND-4", json={"title": "更名后的项目", "reason": "名称有误"}
    )
    assert response.status_code == 200, response.text
    amended = page.locator("li[data-testid=timeline-event][data-stage=amended]")
    expect(amended).to_contain_text("名称有误")
    expect(page.locator("h1")).to_have_text("更名后的项目")

    browser_errors.expect_offline()
    context.set_offline(True)
    page.reload()
    wait_ready(page)
    expect(page.locator("[data-testid=offline]")).to_be_visible()
    expect(page.locator("h1")).to_have_text("更名后的项目")
    expect(amended).to_contain_text("名称有误")
    expect(amended.locator("[data-testid=change][data-field=title]")).to_contain_text(
        "更名后的项目"
    )
    expect(page.locator("li[data-testid=timeline-event][data-stage=registered]")).to_contain_text(
        "¥800,000.00"
    )
