"""Respond (回应) in a real browser: a bidder asks about a project and a requester files a
disclosure request in the app; staff answer in the console; the answers reach the person
who asked, live, by push and with the ticket kept on their device.

The asker and the staff member each have a browser profile of their own (a phone each),
against one real server. Web Push is stubbed only where chromium cannot go (a vendor's
push service), as in test_pwa_push.py: the push itself is really encrypted, sent to the
local push service, decrypted and handed to the asker's service worker.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from playwright.sync_api import expect

from tests.browser import (
    PHONE,
    BrowserErrors,
    unnamed_controls,
    visit,
    wait_until,
    watch,
)
from tests.conftest import ServerProcess, Staff
from tests.notifications import NotificationServer
from tests.push_service import PushService
from tests.targets import small_targets
from tests.test_pwa_large_text import overflow

# The phone with a push service that decrypts and a notification daemon the test reads.
from tests.test_pwa_push import STUB_PUSH_MANAGER, deliver
from tests.test_pwa_push import desktop as desktop  # the phone, its notifications read
from tests.test_pwa_push import push_server as push_server  # with a push service that decrypts
from tests.test_pwa_push import service as service
from tests.test_pwa_staff import sign_in

PROJECT = "PW-ASK-1"
# The asker's own words carry a phone number; what is published must not.
QUESTION = "请问投标保证金可以用银行保函吗？我的电话13812345678。"
PUBLISHED = "请问投标保证金可以用银行保函吗？"
ANSWER = "可以。接受银行出具的投标保函，格式见招标文件第三章。"
CONTACT = "asker@example.cn"
DECLINED = "开工时间不属于招标投标信息，请咨询建设单位。"
REQUEST_CONTACT = "浙江省义乌市某路1号 张某 0579-12345678"


def kept_cases(page: Any) -> list[dict[str, Any]]:
    """What the device keeps of its enquiries and requests (localStorage)."""
    return list(json.loads(page.evaluate("() => localStorage.getItem('sunbid.cases') || '[]'")))


def ask(page: Any, question: str, contact: str = "") -> dict[str, Any]:
    """Ask on the project page on screen; the server's 201."""
    form = page.locator("form[data-testid=ask]")
    form.locator("textarea[name=question]").fill(question)
    form.locator("input[name=contact]").fill(contact)
    path = f"/api/projects/{PROJECT}/enquiries"
    with page.expect_response(
        lambda r: r.url.endswith(path) and r.request.method == "POST"
    ) as posted:
        form.locator("button[type=submit]").click()
    assert posted.value.status == 201, posted.value.text()
    return dict(posted.value.json())


def chinese_date(stamp: str) -> str:
    """2026-01-09T… as the app writes the day: 2026年1月9日."""
    year, month, day = stamp[:10].split("-")
    return f"{year}年{int(month)}月{int(day)}日"


def phone(browser: Any, errors: BrowserErrors) -> Any:
    """Another person's phone: a profile of its own."""
    context = browser.new_context(**PHONE)
    context.set_default_timeout(10_000)
    watch(context, errors)
    return context


