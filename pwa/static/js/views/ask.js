// 「咨询/提问」 on a project page: anyone may ask the agency about the project,
// and this device's own questions about it are shown with where they stand.
//
// What happens next is said before sending (answered within about three
// working days, the answer published in the project's timeline with the
// question, personal details removed); the server's due date after. The
// contact is sent, never kept on the device and never published. An answer
// heard live (app.js hands every event to cases.js) turns the question's box
// to 已答复 at once.
import { h, keepInPlace, parseTime, span, problem } from '../ui.js';
import { L } from '../i18n.js';
import * as cases from '../cases.js';
import * as push from '../push.js';
import { dateTime } from './parts.js';

export const QUESTION_MAX = 2000;
export const CONTACT_MAX = 200;

/** The section for project `id` of `agency`; `ctx.onLeave` stops listening. */
export function askSection(id, agency, ctx) {
  const boxes = h('ul', { class: 'plain my-enquiries', 'data-testid': 'my-enquiries' });
  const question = h('textarea', {
    id: 'q-question', name: 'question', rows: 5, maxlength: QUESTION_MAX,
    'aria-describedby': 'q-question-count q-next',
  });
  const count = h('p', { class: 'hint count', id: 'q-question-count', 'data-testid': 'question-count' });
  const contact = h('input', {
    id: 'q-contact', name: 'contact', maxlength: CONTACT_MAX,
    'aria-describedby': 'q-contact-hint',
  });
  const submit = h('button', { type: 'submit', class: 'primary' }, L('提交咨询', 'Send the question'));
  const alert = h('p', { class: 'error', role: 'alert' });
  const result = h('p', { class: 'result', role: 'status', 'data-testid': 'ask-result' });
  const form = h('form', { class: 'stack ask', 'data-testid': 'ask', novalidate: true },
    h('div', { class: 'field' }, h('label', { for: 'q-question' }, L('您的问题', 'Your question')), question, count),
    h('div', { class: 'field' }, h('label', { for: 'q-contact' }, L('联系方式（可选）', 'How to reach you (optional)')), contact,
      h('p', { class: 'hint', id: 'q-contact-hint' }, L('电话或邮箱，仅供工作人员需要时联系您；不会公开，也不会出现在答复里。',
        'A phone number or e-mail, only for staff to reach you if needed; never published, never in the answer.'))),
    h('p', { class: 'next-steps', id: 'q-next', 'data-testid': 'ask-next' },
      L('一般在3个工作日内答复，答复将公开在项目进程中。问题会与答复一起公开（工作人员会删去其中的个人信息），请不要在问题里写姓名、电话等。',
        'Usually answered within 3 working days; the answer is published in the project’s timeline. Your question is published with it (staff remove personal details from it): please leave out names and numbers.')),
    submit, alert, result);

  const showCount = () => {
    const left = QUESTION_MAX - question.value.length;
    count.textContent = L(`${question.value.length} / ${QUESTION_MAX} 字`, `${question.value.length} / ${QUESTION_MAX} characters`);
    count.classList.toggle('bad', left <= 100);
  };
  question.addEventListener('input', showCount);
  showCount();

  const fail = (input, text) => {
    const note = h('p', { class: 'field-error', id: `${input.id}-error` }, text);
    input.setAttribute('aria-invalid', 'true');
    input.setAttribute('aria-describedby', `${note.id} ${input.getAttribute('aria-describedby')}`);
    input.closest('.field').append(note);
    alert.textContent = L('没有提交：', 'Not sent: ') + text;
    input.focus();
  };
  const clear = () => {
    form.querySelectorAll('.field-error').forEach((note) => note.remove());
    question.removeAttribute('aria-invalid');
    contact.removeAttribute('aria-invalid');
    question.setAttribute('aria-describedby', 'q-question-count q-next');
    contact.setAttribute('aria-describedby', 'q-contact-hint');
    alert.textContent = '';
    result.textContent = '';
  };

  form.addEventListener('submit', async (event) => {
    event.preventDefault();
    clear();
    const text = question.value.trim();
    if (!text) return fail(question, L('请填写问题。', 'Write your question.'));
    submit.disabled = true;
    try {
      const asked = await cases.ask(id, text, contact.value.trim());
      form.reset();
      showCount();
      result.textContent = L(`已提交。答复期限：${dateTime(asked.due)}。`, `Sent. To be answered by ${dateTime(asked.due)}.`);
      boxes.querySelector(`[data-enquiry="${asked.id}"]`)?.focus();
    } catch (error) {
      const field = error.details?.field;
      if (error.status === 422 && field === 'question') fail(question, L(`问题须为 1 至 ${QUESTION_MAX} 字。`, `The question must be 1 to ${QUESTION_MAX} characters.`));
      else if (error.status === 422 && field === 'contact') fail(contact, L(`联系方式最多 ${CONTACT_MAX} 字。`, `At most ${CONTACT_MAX} characters.`));
      else if (error.status === 429) alert.textContent = L(`提问太频繁，请 ${error.retryAfter || '稍'} 秒后再试。`, `Too many questions; try again in ${error.retryAfter || 'a few'} s.`);
      else alert.textContent = L('没有提交：', 'Not sent: ') + problem(error);
    } finally {
      submit.disabled = false;
    }
  });

  const show = () => keepInPlace(() => {
    const mine = cases.ofProject(id);
    boxes.hidden = !mine.length;
    boxes.replaceChildren(...mine.map(box));
  });
  cases.changes.addEventListener('change', show);
  push.changes.addEventListener('change', show);
  ctx.onLeave(() => {
    cases.changes.removeEventListener('change', show);
    push.changes.removeEventListener('change', show);
  });
  show();
  // Where each question waiting for its answer stands now (declined, or answered while away).
  for (const c of cases.ofProject(id)) if (c.status === 'open') cases.refresh(c.id).catch(() => {});

  return h('section', { 'aria-labelledby': 'h-ask', class: 'ask-section' },
    h('h2', { id: 'h-ask' }, L('咨询/提问', 'Ask about this project')),
    boxes,
    h('p', { class: 'lead' }, L('对本项目有疑问，可以直接向发布机构提问。', 'Questions about this project go straight to the agency that publishes it.')),
    form,
    h('p', { class: 'small' }, L('需要未公开的政府信息，可以', 'For government information not published, '),
      h('a', { href: `/request?agency=${encodeURIComponent(agency ?? '')}`, 'data-testid': 'request-link' }, L('申请政府信息公开', 'file a disclosure request')),
      L('。', '.')));
}

