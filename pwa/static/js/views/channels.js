// 「其他提醒方式」 on /follows: SMS, e-mail and WeChat for phones that push
// cannot reach. Adding one is two steps (the address, then the 6-digit code it
// received); WeChat's own consent replaces the code. Each channel this device
// added is listed with its state and a one-step 取消.
//
// The forms are drawn once and the list item of each channel is kept and
// updated in place, so a change elsewhere (another tab, a status check) never
// takes away what someone is typing or where the focus is.
import { h, problem } from '../ui.js';
import { L } from '../i18n.js';
import * as channels from '../channels.js';
import * as follows from '../follows.js';

const CODE = /^\d{6}$/;

export const kindName = (kind) => ({ sms: L('短信', 'SMS'), email: L('电子邮件', 'E-mail'), wechat: L('微信', 'WeChat') })[kind] ?? kind;

/** What a channel of this kind sends, once active. */
const WHAT_NEXT = () => ({
  sms: L('短信只提醒重要环节（如公告发布、结果公示）；每天 22:00 至次日 07:00 不发短信，紧急事项除外。',
    'SMS is sent for important stages only (notices, results); none between 22:00 and 07:00 except urgent matters.'),
  email: L('关注的内容每有新进展都会发邮件，每封邮件里都有一键退订链接。',
    'An e-mail for every new step of what you follow; each has a one-click unsubscribe link.'),
  wechat: L('关注的内容有新进展时，会在微信里收到服务通知。', 'A WeChat service message for every new step of what you follow.'),
});

const STATUS = () => ({
  pending: L('待输入验证码', 'Awaiting the code'),
  active: L('已开启', 'On'),
});

