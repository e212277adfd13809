// The staff console's inbox (回应): public enquiries about the agency's
// projects, oldest due first, and disclosure requests (依申请公开), each with
// its due time counting down. Publishers (and administrators) answer, decline
// or link a repeat question to an earlier answer, extend or reply to a
// request; supervisors see the same lists read-only, with each open case's age.
//
// An answer is published in the project's timeline with the question as
// staff edit it (personal details removed): the form offers the asker's text
// to edit, never publishes it unseen. A case handled is taken off the list.
import { h, when, dueTime, parseTime, span, problem } from '../ui.js';
import { L } from '../i18n.js';
import { request } from '../api.js';
import { agencyName, categoryName } from '../vocab.js';
import { OUTCOMES } from '../cases.js';

const PAGE = 50;
const ANSWER_MAX = 4000;
const QUESTION_MAX = 2000;
const REASON_MAX = 500;
const BASIS_MAX = 200;

/** [enquiries, requests]: the two sections, filled once their lists answer. */
export async function inboxSections(ctx, token, role) {
  const acts = role === 'publisher' || role === 'admin';
  const enquiries = inbox({
    id: 'enquiries', token, acts, ctx,
    title: L('咨询待办', 'Enquiries to answer'),
    lead: acts ? L('公众对项目的咨询，答复期限最早的在前。答复会连同（删去个人信息后的）问题公开在项目进程中。',
      'Public questions about projects, the earliest due first. An answer is published in the project’s timeline with the question, personal details removed.')
      : L('所有未办结的咨询及其已等待的天数（只读）。', 'Every open enquiry and how long it has waited (read-only).'),
    paths: ['/api/enquiries?status=open'],
    item: (e, list) => enquiryItem(e, { token, acts, ...list }),
    none: L('没有待答复的咨询。', 'No enquiry is waiting.'),
  });
  const requests = inbox({
    id: 'requests', token, acts, ctx,
    title: L('依申请公开', 'Disclosure requests'),
    lead: acts ? L('须自收到申请之日起 20 个工作日内答复；延长须告知申请人，最多一次、20 个工作日（政府信息公开条例 第三十三条）。',
      'To be answered within 20 working days of receipt; an extension, once, by at most 20, with notice to the requester (Regulations on the Disclosure of Government Information, Art. 33).')
      : L('所有未办结的申请及其已等待的天数（只读）。', 'Every open request and how long it has waited (read-only).'),
    paths: ['/api/disclosure-requests?status=received', '/api/disclosure-requests?status=extended'],
    item: (r, list) => requestItem(r, { token, acts, ...list }),
    none: L('没有待办的申请。', 'No request is waiting.'),
  });
  await Promise.all([enquiries.ready, requests.ready]);
  const tick = setInterval(() => document.querySelectorAll('[data-due-at]').forEach(countdown), 30_000);
  ctx.onLeave(() => clearInterval(tick));
  return [enquiries.section, requests.section];
}