/** One of this device's questions about the project: asked, waiting (due), answered or declined. */
function box(c) {
  const status = {
    open: c.overdue || (c.due && parseTime(c.due) < Date.now()) ? L('已超过答复期限', 'Past its due date') : L('待答复', 'Awaiting the answer'),
    answered: L('已答复', 'Answered'),
    declined: L('不予答复', 'Declined'),
  }[c.status] ?? c.status;
  const open = c.status === 'open';
  return h('li', { class: `my-enquiry status-${c.status}`, 'data-testid': 'my-enquiry', 'data-enquiry': c.id, 'data-status': c.status, tabindex: -1 },
    h('h3', null, L('我的提问', 'My question'), ' ', h('span', { class: `tag state ${c.status === 'answered' ? 'good' : open ? '' : 'bad'}`, 'data-testid': 'enquiry-status' }, status)),
    c.question ? h('p', { class: 'asked' }, c.question) : h('p', { class: 'small muted' }, L('（提问原文已按规定删除）', '(your text was erased, as the rules require)')),
    h('p', { class: 'small muted' }, L(`提问于 ${dateTime(c.asked_at)}`, `Asked ${dateTime(c.asked_at)}`)),
    open && c.due && h('p', { 'data-testid': 'enquiry-due' }, L('答复期限：', 'Due: '), h('strong', null, dateTime(c.due)),
      parseTime(c.due) > Date.now() ? L(`（还有 ${span(parseTime(c.due) - Date.now())}）`, ` (${span(parseTime(c.due) - Date.now())} left)`) : ''),
    open && h('p', { class: 'small' }, push.enabled()
      ? L('答复后这台设备会收到通知，答复也会公开在下方的项目进程中。', 'This device will be notified of the answer, which is also published in the timeline below.')
      : [L('答复会公开在下方的项目进程中；也可以在', 'The answer is published in the timeline below; see also '), h('a', { href: '/mine' }, L('我的咨询', 'My enquiries')), L('查看。', '.')]),
    c.status === 'answered' && c.answer && [
      h('p', { class: 'answer', 'data-testid': 'enquiry-answer' }, h('strong', null, L('答：', 'A: ')), c.answer.answer),
      h('p', { class: 'small muted' }, L(`答复于 ${dateTime(c.answer.published_at)} · `, `Answered ${dateTime(c.answer.published_at)} · `),
        h('a', { href: `#e${c.answer.seq}`, class: 'ref' }, L('在项目进程中查看', 'See it in the timeline'))),
      !c.rating && h('p', { class: 'small' }, h('a', { href: '/mine' }, L('评价这个答复', 'Rate this answer'))),
    ],
    c.status === 'declined' && h('p', { 'data-testid': 'enquiry-reason' }, L('原因：', 'Reason: '), c.reason ?? '—'));
}