/** The section; `ready` resolves once the kinds the server offers are shown. */
export function channelsSection(ctx) {
  const heading = h('h2', { id: 'other-ways', tabindex: -1 }, L('其他提醒方式', 'Other ways to be told'));
  const list = h('ul', { class: 'channels', 'data-testid': 'channel-list' });
  const adding = h('div', { 'data-testid': 'channel-add' });
  const section = h('section', { 'aria-labelledby': 'other-ways', 'data-testid': 'channels' }, heading, list, adding);
  const items = new Map(); // channel id → its list item, updated in place
  const notes = new Map(); // channel id → [text, kind]: the outcome of the last step on it

  const sync = () => {
    const shown = channels.list();
    for (const [id, item] of items) {
      if (!shown.some((c) => c.id === id)) {
        item.remove();
        items.delete(id);
      }
    }
    for (const channel of shown) {
      if (!items.has(channel.id)) {
        items.set(channel.id, channelItem(channel.id));
        list.append(items.get(channel.id));
      }
      items.get(channel.id).update();
    }
  };

  function channelItem(id) {
    const codeInput = h('input', {
      id: `code-${id}`, name: 'code', inputmode: 'numeric', autocomplete: 'one-time-code',
      maxlength: 6, pattern: '[0-9]{6}', 'data-testid': 'channel-code',
    });
    const confirmButton = h('button', { type: 'submit', class: 'primary' }, L('确认', 'Confirm'));
    const codeForm = h('form', { class: 'inline', novalidate: true, onsubmit: (event) => {
      event.preventDefault();
      confirmCode(id, codeInput, confirmButton);
    } },
    h('label', { for: codeInput.id }, L('6 位数字验证码', 'The 6-digit code')), codeInput, confirmButton);
    const what = h('span', { class: 'kind' });
    const hint = h('span', { class: 'address', 'data-testid': 'channel-address' });
    const status = h('span', { class: 'status', 'data-testid': 'channel-status' });
    const topics = h('p', { class: 'hint' });
    const sent = h('p', { class: 'hint', 'data-testid': 'channel-sent' });
    const next = h('p', { class: 'hint' });
    const note = h('p', { id: `code-${id}-message`, 'data-testid': 'channel-message' });
    const cancel = h('button', { type: 'button', class: 'link', 'data-testid': 'channel-cancel', onclick: () => cancelChannel(id, cancel) },
      L('取消', 'Cancel'));
    const item = h('li', { 'data-channel': id }, what, hint, status, cancel, topics, sent, codeForm, next, note);
    item.update = () => {
      const channel = channels.get(id);
      if (!channel) return;
      const pending = channel.status === 'pending';
      item.dataset.kind = channel.kind;
      item.dataset.status = channel.status;
      what.textContent = kindName(channel.kind);
      hint.textContent = channel.address_hint;
      status.textContent = STATUS()[channel.status] ?? L(`已停用（${channel.status}）`, `Stopped (${channel.status})`);
      status.className = `status ${channel.status === 'active' ? 'good' : 'muted'}`;
      cancel.setAttribute('aria-label', `${L('取消', 'Cancel')} ${kindName(channel.kind)} ${channel.address_hint}`.trim());
      topics.textContent = channel.topics.length
        ? L(`提醒添加时关注的 ${channel.topics.length} 项内容。`, `Tells of the ${channel.topics.length} things followed when it was added.`)
        : '';
      sent.hidden = codeForm.hidden = !pending;
      sent.textContent = pending
        ? L(`验证码已发送到 ${channel.address_hint}，请在下面输入。没收到？可以取消后重新添加。`,
          `A code was sent to ${channel.address_hint}; enter it below. Nothing came? Cancel and add it again.`)
        : '';
      next.hidden = channel.status !== 'active';
      next.textContent = WHAT_NEXT()[channel.kind] ?? '';
      const [text, kind] = notes.get(id) ?? ['', ''];
      note.textContent = text;
      note.className = kind;
      note.setAttribute('role', kind === 'error' ? 'alert' : 'status');
      if (kind === 'error' && pending) {
        codeInput.setAttribute('aria-invalid', 'true');
        codeInput.setAttribute('aria-describedby', note.id);
      } else {
        codeInput.removeAttribute('aria-invalid');
        codeInput.removeAttribute('aria-describedby');
      }
    };
    item.focusCode = () => codeInput.focus();
    return item;
  }

  async function confirmCode(id, input, button) {
    const code = input.value.replace(/\s/g, '');
    if (!CODE.test(code)) {
      note(id, L('请输入收到的 6 位数字。', 'Enter the 6 digits you received.'), 'error');
      return input.focus();
    }
    button.disabled = true;
    try {
      await channels.confirm(id, code);
      note(id, L('验证成功，已开启。', 'Confirmed: it is on.'), 'result');
      items.get(id)?.querySelector('[data-testid=channel-cancel]').focus();
    } catch (error) {
      if (error.status === 404) {
        await channels.refresh(id).catch(() => {});
        return announce(L('这个提醒方式已不存在，请重新添加。', 'This channel no longer exists; add it again.'), 'error');
      }
      const text = error.code === 'wrong_code' ? L('验证码不对，请核对后再输入。', 'That code is not right; check it and try again.')
        : error.status === 429 ? L('尝试次数太多。请取消后重新添加，获取新的验证码。', 'Too many tries. Cancel, then add it again for a new code.')
          : error.status === 422 ? L('验证码已失效。请取消后重新添加，获取新的验证码。', 'The code is no longer valid. Cancel, then add it again for a new code.')
            : problem(error);
      note(id, text, 'error');
      input.select();
    } finally {
      button.disabled = false;
    }
  }

  async function cancelChannel(id, button) {
    button.disabled = true;
    try {
      await channels.cancel(id);
      announce(L('已取消，不会再收到这种提醒。', 'Cancelled: no more messages this way.'));
      heading.focus();
    } catch (error) {
      note(id, L('没能取消：', 'Not cancelled: ') + problem(error), 'error');
      button.disabled = false;
    }
  }

  function note(id, text, kind) {
    notes.set(id, [text, kind]);
    items.get(id)?.update();
  }

  // A line for what happened to a channel no longer listed.
  const said = h('p', { role: 'status', 'data-testid': 'channels-said' });
  const announce = (text, kind = 'result') => {
    said.textContent = text;
    said.className = kind;
  };
  section.insertBefore(said, adding);

  function addForm(kind) {
    const id = `channel-${kind}`;
    const input = h('input', kind === 'sms'
      ? { id, name: 'address', type: 'tel', inputmode: 'numeric', autocomplete: 'tel-national', maxlength: 20, 'data-testid': 'channel-address-sms' }
      : { id, name: 'address', type: 'email', autocomplete: 'email', maxlength: 254, 'data-testid': 'channel-address-email' });
    const error = h('p', { class: 'field-error', id: `${id}-error`, hidden: true });
    const button = h('button', { type: 'submit', 'data-testid': `channel-send-${kind}` }, L('发送验证码', 'Send a code'));
    const fail = (text) => {
      error.textContent = text;
      error.hidden = false;
      input.setAttribute('aria-invalid', 'true');
      input.setAttribute('aria-describedby', error.id);
      input.focus();
    };
    const form = h('form', { class: 'inline', novalidate: true, 'data-kind': kind, onsubmit: async (event) => {
      event.preventDefault();
      error.hidden = true;
      input.removeAttribute('aria-invalid');
      input.removeAttribute('aria-describedby');
      if (!input.value.trim()) return fail(kind === 'sms' ? L('请输入手机号码。', 'Enter a mobile number.') : L('请输入邮箱地址。', 'Enter an e-mail address.'));
      button.disabled = true;
      button.textContent = L('正在发送…', 'Sending…');
      try {
        const channel = await channels.add(kind, input.value, follows.list());
        input.value = '';
        announce('');
        items.get(channel?.id)?.focusCode();
      } catch (refusal) {
        fail(addProblem(kind, refusal));
      } finally {
        button.disabled = false;
        button.textContent = L('发送验证码', 'Send a code');
      }
    } },
    h('label', { for: id }, kind === 'sms' ? L('手机号码', 'Mobile number') : L('电子邮箱', 'E-mail address')),
    input, button, error);
    return form;
  }

  const topicsLine = h('p', { class: 'hint', 'data-testid': 'channel-topics' });
  const forms = h('div');
  const wechat = h('div');
  const showTopics = () => {
    const count = follows.list().length;
    topicsLine.textContent = count
      ? L(`新添加的提醒方式会提醒这台设备现在关注的 ${count} 项内容；之后再关注或取消关注，不会改变已添加的提醒方式。`,
        `A channel added now tells you of the ${count} things this device follows now; later changes to your follows do not change it.`)
      : L('先关注项目或类别，再添加提醒方式。', 'Follow a project or a category first, then add a way to be told.');
    forms.hidden = wechat.hidden = !count;
    const link = wechat.querySelector('a');
    if (link) link.href = channels.wechatAuthorizeUrl(follows.list());
  };

  const offer = (kinds) => {
    if (kinds === null) {
      adding.replaceChildren(h('p', { class: 'hint' }, L('连不上本站服务器，暂时不能添加提醒方式。', 'Cannot reach the server; no channel can be added right now.')));
      return;
    }
    if (!kinds.length) {
      adding.replaceChildren(h('p', { class: 'hint', 'data-testid': 'channels-none' }, L('本站暂未开通短信、邮件或微信提醒。', 'This site offers no SMS, e-mail or WeChat messages yet.')));
      return;
    }
    const names = kinds.map(kindName).join(L('、', ', '));
    forms.replaceChildren(...kinds.filter((k) => k !== 'wechat').map(addForm));
    if (kinds.includes('wechat')) {
      wechat.replaceChildren(channels.inWeChat()
        ? h('a', { class: 'button', href: channels.wechatAuthorizeUrl(follows.list()), 'data-testid': 'channel-wechat' }, L('用微信接收提醒', 'Be told in WeChat'))
        : h('p', { class: 'hint', 'data-testid': 'channel-wechat-elsewhere' }, L('微信提醒需要在微信里打开本页：把本页链接发到微信，在微信里打开后再添加。',
          'WeChat messages need this page opened in WeChat: send yourself its link there and add it from WeChat.')));
    }
    adding.replaceChildren(
      h('p', null, L(`收不到推送通知的手机，也可以用${names}接收关注内容的提醒。`, `Phones that push cannot reach can be told by ${names} instead.`)),
      topicsLine,
      kinds.includes('sms') && h('p', { class: 'hint' }, WHAT_NEXT().sms),
      forms, wechat,
    );
    showTopics();
  };

  sync();
  channels.changes.addEventListener('change', sync);
  follows.changes.addEventListener('change', showTopics);
  ctx.onLeave(() => {
    channels.changes.removeEventListener('change', sync);
    follows.changes.removeEventListener('change', showTopics);
  });
  // Back from WeChat's consent, then the server's view of every channel kept here.
  const fromWeChat = channels.namedInAddress();
  const checked = channels.adoptFromAddress().then((adopted) => {
    if (adopted) announce(L('微信提醒已开启。', 'WeChat messages are on.'));
    else if (fromWeChat) announce(L('微信授权没有完成，请再试一次。', 'WeChat did not confirm; try again.'), 'error');
    const others = channels.list().filter((c) => c.id !== adopted?.id); // the adopted one was just read
    return Promise.all(others.map((c) => channels.refresh(c.id).catch(() => {})));
  });
  section.ready = Promise.all([channels.available().then(offer), checked]);
  return section;
}

/** Why an address was not taken, in plain words. */
function addProblem(kind, error) {
  if (error.status === 422 && error.details?.field === 'address') {
    return kind === 'sms'
      ? L('手机号码不对：请输入 11 位中国大陆手机号码。', 'That is not a mobile number: enter an 11-digit mainland China number.')
      : L('邮箱地址不对，请检查后再输入。', 'That is not an e-mail address; check it.');
  }
  if (error.status === 422 && error.details?.field === 'topics') {
    return L('关注的内容有误，请刷新页面后再试。', 'What you follow could not be taken; reload and try again.');
  }
  if (error.status === 422) return L('本站暂不提供这种提醒方式。', 'This site does not offer this way of being told.');
  // Too many requests from this network say how long to wait; too many channels of one address do not.
  if (error.status === 429 && error.retryAfter) {
    return L(`发送太频繁，请 ${error.retryAfter} 秒后再试。`, `Too many codes sent; try again in ${error.retryAfter} s.`);
  }
  if (error.status === 429) {
    return L('这个地址已经添加过多次提醒，请先取消其中一个再添加。', 'This address has too many channels already; cancel one first.');
  }
  return problem(error);
}