/** A section listing open cases from `paths` (each followed to its last page), soonest due first. */
function inbox({ id, token, ctx, title, lead, paths, item, none }) {
  const list = h('ul', { class: 'plain inbox', 'data-testid': `${id}-inbox` });
  const count = h('span', { class: 'count' });
  const said = h('p', { class: 'result', role: 'status', 'data-testid': `${id}-said` });
  const reload = h('button', { type: 'button', class: 'link', onclick: () => load() }, L('刷新', 'Refresh'));
  const section = h('section', { class: 'inbox-section', 'aria-labelledby': `h-${id}`, 'data-testid': `${id}-section` },
    h('h2', { id: `h-${id}`, tabindex: -1 }, title, count),
    h('p', { class: 'small muted' }, lead, ' ', reload),
    said, list);
  const say = (text) => {
    said.textContent = text;
  };
  // A case handled leaves the list; the focus it had goes to the list's heading.
  const remove = (caseItem, text) => {
    caseItem.remove();
    say(text);
    showCount();
    section.querySelector('h2').focus();
  };
  const showCount = () => {
    const n = list.querySelectorAll(':scope > li[data-case]').length;
    count.textContent = n ? L(`（${n}）`, ` (${n})`) : '';
    if (!n && !list.querySelector('.none')) list.append(h('li', { class: 'none' }, none));
  };
  let loading = 0;
  async function load() {
    const mine = ++loading;
    let items;
    try {
      items = (await Promise.all(paths.map((path) => all(path, token)))).flat();
    } catch (error) {
      if (mine === loading && !ctx.signal.aborted) list.replaceChildren(h('li', { class: 'none' }, problem(error)));
      return;
    }
    if (mine !== loading || ctx.signal.aborted) return;
    // Soonest due first; of cases due together, the one waiting longest.
    const since = (c) => parseTime(c.asked_at ?? c.received_at);
    items.sort((a, b) => parseTime(a.due) - parseTime(b.due) || since(a) - since(b));
    list.replaceChildren(...items.map((c) => item(c, { remove, say })));
    list.querySelectorAll('[data-due-at]').forEach(countdown);
    showCount();
  }
  return { section, ready: load() };
}

/** Every item of a staff listing, page after page (a busy agency may have more than one page). */
async function all(path, token) {
  const items = [];
  let cursor = null;
  do {
    const query = `${path}&limit=${PAGE}${cursor ? `&cursor=${encodeURIComponent(cursor)}` : ''}`;
    const { data } = await request('GET', query, { token });
    items.push(...data.items);
    cursor = data.next_cursor;
  } while (cursor && items.length < 1000);
  return items;
}

/** 剩余 2 天 5 小时 / 已超期 3 小时: how long until a case is due. */
function countdown(el) {
  const left = parseTime(el.dataset.dueAt) - Date.now();
  el.textContent = left >= 0 ? L(`剩余 ${span(left)}`, `${span(left)} left`) : L(`已超期 ${span(left)}`, `Overdue by ${span(left)}`);
  el.classList.toggle('bad', left < 0);
}

function dueParts(c) {
  return [
    L('答复期限 ', 'Due '), dueTime(c.due), ' · ',
    h('strong', { class: 'countdown', 'data-due-at': c.due, 'data-testid': 'due-countdown' }),
    c.age_days != null && h('span', { class: 'age', 'data-testid': 'age' }, L(` · 已等待 ${c.age_days} 天`, ` · waiting ${c.age_days} day${c.age_days === 1 ? '' : 's'}`)),
  ];
}

/** The controls that open one form at a time under a case. */
function actions(caseId, forms) {
  const bar = h('div', { class: 'case-actions' });
  const box = h('div', { class: 'case-form' });
  for (const [key, label, make] of forms) {
    const button = h('button', { type: 'button', 'aria-expanded': 'false', 'aria-controls': `${caseId}-form`, 'data-action': key }, label);
    button.addEventListener('click', async () => {
      const open = button.getAttribute('aria-expanded') === 'true';
      bar.querySelectorAll('button').forEach((b) => b.setAttribute('aria-expanded', 'false'));
      box.replaceChildren();
      if (open) return;
      button.setAttribute('aria-expanded', 'true');
      const form = await make();
      box.replaceChildren(form);
      form.querySelector('textarea, select, input')?.focus();
    });
    bar.append(button);
  }
  box.id = `${caseId}-form`;
  return [bar, box];
}

// What the server found that must not be published (details.found of 422 personal_data).
const PERSONAL = () => ({
  'a mobile number': L('手机号码', 'a mobile number'),
  'an identity card number': L('身份证号码', 'an identity card number'),
  'an e-mail address': L('电子邮箱', 'an e-mail address'),
  "the asker's contact": L('提问人的联系方式', 'the asker’s contact'),
});

