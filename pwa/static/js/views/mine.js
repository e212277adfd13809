// `/mine` (我的咨询): the enquiries and disclosure requests this device filed,
// each as the server answers it with the case's ticket — status, due date,
// the answer, the reason or the reply — and, once an enquiry is answered, a
// 1–5 rating. Removing one forgets its ticket on this device.
//
// Each case's list item is kept and updated in place, so a change (an answer
// heard live, another tab) never takes away a comment being typed or the focus.
// Answers arrive live: the page follows, while it is shown, each project with
// an enquiry of this device waiting (an `enquiry:<id>` topic is for
// notifications only, no stream serves it), and app.js hands every event to
// cases.js, which keeps an answer to one of this device's questions.
import { h, keepInPlace, parseTime, span, showingCopy, problem } from '../ui.js';
import { L } from '../i18n.js';
import * as db from '../db.js';
import * as cases from '../cases.js';
import { live } from '../live.js';
import { agencyName } from '../vocab.js';
import { citation, dateTime } from './parts.js';

const SCORES = () => [
  L('很不满意', 'very poor'), L('不满意', 'poor'), L('一般', 'fair'), L('满意', 'good'), L('很满意', 'very good'),
];
const COMMENT_MAX = 500;

export default async function minePage(main, ctx) {
  const heading = h('h1', { tabindex: -1 }, L('我的咨询', 'My questions and requests'));
  const list = h('ul', { class: 'plain cases', 'data-testid': 'cases' });
  const said = h('p', { role: 'status', class: 'result', 'data-testid': 'cases-said' });
  const say = (text, kind = 'result') => {
    said.textContent = text;
    said.className = kind;
  };
  const items = new Map(); // case id → its list item, updated in place
  const titles = new Map(); // project id → title, from the copies kept of visited projects

  main.replaceChildren(
    heading,
    h('p', { class: 'lead' }, L('这台设备提交的咨询和政府信息公开申请。查看答复要用提交时得到的凭证，它只保存在这台设备上：换了设备或清除了浏览器数据，就无法再在这里查看。',
      'The questions and disclosure requests sent from this device. Reading their answers takes the ticket each one got, which is kept on this device only: on another device, or after clearing the browser’s data, they cannot be shown here.')),
    h('p', null, h('a', { class: 'button', href: '/request', 'data-testid': 'new-request' }, L('申请政府信息公开', 'Request government information'))),
    said,
    list,
  );

  const sync = () => keepInPlace(() => {
    const shown = cases.list();
    for (const [id, item] of items) {
      if (!shown.some((c) => c.id === id)) {
        item.remove();
        items.delete(id);
      }
    }
    shown.forEach((c, i) => {
      if (!items.has(c.id)) items.set(c.id, caseItem(c.id));
      const item = items.get(c.id);
      if (list.children[i] !== item) list.insertBefore(item, list.children[i] ?? null);
      item.update();
    });
    list.querySelector('.none')?.remove();
    if (!shown.length) {
      list.append(h('li', { class: 'none' }, L('这台设备还没有提交过咨询或申请。可以在项目页的「咨询/提问」里提问。',
        'Nothing sent from this device yet. Ask about a project in its “Ask” section.')));
    }
  });

  function caseItem(id) {
    const what = h('div', { class: 'case-body' });
    const rating = ratingForm(id);
    const removal = removeControl(id);
    const item = h('li', { class: 'case', 'data-case': id }, what, rating, removal);
    item.update = () => {
      const c = cases.get(id);
      if (!c) return;
      item.dataset.kind = c.kind;
      item.dataset.status = c.status;
      what.replaceChildren(...shown(c.kind === cases.ENQUIRY ? enquiryParts(c, titles) : requestParts(c)));
      rating.update(c);
      removal.update(c);
    };
    return item;
  }

  function removeControl(id) {
    const ask = h('button', { type: 'button', class: 'link', 'data-testid': 'case-remove', 'aria-expanded': 'false' }, L('从这台设备移除', 'Remove from this device'));
    const sure = h('div', { class: 'confirm', hidden: true },
      h('p', { class: 'small' }, L('移除后，这台设备会忘记它的凭证，再也不能在这里查看这条记录和答复。已公开的答复仍可在项目页看到。',
        'Removed, its ticket is forgotten on this device: this case and its answer can no longer be shown here. A published answer stays on the project page.')),
      h('div', { class: 'confirm-actions' },
        h('button', { type: 'button', 'data-testid': 'case-remove-confirm', onclick: () => {
          cases.forget(id);
          say(L('已从这台设备移除。', 'Removed from this device.'));
          heading.focus();
        } }, L('确定移除', 'Remove')),
        h('button', { type: 'button', onclick: () => toggle(false) }, L('取消', 'Keep it'))));
    const toggle = (open) => {
      sure.hidden = !open;
      ask.setAttribute('aria-expanded', String(open));
      if (!open) ask.focus();
    };
    ask.addEventListener('click', () => toggle(ask.getAttribute('aria-expanded') !== 'true'));
    const box = h('div', { class: 'case-remove' }, ask, sure);
    box.update = (c) => ask.setAttribute('aria-label', `${L('从这台设备移除', 'Remove from this device')}：${c.kind === cases.ENQUIRY ? L('咨询', 'question') : c.subject ?? ''} ${c.id}`);
    return box;
  }

  /** 1–5, and an optional comment, once the enquiry is answered; the score given afterwards. */
  function ratingForm(id) {
    let score = 0;
    const legend = h('p', { class: 'legend', id: `rate-${id}` }, L('这个答复对您有帮助吗？请打分（1–5 分）', 'Did the answer help? Rate it (1–5)'));
    const scores = h('div', { class: 'scores', role: 'group', 'aria-labelledby': legend.id },
      SCORES().map((words, i) => h('button', {
        type: 'button', class: 'toggle score-button', 'aria-pressed': 'false', 'data-score': i + 1,
        'aria-label': `${i + 1} ${L('分', i ? 'points' : 'point')}：${words}`, onclick: () => choose(i + 1),
      }, String(i + 1))));
    const words = h('p', { class: 'small muted', 'aria-hidden': 'true' });
    const comment = h('textarea', { id: `comment-${id}`, name: 'comment', rows: 2, maxlength: COMMENT_MAX });
    const submit = h('button', { type: 'submit', class: 'primary' }, L('提交评价', 'Send the rating'));
    const alert = h('p', { class: 'error', role: 'alert' });
    const form = h('form', { class: 'rating', 'data-testid': 'rating', novalidate: true },
      legend, scores, words,
      h('div', { class: 'field' }, h('label', { for: comment.id }, L('意见（可选）', 'Comment (optional)')), comment),
      submit, alert);
    const rated = h('p', { class: 'rated', 'data-testid': 'rated' });
    const box = h('div', { class: 'rating-box' }, form, rated);
    function choose(n) {
      score = n;
      for (const b of scores.children) b.setAttribute('aria-pressed', String(Number(b.dataset.score) === n));
      words.textContent = SCORES()[n - 1];
    }
    form.addEventListener('submit', async (event) => {
      event.preventDefault();
      alert.textContent = '';
      if (!score) {
        alert.textContent = L('请先选择 1 到 5 分。', 'Choose 1 to 5 first.');
        return scores.firstChild.focus();
      }
      submit.disabled = true;
      try {
        await cases.rate(id, score, comment.value.trim());
        say(L('谢谢您的评价。', 'Thank you for rating the answer.'));
      } catch (error) {
        alert.textContent = error.code === 'not_answered' ? L('还没有答复，答复后才能评价。', 'Not answered yet: rate it once it is.')
          : L('没有提交：', 'Not sent: ') + problem(error);
      } finally {
        submit.disabled = false;
      }
    });
    box.update = (c) => {
      const answered = c.kind === cases.ENQUIRY && c.status === 'answered';
      form.hidden = !answered || Boolean(c.rating);
      rated.hidden = !c.rating;
      rated.textContent = c.rating
        ? L(`您的评价：${c.rating.score} 分（${SCORES()[c.rating.score - 1] ?? ''}）`, `Your rating: ${c.rating.score} of 5 (${SCORES()[c.rating.score - 1] ?? ''})`)
          + (c.rating.comment ? L(`，意见：${c.rating.comment}`, `; comment: ${c.rating.comment}`) : '')
        : '';
    };
    return box;
  }

  // The titles of projects asked about, where this device kept a copy of the project.
  const asked = [...new Set(cases.list().filter((c) => c.project).map((c) => c.project))];
  const kept = await Promise.all(asked.map((p) => db.get(`project:${p}`)));
  asked.forEach((p, i) => kept[i]?.data?.title && titles.set(p, kept[i].data.title));
  if (ctx.signal.aborted) return;

  const waiting = () => [...new Set(cases.list().filter((c) => c.kind === cases.ENQUIRY && c.status === 'open').map((c) => `project:${c.project}`))];
  const onChange = () => {
    sync();
    live.setPageTopics(waiting());
  };
  onChange();
  cases.changes.addEventListener('change', onChange);
  ctx.onLeave(() => {
    cases.changes.removeEventListener('change', onChange);
    live.setPageTopics([]);
  });
  const tick = setInterval(() => items.forEach((item) => item.update()), 30_000);
  ctx.onLeave(() => clearInterval(tick));

  // The server's view of each case; without an answer, what was kept, and when it was checked.
  const checks = await Promise.all(cases.list().map((c) => cases.refresh(c.id).then(() => null, (error) => error)));
  if (ctx.signal.aborted) return;
  const failed = checks.find((error) => error && error.status !== 404);
  if (failed) {
    const at = cases.list().map((c) => c.checked_at).filter(Boolean).sort()[0] ?? null;
    if (failed.status === 0) showingCopy(at ?? 'earlier');
    say(L('没能取得最新状态：', 'Could not get the latest state: ') + problem(failed), 'error');
  }
}