def test_a_question_is_answered_in_the_console_live_on_the_askers_page_and_rated_once(
    server: ServerProcess,
    staff: Staff,
    admin: str,
    browser: Any,
    page: Any,
    browser_errors: BrowserErrors,
) -> None:
    staff.project(PROJECT)
    staff.publish(PROJECT, "notice")
    visit(page, f"{server.url}/p/{PROJECT}")
    expect(page.locator("nav a[href='/mine']")).to_have_text("我的咨询")

    # What happens next is said before sending; the count follows the text.
    form = page.locator("form[data-testid=ask]")
    expect(form.locator("[data-testid=ask-next]")).to_contain_text(
        "一般在3个工作日内答复，答复将公开在项目进程中"
    )
    expect(form.locator("textarea[name=question]")).to_have_attribute("maxlength", "2000")
    expect(form.locator("input[name=contact]")).to_have_attribute("maxlength", "200")
    expect(form.locator("#q-contact-hint")).to_contain_text("不会公开")
    form.locator("textarea[name=question]").fill(QUESTION)
    expect(form.locator("[data-testid=question-count]")).to_contain_text(f"{len(QUESTION)} / 2000")

    first = ask(page, QUESTION, CONTACT)
    box = page.locator(f"[data-testid=my-enquiry][data-enquiry='{first['id']}']")
    expect(box).to_have_attribute("data-status", "open")
    expect(box.locator("[data-testid=enquiry-status]")).to_have_text("待答复")
    expect(box.locator("[data-testid=enquiry-due]")).to_contain_text(chinese_date(first["due"]))
    expect(page.locator("[data-testid=ask-result]")).to_contain_text(chinese_date(first["due"]))
    [kept] = kept_cases(page)
    assert {k: kept[k] for k in ("id", "ticket", "project", "due", "asked_at", "kind")} == {
        "id": first["id"],
        "ticket": first["ticket"],
        "project": PROJECT,
        "due": first["due"],
        "asked_at": first["asked_at"],
        "kind": "enquiry",
    }
    assert CONTACT not in page.evaluate("() => JSON.stringify(localStorage)"), "sent, never kept"
    # A second question, to be answered by linking it to the first one's answer.
    second = ask(page, "投标保证金能不能用保函？")
    # A third, which the agency declines with a reason.
    third = ask(page, "这条路什么时候开工？")
    expect(page.locator("[data-testid=my-enquiry]")).to_have_count(3)
    assert overflow(page) == []

    # A supervisor sees every open case and its age, read-only, without the contact.
    watcher = phone(browser, browser_errors)
    try:
        console = watcher.new_page()
        sign_in(console, server, server.token("pw-ask-supervisor", "supervisor"))
        item = console.locator(f"[data-testid=inbox-enquiry][data-case='{first['id']}']")
        expect(item.locator("[data-testid=age]")).to_contain_text("已等待 0 天")
        expect(item.locator("[data-action]")).to_have_count(0)
        expect(console.locator("[data-testid=enquiries-inbox]")).not_to_contain_text(CONTACT)
    finally:
        watcher.close()

    # The publisher's console: oldest due first, the due time counting down, the contact.
    head = server.head()
    desk = phone(browser, browser_errors)
    try:
        console = desk.new_page()
        sign_in(console, server, admin)
        inbox = console.locator("[data-testid=enquiries-inbox]")
        expect(inbox.locator("[data-testid=inbox-enquiry]")).to_have_count(3)
        order = inbox.locator("[data-testid=inbox-enquiry]").evaluate_all(
            "items => items.map(item => item.dataset.case)"
        )
        assert order == [first["id"], second["id"], third["id"]], order
        item = inbox.locator(f"[data-case='{first['id']}']")
        expect(item.locator("[data-testid=due-countdown]")).to_contain_text(re.compile(r"^剩余 \d"))
        expect(item).to_contain_text(CONTACT)
        assert overflow(console) == [] and unnamed_controls(console) == []
        assert small_targets(console) == []

        # Answered with the question as published: the asker's text offered, edited.
        item.locator("button[data-action=answer]").click()
        answer = item.locator("form[data-testid=answer-form]")
        expect(answer.locator("textarea[name=question]")).to_have_value(QUESTION)
        # Left as the asker wrote it, with a phone number: refused, and said where.
        browser_errors.expect(r"status of 422 .*/api/enquiries/q[a-z2-7]+/answer")
        answer.locator("textarea[name=answer]").fill(ANSWER)
        answer.locator("button[type=submit]").click()
        expect(answer.locator("[role=alert]")).to_contain_text("公开的问题里含有手机号码")
        expect(answer.locator("textarea[name=question]")).to_have_attribute("aria-invalid", "true")
        assert server.head() == head, "nothing published"
        answer.locator("textarea[name=question]").fill(PUBLISHED)
        answer.locator("textarea[name=answer]").fill(ANSWER)
        answer.locator("button[type=submit]").click()
        expect(console.locator("[data-testid=enquiries-said]")).to_contain_text("已答复并公开")
        expect(item).to_have_count(0)

        # The asker's page, live: 已答复 in their box, 问/答 in the timeline.
        expect(box).to_have_attribute("data-status", "answered")
        expect(box.locator("[data-testid=enquiry-status]")).to_have_text("已答复")
        expect(box.locator("[data-testid=enquiry-answer]")).to_contain_text(ANSWER)
        published = page.locator("[data-testid=timeline-event][data-stage=enquiry_answer]")
        expect(published).to_have_count(1)
        expect(published).to_have_class(re.compile(r"\bis-new\b"))
        expect(published.locator("[data-testid=qa-question]")).to_have_text(PUBLISHED)
        expect(published.locator("[data-testid=qa-answer]")).to_have_text(ANSWER)
        assert "13812345678" not in page.locator("[data-testid=timeline]").inner_text()
        # A record, never the project's stage.
        expect(published).not_to_have_attribute("aria-current", "step")

        # The repeat question: linked to the answer just published, nothing published again.
        head = server.head()
        repeat = inbox.locator(f"[data-case='{second['id']}']")
        repeat.locator("button[data-action=same_as]").click()
        linked = repeat.locator("form[data-testid=same-as-form]")
        linked.locator("select[name=same_as]").select_option(first["id"])
        linked.locator("button[type=submit]").click()
        expect(console.locator("[data-testid=enquiries-said]")).to_contain_text("已引用")
        expect(repeat).to_have_count(0)

        declined = inbox.locator(f"[data-case='{third['id']}']")
        declined.locator("button[data-action=decline]").click()
        refusal = declined.locator("form[data-testid=decline-form]")
        refusal.locator("textarea[name=reason]").fill(DECLINED)
        refusal.locator("button[type=submit]").click()
        expect(console.locator("[data-testid=enquiries-said]")).to_contain_text("已不予答复")
        expect(declined).to_have_count(0)
        assert server.head() == head, "nothing published for a link or a decline"
    finally:
        desk.close()

    # 我的咨询: both answered, each read with its ticket.
    visit(page, server.url + "/mine")
    cases = page.locator("[data-testid=cases]")
    answered = cases.locator(f"li[data-case='{first['id']}']")
    repeated = cases.locator(f"li[data-case='{second['id']}']")
    for case in (answered, repeated):
        expect(case).to_have_attribute("data-status", "answered")
        expect(case.locator("[data-testid=case-status]")).to_have_text("已答复")
        expect(case.locator("[data-testid=case-answer]")).to_contain_text(ANSWER)
    turned_down = cases.locator(f"li[data-case='{third['id']}']")
    expect(turned_down).to_have_attribute("data-status", "declined")
    expect(turned_down.locator("[data-testid=case-reason]")).to_contain_text(DECLINED)
    expect(turned_down.locator("form[data-testid=rating]")).to_be_hidden()
    assert overflow(page) == [] and small_targets(page) == [] and unnamed_controls(page) == []

    # Rated once: 1–5 and a comment; the server refuses a second rating.
    rating = answered.locator("form[data-testid=rating]")
    rating.locator("button[data-score='4']").click()
    expect(rating.locator("button[data-score='4']")).to_have_attribute("aria-pressed", "true")
    rating.locator("textarea[name=comment]").fill("答复及时，说得清楚。")
    rated = f"/api/enquiries/{first['id']}/rating"
    with page.expect_response(lambda r: r.url.endswith(rated)) as sent:
        rating.locator("button[type=submit]").click()
    assert sent.value.status == 201, sent.value.text()
    expect(answered.locator("[data-testid=rated]")).to_contain_text("4 分")
    expect(rating).to_be_hidden()
    ticket = {"X-Ticket": first["ticket"]}
    again = httpx.post(
        f"{server.url}/api/enquiries/{first['id']}/rating", json={"score": 1}, headers=ticket
    )
    assert again.status_code == 409 and again.json()["error"]["code"] == "already_rated"
    view = httpx.get(f"{server.url}/api/enquiries/{first['id']}", headers=ticket).json()
    assert view["rating"] == {"score": 4, "comment": "答复及时，说得清楚。"}, view
    visit(page, server.url + "/mine")
    expect(answered.locator("[data-testid=rated]")).to_contain_text("4 分")
    expect(answered.locator("form[data-testid=rating]")).to_be_hidden()
    # The scorecard: the agency's enquiries and what the askers thought of the answers.
    visit(page, server.url + "/catalog")
    figures = page.locator("[data-testid=scorecard] li[data-agency='YW-GGZY']").locator(
        "[data-testid=respond-enquiries]"
    )
    expect(figures.locator("[data-figure=received]")).to_have_text("收到 3")
    expect(figures.locator("[data-figure=satisfaction]")).to_have_text("满意度 4.0 / 5（1 人评价）")
    visit(page, server.url + "/mine")

    # Removed from the device: its ticket is forgotten here.
    repeated.locator("button[data-testid=case-remove]").click()
    repeated.locator("button[data-testid=case-remove-confirm]").click()
    expect(repeated).to_have_count(0)
    assert [c["id"] for c in kept_cases(page)] == [third["id"], first["id"]]
    assert second["ticket"] not in page.evaluate("() => JSON.stringify(localStorage)")