/** 「公开的问题」里含有手机号码：…: what to remove before publishing, in words. */
function personal(error) {
  const where = { question: L('公开的问题', 'The question'), answer: L('答复', 'The answer') }[error.details?.field] ?? '';
  const found = (error.details?.found ?? []).map((what) => PERSONAL()[what] ?? what).join(L('、', ', '));
  return L(`${where}里含有${found || '个人信息'}，不能公开。请删去后再发布。`,
    `${where} holds ${found || 'personal data'}, which must not be published. Remove it, then publish.`);
}

/** A form's refusal: next to the field the server names, else in its alert. */
function refused(form, error, messages = {}) {
  const alert = form.querySelector('[role=alert]');
  const input = error.details?.field && form.elements.namedItem(error.details.field);
  const text = messages[error.code] ?? (error.code === 'personal_data' ? personal(error) : error.status === 403
    ? L('这个令牌无权处理该机构的事项。', 'This token may not act for that agency.')
    : problem(error));
  alert.textContent = L('未能提交：', 'Not submitted: ') + text;
  if (input) {
    input.setAttribute('aria-invalid', 'true');
    input.focus();
  }
}

function labelled(id, label, control, hint) {
  return h('div', { class: 'field' }, h('label', { for: id }, label), control, hint && h('p', { class: 'hint', id: `${id}-hint` }, hint));
}

function caseForm(testid, fields, submitLabel, send) {
  const button = h('button', { type: 'submit', class: 'primary' }, submitLabel);
  const form = h('form', { class: 'stack', 'data-testid': testid, novalidate: true }, fields, button, h('p', { class: 'error', role: 'alert' }));
  form.addEventListener('submit', async (event) => {
    event.preventDefault();
    form.querySelector('[role=alert]').textContent = '';
    form.querySelectorAll('[aria-invalid]').forEach((input) => input.removeAttribute('aria-invalid'));
    button.disabled = true;
    try {
      await send(form);
    } finally {
      button.disabled = false;
    }
  });
  return form;
}

/** A required text field left empty: said, the field marked and focused, nothing sent. */
function required(form, name, text) {
  const input = form.elements.namedItem(name);
  if (input.value.trim()) return false;
  form.querySelector('[role=alert]').textContent = L('未能提交：', 'Not submitted: ') + text;
  input.setAttribute('aria-invalid', 'true');
  input.focus();
  return true;
}

// --- enquiries ----------------------------------------------------------------------

