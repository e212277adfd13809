// `/request`: ask an agency for government information (依申请公开). What
// the law gives the requester is said before the form: an answer within 20
// working days of receipt, once extended by at most 20 more, with notice
// (政府信息公开条例 第三十三条). The contact is needed to answer, is used for
// nothing else and is erased once the case closes; it is not kept on this
// device. After filing, the request is kept here (cases.js) and shown in 我的咨询.
import { h, problem } from '../ui.js';
import { L } from '../i18n.js';
import * as cases from '../cases.js';
import { allAgencies, agencyName } from '../vocab.js';
import { dateTime } from './parts.js';

const LIMITS = { agency: 64, subject: 200, description: 4000, contact: 200 };

export default async function requestPage(main, ctx) {
  const wanted = ctx.query.get('agency') ?? '';
  const agencies = allAgencies();
  const agency = agencies.length
    ? h('select', { id: 'r-agency', name: 'agency' },
      h('option', { value: '' }, L('请选择受理机关', 'Choose the agency')),
      agencies.map((a) => h('option', { value: a.code, selected: a.code === wanted }, agencyName(a.code))),
      wanted && !agencies.some((a) => a.code === wanted) ? h('option', { value: wanted, selected: true }, wanted) : null)
    : h('input', { id: 'r-agency', name: 'agency', value: wanted, maxlength: LIMITS.agency, autocomplete: 'off' });
  const subject = h('input', { id: 'r-subject', name: 'subject', maxlength: LIMITS.subject, 'aria-describedby': 'r-subject-hint' });
  const description = h('textarea', { id: 'r-description', name: 'description', rows: 6, maxlength: LIMITS.description, 'aria-describedby': 'r-description-count r-description-hint' });
  const count = h('p', { class: 'hint count', id: 'r-description-count', 'data-testid': 'description-count' });
  const contact = h('input', { id: 'r-contact', name: 'contact', maxlength: LIMITS.contact, 'aria-describedby': 'r-contact-hint' });
  const submit = h('button', { type: 'submit', class: 'primary' }, L('提交申请', 'Send the request'));
  const alert = h('p', { class: 'error', role: 'alert' });
  const result = h('div', { class: 'result', role: 'status', 'data-testid': 'request-result' });
  const field = (input, label, ...hints) => h('div', { class: 'field' }, h('label', { for: input.id }, label), input, ...hints);
  const form = h('form', { class: 'stack', 'data-testid': 'disclosure-request', novalidate: true },
    field(agency, L('受理机关', 'Agency')),
    field(subject, L('申请公开的信息', 'The information requested'),
      h('p', { class: 'hint', id: 'r-subject-hint' }, L('一句话说明要哪份信息，如「某项目的中标候选人评审报告」。', 'In a line: which information, e.g. “the evaluation report of project …”.'))),
    field(description, L('具体描述', 'Details'), count,
      h('p', { class: 'hint', id: 'r-description-hint' }, L('尽量写明文件名称、文号、项目编号或时间范围，便于机关查找。', 'Name the document, its number, the project code or the period, so the agency can find it.'))),
    field(contact, L('联系方式（必填）', 'How to reach you (required)'),
      h('p', { class: 'hint', id: 'r-contact-hint' }, L('电话、邮箱或通信地址。只用于答复您的申请，办结后按规定删除，不会公开，也不会保存在这台设备上。',
        'A phone number, e-mail or postal address. Used only to answer your request and erased once it is closed; never published, not kept on this device.'))),
    submit, alert, result);

  const showCount = () => {
    count.textContent = L(`${description.value.length} / ${LIMITS.description} 字`, `${description.value.length} / ${LIMITS.description} characters`);
  };
  description.addEventListener('input', showCount);
  showCount();

  const clear = () => {
    form.querySelectorAll('.field-error').forEach((note) => note.remove());
    for (const input of [agency, subject, description, contact]) {
      input.removeAttribute('aria-invalid');
      const hints = [...input.parentElement.querySelectorAll('.hint')].map((p) => p.id).join(' ');
      if (hints) input.setAttribute('aria-describedby', hints);
      else input.removeAttribute('aria-describedby');
    }
    alert.textContent = '';
  };
  const fail = (input, text) => {
    const note = h('p', { class: 'field-error', id: `${input.id}-error` }, text);
    input.setAttribute('aria-invalid', 'true');
    input.setAttribute('aria-describedby', [note.id, input.getAttribute('aria-describedby')].filter(Boolean).join(' '));
    input.parentElement.append(note);
    alert.textContent = L('没有提交：', 'Not sent: ') + text;
    input.focus();
  };
  const inputs = { agency, subject, description, contact };
  const missing = {
    agency: L('请选择受理机关。', 'Choose the agency.'),
    subject: L('请写明申请公开的信息。', 'Say which information you request.'),
    description: L('请描述所需信息。', 'Describe the information.'),
    contact: L('请留下联系方式，机关需要用它答复您。', 'Leave a contact: the agency needs it to answer you.'),
  };

  form.addEventListener('submit', async (event) => {
    event.preventDefault();
    clear();
    result.replaceChildren();
    const body = Object.fromEntries(Object.entries(inputs).map(([name, input]) => [name, input.value.trim()]));
    const empty = Object.keys(inputs).find((name) => !body[name]);
    if (empty) return fail(inputs[empty], missing[empty]);
    submit.disabled = true;
    try {
      const filed = await cases.file(body);
      form.reset();
      showCount();
      result.replaceChildren(
        h('p', null, L(`已提交，编号 ${filed.id}。答复期限：${dateTime(filed.due)}。`, `Sent as ${filed.id}. To be answered by ${dateTime(filed.due)}.`)),
        h('p', null, L('进度和答复可以在', 'Follow it and read the reply in '), h('a', { href: '/mine' }, L('我的咨询', 'My questions and requests')), L('查看。', '.')));
    } catch (error) {
      const name = error.details?.field;
      if (error.status === 422 && inputs[name]) {
        fail(inputs[name], name === 'agency' ? L('请从列表中选择受理机关。', 'Choose the agency from the list.')
          : L(`请填写 1 至 ${LIMITS[name]} 字。`, `1 to ${LIMITS[name]} characters.`));
      } else if (error.status === 429) {
        alert.textContent = L(`提交太频繁，请 ${error.retryAfter || '稍'} 秒后再试。`, `Too many requests; try again in ${error.retryAfter || 'a few'} s.`);
      } else {
        alert.textContent = L('没有提交：', 'Not sent: ') + problem(error);
      }
    } finally {
      submit.disabled = false;
    }
  });

  main.replaceChildren(
    h('p', { class: 'crumbs' }, h('a', { href: '/mine' }, L('← 我的咨询', '← My questions and requests'))),
    h('h1', { tabindex: -1 }, L('申请政府信息公开', 'Request government information')),
    h('p', { class: 'lead' }, L('没有主动公开的政府信息，可以向掌握它的行政机关申请公开（依申请公开）。',
      'Government information that was not published can be requested from the body that holds it.')),
    h('section', { class: 'notice rules-note', 'aria-labelledby': 'h-limits', 'data-testid': 'request-limits' },
      h('h2', { id: 'h-limits' }, L('多久答复', 'When you get an answer')),
      h('p', null, L('机关收到申请后，能当场答复的当场答复；不能当场答复的，应当自收到申请之日起 20 个工作日内答复。',
        'An agency answers at once where it can; otherwise within 20 working days of receiving the request.')),
      h('p', null, L('需要延长的，须经政府信息公开工作机构负责人同意并告知申请人，延长最多 20 个工作日。征求第三方或其他机关意见的时间不计算在内。',
        'It may extend that once, with its disclosure office head’s approval and notice to you, by at most 20 working days. Time spent consulting third parties or other bodies is not counted.')),
      h('p', { class: 'small muted' }, L('依据：《中华人民共和国政府信息公开条例》第三十三条', 'Basis: Regulations on the Disclosure of Government Information, Art. 33'))),
    form,
  );
}