/** Parts as h() takes its children: nested lists flattened, nothing for null and false. */
const shown = (parts) => parts.flat(Infinity).filter((part) => part != null && part !== false);

/** How a case stands, in words and as a state for its look. */
function standing(c) {
  const late = c.overdue || (c.due && !c.closed_at && parseTime(c.due) < Date.now());
  if (c.gone) return [L('查不到了', 'No longer found'), 'bad'];
  if (c.kind === cases.ENQUIRY) {
    return {
      open: late ? [L('已超过答复期限', 'Past its due date'), 'bad'] : [L('待答复', 'Awaiting the answer'), ''],
      answered: [L('已答复', 'Answered'), 'good'],
      declined: [L('不予答复', 'Declined'), 'bad'],
    }[c.status] ?? [c.status, ''];
  }
  return {
    received: late ? [L('已超过答复期限', 'Past its due date'), 'bad'] : [L('已收到，办理中', 'Received, in hand'), ''],
    extended: late ? [L('已超过延长后的期限', 'Past its extended due date'), 'bad'] : [L('已延期答复', 'Extended'), ''],
    replied: [L('已答复', 'Replied'), 'good'],
  }[c.status] ?? [c.status, ''];
}

function statusLine(c) {
  const [words, look] = standing(c);
  return h('span', { class: `tag state ${look}`, 'data-testid': 'case-status' }, words);
}