function enquiryItem(e, { token, acts, remove }) {
  const id = `enquiry-${e.id}`;
  const path = `/api/enquiries/${encodeURIComponent(e.id)}`;
  const li = h('li', { class: `case${e.overdue ? ' overdue' : ''}`, 'data-testid': 'inbox-enquiry', 'data-case': e.id, 'data-project': e.project },
    h('p', { class: 'case-head' }, h('a', { href: `/p/${encodeURIComponent(e.project)}` }, e.project),
      h('span', { class: 'small muted' }, ` · ${categoryName(e.category)} · ${agencyName(e.agency)}`)),
    h('blockquote', { class: 'asked', 'data-testid': 'inbox-question' }, e.question ?? L('（原文已删除）', '(erased)')),
    h('p', { class: 'small' }, L(`提问于 ${when(e.asked_at)} · `, `Asked ${when(e.asked_at)} · `), dueParts(e)),
    e.contact && h('p', { class: 'small' }, L('联系方式（不公开）：', 'Contact (never published): '), e.contact));
  if (!acts) return li;
  const answered = (text) => remove(li, text);

  const answerForm = () => caseForm('answer-form', [
    labelled(`${id}-q`, L('公开的问题（请删去姓名、电话等个人信息）', 'The question as published (remove names, numbers and other personal details)'),
      h('textarea', { id: `${id}-q`, name: 'question', rows: 3, maxlength: QUESTION_MAX }, e.question ?? '')),
    labelled(`${id}-a`, L('答复', 'Answer'), h('textarea', { id: `${id}-a`, name: 'answer', rows: 5, maxlength: ANSWER_MAX }),
      L('答复会立即公开在项目进程中，并通知提问人。', 'The answer is published in the project’s timeline at once, and the asker is told.')),
  ], L('发布答复', 'Publish the answer'), async (form) => {
    if (required(form, 'answer', L('请填写答复。', 'Write the answer.'))) return;
    if (required(form, 'question', L('请填写要公开的问题。', 'Give the question as it will be published.'))) return;
    try {
      const { data: event } = await request('POST', `${path}/answer`, { token, body: { answer: form.elements.answer.value.trim(), question: form.elements.question.value.trim() } });
      answered(L(`已答复并公开（项目 ${e.project} 第 ${event.seq} 号信息）。`, `Answered and published (${e.project}, #${event.seq}).`));
    } catch (error) {
      refused(form, error, { not_open: L('这条咨询已经处理过了，请刷新列表。', 'This enquiry was handled already; refresh the list.') });
    }
  });

  const sameForm = async () => {
    let earlier = [];
    try {
      earlier = await all(`/api/enquiries?status=answered&project=${encodeURIComponent(e.project)}`, token);
    } catch (error) {
      return h('p', { class: 'error', role: 'alert' }, problem(error));
    }
    earlier = earlier.filter((x) => x.id !== e.id);
    if (!earlier.length) return h('p', { class: 'none', 'data-testid': 'same-as-none' }, L('本项目还没有已答复的咨询可以引用。', 'No answered enquiry of this project to link to yet.'));
    return caseForm('same-as-form', [
      labelled(`${id}-same`, L('与哪条已答复的咨询相同', 'Same as which answered enquiry'),
        h('select', { id: `${id}-same`, name: 'same_as' }, earlier.map((x) => h('option', { value: x.id },
          `${clip(x.question ?? x.id)}（${when(x.closed_at ?? x.asked_at).slice(0, 10)}）`))),
        L('提问人会看到那条已公开的答复；不会重复公开。', 'The asker is shown that published answer; nothing is published again.')),
    ], L('引用此答复', 'Link to this answer'), async (form) => {
      try {
        const { data: event } = await request('POST', `${path}/answer`, { token, body: { same_as: form.elements.same_as.value } });
        answered(L(`已引用第 ${event.seq} 号信息的答复。`, `Linked to the answer #${event.seq}.`));
      } catch (error) {
        refused(form, error, { not_open: L('这条咨询已经处理过了，请刷新列表。', 'This enquiry was handled already; refresh the list.') });
      }
    });
  };

  const declineForm = () => caseForm('decline-form', [
    labelled(`${id}-r`, L('不予答复的原因', 'Why it is not answered'), h('textarea', { id: `${id}-r`, name: 'reason', rows: 3, maxlength: REASON_MAX }),
      L('原因会告知提问人，不会公开；计入机构的回应统计。', 'The asker is told the reason; it is not published, and counts in the agency’s figures.')),
  ], L('确认不予答复', 'Decline'), async (form) => {
    if (required(form, 'reason', L('请填写原因。', 'Give the reason.'))) return;
    try {
      await request('POST', `${path}/decline`, { token, body: { reason: form.elements.reason.value.trim() } });
      answered(L('已不予答复，原因已告知提问人。', 'Declined; the asker is told why.'));
    } catch (error) {
      refused(form, error, { not_open: L('这条咨询已经处理过了，请刷新列表。', 'This enquiry was handled already; refresh the list.') });
    }
  });

  li.append(...actions(id, [
    ['answer', L('答复', 'Answer'), answerForm],
    ['same_as', L('引用已有答复', 'Same as earlier'), sameForm],
    ['decline', L('不予答复', 'Decline'), declineForm],
  ]));
  return li;
}

// --- disclosure requests --------------------------------------------------------------