def test_a_disclosure_request_filed_in_the_app_is_extended_and_replied_in_the_console(
    server: ServerProcess, admin: str, browser: Any, page: Any, browser_errors: BrowserErrors
) -> None:
    visit(page, server.url + "/request")
    limits = page.locator("[data-testid=request-limits]")
    expect(limits).to_contain_text("20 个工作日")
    expect(limits).to_contain_text("政府信息公开条例》第三十三条")
    form = page.locator("form[data-testid=disclosure-request]")
    expect(form.locator("#r-contact-hint")).to_contain_text("办结后按规定删除")
    form.locator("select[name=agency]").select_option("YW-GGZY")
    form.locator("input[name=subject]").fill("某道路工程中标候选人评审报告")
    form.locator("textarea[name=description]").fill("YW-GC-2026-0141 的评标委员会评审报告全文。")
    assert overflow(page) == [] and small_targets(page) == [] and unnamed_controls(page) == []

    # The contact is required: said at the field, nothing sent.
    form.locator("button[type=submit]").click()
    expect(form.locator("input[name=contact]")).to_have_attribute("aria-invalid", "true")
    form.locator("input[name=contact]").fill(REQUEST_CONTACT)
    with page.expect_response(
        lambda r: r.url.endswith("/api/disclosure-requests") and r.request.method == "POST"
    ) as posted:
        form.locator("button[type=submit]").click()
    assert posted.value.status == 201, posted.value.text()
    filed = posted.value.json()
    expect(page.locator("[data-testid=request-result]")).to_contain_text(filed["id"])
    expect(page.locator("[data-testid=request-result]")).to_contain_text(chinese_date(filed["due"]))
    [kept] = kept_cases(page)
    assert (kept["id"], kept["ticket"], kept["kind"]) == (
        filed["id"],
        filed["ticket"],
        "disclosure_request",
    )
    assert REQUEST_CONTACT not in page.evaluate("() => JSON.stringify(localStorage)")

    visit(page, server.url + "/mine")
    case = page.locator(f"[data-testid=cases] li[data-case='{filed['id']}']")
    expect(case).to_have_attribute("data-status", "received")
    expect(case.locator("[data-testid=case-due]")).to_contain_text(chinese_date(filed["due"]))

    desk = phone(browser, browser_errors)
    try:
        console = desk.new_page()
        sign_in(console, server, admin)
        item = console.locator(f"[data-testid=inbox-request][data-case='{filed['id']}']")
        expect(item.locator("[data-testid=due-countdown]")).to_contain_text(re.compile(r"^剩余 \d"))
        expect(item).to_contain_text(REQUEST_CONTACT)

        # Extended once, with a reason: the due date moves 20 working days.
        item.locator("button[data-action=extend]").click()
        extend = item.locator("form[data-testid=extend-form]")
        extend.locator("textarea[name=reason]").fill("需征求第三方意见。")
        extend.locator("button[type=submit]").click()
        expect(console.locator("[data-testid=requests-said]")).to_contain_text("已延期")
        expect(item.locator("[data-testid=extension]")).to_contain_text("需征求第三方意见。")
        expect(item.locator("button[data-action=extend]")).to_have_count(0)
        ticket = {"X-Ticket": filed["ticket"]}
        view = httpx.get(f"{server.url}/api/disclosure-requests/{filed['id']}", headers=ticket)
        assert view.json()["status"] == "extended" and view.json()["due"] > filed["due"]

        item.locator("button[data-action=reply]").click()
        reply = item.locator("form[data-testid=reply-form]")
        reply.locator("select[name=outcome]").select_option("partly_granted")
        reply.locator("textarea[name=text]").fill("评审报告予以公开，专家个人信息已作处理。")
        reply.locator("input[name=basis]").fill("政府信息公开条例 §37")
        reply.locator("button[type=submit]").click()
        expect(console.locator("[data-testid=requests-said]")).to_contain_text("已答复")
        expect(item).to_have_count(0)
    finally:
        desk.close()

    # The requester reads the reply with the ticket kept on the device.
    visit(page, server.url + "/mine")
    expect(case).to_have_attribute("data-status", "replied")
    expect(case.locator("[data-testid=case-status]")).to_have_text("已答复")
    answer = case.locator("[data-testid=case-reply]")
    expect(answer).to_contain_text("部分公开")
    expect(answer).to_contain_text("评审报告予以公开，专家个人信息已作处理。")
    expect(answer).to_contain_text("第三十七条")
    expect(case.locator("[data-testid=case-extension]")).to_contain_text("需征求第三方意见。")
    assert overflow(page) == []

    # The agency's scorecard counts it: received, answered on time, and how it ended.
    visit(page, server.url + "/catalog")
    figures = page.locator("[data-testid=scorecard] li[data-agency='YW-GGZY']").locator(
        "[data-testid=respond-disclosure-requests]"
    )
    expect(figures.locator("[data-figure=received]")).to_have_text("收到 1")
    expect(figures.locator("[data-figure=on_time]")).to_have_text("按时答复 1")
    expect(figures.locator("[data-testid=outcomes]")).to_have_text("部分公开 1")
    rule = page.locator("[data-rule='all.disclosure-reply']")
    expect(rule).to_contain_text("可延长一次，最多 20 个工作日")
    expect(rule).to_contain_text("第三十三条")