/** The due date, with how long is left, while the case is open. */
function dueLine(c) {
  if (!c.due || c.closed_at || c.gone || ['answered', 'declined', 'replied'].includes(c.status)) return null;
  const left = parseTime(c.due) - Date.now();
  return h('p', { 'data-testid': 'case-due' }, L('答复期限：', 'Due: '), h('strong', null, dateTime(c.due)),
    left >= 0 ? L(`（还有 ${span(left)}）`, ` (${span(left)} left)`) : L(`（已超过 ${span(left)}）`, ` (${span(left)} overdue)`));
}

function goneNote(c) {
  return c.gone && h('p', { class: 'small bad' }, L('服务器上查不到这条记录了（可能已超过保存期限）。可以把它从这台设备移除。',
    'The server no longer finds this case (it may have been kept as long as the rules allow). You may remove it from this device.'));
}

function erasedNote(c) {
  return c.erased && h('p', { class: 'small muted' }, L('按规定，您提交的原文和联系方式已在办结后删除。', 'As the rules require, your text and contact were erased once the case closed.'));
}

function enquiryParts(c, titles) {
  const title = titles.get(c.project);
  return [
    h('p', { class: 'case-head' }, h('span', { class: 'kind' }, L('咨询', 'Question')), ' ', statusLine(c)),
    h('h2', { class: 'case-title' }, h('a', { href: `/p/${encodeURIComponent(c.project)}` }, title ? `${title}（${c.project}）` : c.project)),
    c.question && h('p', { class: 'asked' }, c.question),
    h('p', { class: 'small muted' }, L(`提问于 ${dateTime(c.asked_at)}`, `Asked ${dateTime(c.asked_at)}`), ` · ${c.id}`),
    dueLine(c),
    c.status === 'answered' && c.answer && [
      h('div', { class: 'answer', 'data-testid': 'case-answer' },
        h('p', null, h('strong', null, L('答：', 'A: ')), c.answer.answer),
        h('p', { class: 'small muted' }, L(`答复于 ${dateTime(c.answer.published_at)} · `, `Answered ${dateTime(c.answer.published_at)} · `),
          h('a', { href: `/p/${encodeURIComponent(c.project)}#e${c.answer.seq}` }, L('在项目进程中查看', 'See it in the timeline')))),
    ],
    c.status === 'declined' && h('p', { 'data-testid': 'case-reason' }, L('原因：', 'Reason: '), c.reason ?? '—'),
    erasedNote(c),
    goneNote(c),
  ];
}

function requestParts(c) {
  const reply = c.reply;
  return [
    h('p', { class: 'case-head' }, h('span', { class: 'kind' }, L('依申请公开', 'Disclosure request')), ' ', statusLine(c)),
    h('h2', { class: 'case-title' }, c.subject ?? c.id),
    h('p', { class: 'small' }, L('受理机关：', 'Agency: '), agencyName(c.agency)),
    c.description && h('p', { class: 'asked' }, c.description),
    h('p', { class: 'small muted' }, L(`提交于 ${dateTime(c.received_at)}`, `Sent ${dateTime(c.received_at)}`), ` · ${c.id}`),
    dueLine(c),
    c.extension && h('p', { class: 'small', 'data-testid': 'case-extension' },
      L(`已于 ${dateTime(c.extension.at)} 延长答复期限，理由：`, `Extended on ${dateTime(c.extension.at)}: `), c.extension.reason),
    reply && h('div', { class: 'answer', 'data-testid': 'case-reply' },
      h('p', null, h('strong', { 'data-outcome': reply.outcome }, cases.OUTCOMES()[reply.outcome] ?? reply.outcome),
        L(`（${dateTime(reply.at)}）`, ` (${dateTime(reply.at)})`)),
      h('p', null, reply.text),
      reply.basis && h('p', { class: 'small muted' }, L('依据：', 'Basis: '), citation(reply.basis))),
    erasedNote(c),
    goneNote(c),
  ];
}