function requestItem(r, { token, acts, remove, say }) {
  const id = `request-${r.id}`;
  const path = `/api/disclosure-requests/${encodeURIComponent(r.id)}`;
  const li = h('li', { class: `case${r.overdue ? ' overdue' : ''}`, 'data-testid': 'inbox-request', 'data-case': r.id, 'data-status': r.status },
    h('p', { class: 'case-head' }, h('strong', null, r.subject ?? r.id), h('span', { class: 'small muted' }, ` · ${agencyName(r.agency)} · ${r.id}`)),
    r.description && h('blockquote', { class: 'asked' }, r.description),
    h('p', { class: 'small' }, L(`收到于 ${when(r.received_at)} · `, `Received ${when(r.received_at)} · `), dueParts(r)),
    r.extension && h('p', { class: 'small', 'data-testid': 'extension' }, L(`已延期（${when(r.extension.at)}）：`, `Extended (${when(r.extension.at)}): `), r.extension.reason),
    r.contact && h('p', { class: 'small' }, L('申请人联系方式（不公开）：', 'Requester’s contact (never published): '), r.contact));
  if (!acts) return li;
  const handled = (text) => remove(li, text);
  // Extended: the same case with its new due date, in place.
  const replaced = (text, item) => {
    const next = requestItem(item, { token, acts, remove, say });
    li.replaceWith(next);
    next.querySelectorAll('[data-due-at]').forEach(countdown);
    say(text);
    next.querySelector('[data-action=reply]').focus();
  };

  const extendForm = () => caseForm('extend-form', [
    labelled(`${id}-x`, L('延期理由', 'Why more time is needed'), h('textarea', { id: `${id}-x`, name: 'reason', rows: 3, maxlength: REASON_MAX }),
      L('答复期限延长 20 个工作日，只能延长一次；理由会告知申请人。', 'The due date moves by 20 working days, once; the requester is told why.')),
  ], L('确认延期', 'Extend'), async (form) => {
    if (required(form, 'reason', L('请填写延期理由。', 'Give the reason.'))) return;
    try {
      const { data } = await request('POST', `${path}/extend`, { token, body: { reason: form.elements.reason.value.trim() } });
      replaced(L(`已延期，新的答复期限：${dueTime(data.due)}。`, `Extended: now due ${dueTime(data.due)}.`), data);
    } catch (error) {
      refused(form, error, {
        already_extended: L('这件申请已经延期过一次，不能再延期。', 'This request was extended once already.'),
        not_open: L('这件申请已经答复了，请刷新列表。', 'This request was replied to already; refresh the list.'),
      });
    }
  });

  const replyForm = () => caseForm('reply-form', [
    labelled(`${id}-o`, L('答复结果', 'Outcome'), h('select', { id: `${id}-o`, name: 'outcome' },
      Object.entries(OUTCOMES()).map(([code, name]) => h('option', { value: code }, name)))),
    labelled(`${id}-t`, L('答复内容', 'Reply'), h('textarea', { id: `${id}-t`, name: 'text', rows: 5, maxlength: ANSWER_MAX })),
    labelled(`${id}-b`, L('依据（可选）', 'Basis (optional)'), h('input', { id: `${id}-b`, name: 'basis', maxlength: BASIS_MAX }),
      L('如不予公开，写明法律依据，例如「政府信息公开条例 第十四条」。', 'When refusing, name the provision, e.g. “Regulations on the Disclosure of Government Information, Art. 14”.')),
  ], L('发送答复', 'Send the reply'), async (form) => {
    if (required(form, 'text', L('请填写答复内容。', 'Write the reply.'))) return;
    const body = { outcome: form.elements.outcome.value, text: form.elements.text.value.trim() };
    if (form.elements.basis.value.trim()) body.basis = form.elements.basis.value.trim();
    try {
      await request('POST', `${path}/reply`, { token, body });
      handled(L('已答复，申请人可凭凭证查看。', 'Replied; the requester can read it with the ticket.'));
    } catch (error) {
      refused(form, error, { not_open: L('这件申请已经答复了，请刷新列表。', 'This request was replied to already; refresh the list.') });
    }
  });

  li.append(...actions(id, [
    r.status === 'received' && ['extend', L('延期答复', 'Extend'), extendForm],
    ['reply', L('答复', 'Reply'), replyForm],
  ].filter(Boolean)));
  return li;
}

const clip = (text, length = 30) => (text.length > length ? `${text.slice(0, length)}…` : text);