# --- the answer by push ------------------------------------------------------------------------


@pytest.fixture
def publisher(push_server: ServerProcess) -> Iterator[Staff]:
    member = Staff(push_server, push_server.token("pw-ask-publisher", "publisher", "YW-GGZY"))
    yield member
    member.client.close()


def posted_topics(page: Any, action: Any, waiting: bool) -> list[str]:
    """The topics of the push subscription the app posts after `action`, once it does
    (`waiting`) or no longer does wait on an enquiry's answer."""

    def wanted(request: Any) -> bool:
        if not (request.url.endswith("/api/push/subscriptions") and request.method == "POST"):
            return False
        topics = request.post_data_json["topics"]
        return any(t.startswith("enquiry:") for t in topics) == waiting

    with page.expect_request(wanted) as posted:
        action()
    return list(posted.value.post_data_json["topics"])


def test_the_answer_reaches_the_askers_service_worker_by_push(
    push_server: ServerProcess,
    service: PushService,
    publisher: Staff,
    desktop: tuple[Any, NotificationServer],
) -> None:
    context, notifications = desktop
    origin = push_server.url
    publisher.project(PROJECT)
    publisher.publish(PROJECT, "notice")
    key = httpx.get(origin + "/api/push/vapid-key", timeout=10).json()["publicKey"]
    subscription = service.new_subscriber(application_server_key=key)
    endpoint = subscription["endpoint"]
    context.grant_permissions(["notifications"], origin=origin)
    context.add_init_script(STUB_PUSH_MANAGER % json.dumps(subscription))
    page = context.pages[0] if context.pages else context.new_page()

    # Notifications on for another category only: this project's events do not reach it.
    visit(page, origin + "/follows")
    page.evaluate("async () => { await navigator.serviceWorker.ready; return true; }")
    page.select_option("#add-category", "land")
    page.locator("form:has(#add-category) button[type=submit]").click()
    switch = page.locator("button[data-testid=enable-push]")
    assert posted_topics(page, switch.click, waiting=False) == ["category:land"]
    expect(switch).to_have_attribute("aria-pressed", "true")

    # Asking adds the enquiry's own topic to this device's subscription.
    visit(page, f"{origin}/p/{PROJECT}")
    asked: dict[str, Any] = {}
    topics = posted_topics(page, lambda: asked.update(ask(page, QUESTION)), waiting=True)
    assert f"enquiry:{asked['id']}" in topics and "category:land" in topics, topics
    assert f"project:{PROJECT}" not in topics
    box = page.locator(f"[data-testid=my-enquiry][data-enquiry='{asked['id']}']")
    expect(box).to_contain_text("答复后这台设备会收到通知")

    # Answered: a real encrypted push for the answer, to this device's push service.
    visit(page, origin + "/follows")  # away from the project: only the push can tell
    page.wait_for_load_state("networkidle")  # its check of the enquiry, before the answer
    response = publisher.client.post(
        f"/api/enquiries/{asked['id']}/answer", json={"answer": ANSWER, "question": PUBLISHED}
    )
    assert response.status_code == 201, response.text
    event = response.json()
    [payload] = wait_until(
        lambda: [p for p in service.received(endpoint) if p["event"]["seq"] == event["seq"]],
        "the push for the answer",
    )
    assert payload["event"]["stage"] == "enquiry_answer", payload
    assert service.rejections == []

    # The browser's push client hands it to the service worker, which shows it; the open
    # page hears of it, reads the answer with the ticket, and stops waiting on the enquiry.
    topics = posted_topics(page, lambda: deliver(page, origin, payload), waiting=False)
    assert topics == ["category:land"], topics
    notifications.wait_shown(payload["title"])
    listed = page.evaluate(
        """async () => (await (await navigator.serviceWorker.ready).getNotifications())
            .map(n => ({title: n.title, url: n.data.url}))"""
    )
    assert listed == [{"title": payload["title"], "url": payload["url"]}], listed
    [kept] = kept_cases(page)
    assert kept["status"] == "answered" and kept["answer"]["answer"] == ANSWER, kept
