// The notification switch 「接收推送通知」, wherever it appears (project pages,
// /follows). It reads "on" only when the server accepted this device's
// subscription (push.js keeps that one record), shows each step while turning
// on, ignores taps meanwhile, and ends on or off with one plain sentence:
// never "on" and an error at once, never a spinner without end. Where push
// cannot reach this browser at all, it points to the other ways to be told
// (SMS, WeChat, e-mail) that the server offers.
import { h } from '../ui.js';
import { L } from '../i18n.js';
import * as channels from '../channels.js';
import * as push from '../push.js';

// Why push cannot reach this browser, as opposed to a step that may work next time.
const NO_PUSH_HERE = new Set(['ios-install', 'no-worker', 'unsupported', 'push-service', 'push-service-timeout', 'refused-service']);
// The order they are suggested in: SMS and WeChat reach the phones push cannot.
const SUGGESTED = ['sms', 'wechat', 'email'];

const STEPS = () => ({
  permission: L('正在请求通知权限：请在浏览器弹出的询问中选择「允许」…', 'Asking for permission: choose “Allow” in the browser’s prompt…'),
  worker: L('正在准备后台程序…', 'Preparing the background worker…'),
  subscribing: L('正在向浏览器的推送服务登记…', 'Registering with the browser’s push service…'),
  registering: L('正在告诉本站要通知哪些内容…', 'Telling the site what to notify you of…'),
  leaving: L('正在关闭…', 'Turning off…'),
});

/** Why it did not turn on, in plain words; `limit` is how long a step may take, in seconds. */
export function explain(reason, limit = push.STEP_WITHIN / 1000) {
  const texts = {
    'ios-install': L('在 iPhone/iPad 上，需先把本站「添加到主屏幕」（Safari 底部的分享按钮 → 添加到主屏幕），再从主屏幕打开，才能接收通知。',
      'On iPhone and iPad, notifications need the app on the Home Screen first: Share → Add to Home Screen, then open it from there.'),
    insecure: L('这个地址不是 https 加密连接，浏览器不允许在这里接收推送通知。', 'This address is not https: browsers allow push notifications only over a secure connection.'),
    'no-worker': L('这个浏览器（或当前的无痕/隐私模式）不能运行后台程序，所以在这里收不到推送通知；打开本页时仍会实时更新。',
      'This browser (or its private mode) cannot run a background worker here, so it cannot receive push; open pages still update live.'),
    unsupported: L('这个浏览器不支持推送通知；打开本页时仍会实时更新。', 'This browser cannot receive push notifications; open pages still update live.'),
    denied: L('通知已被拒绝。如需开启，请在浏览器的网站设置里允许本站通知，再点一次。', 'Notifications are blocked. Allow them for this site in the browser settings, then tap again.'),
    dismissed: L('没有得到通知权限（询问被关闭了）。想开启时再点一次。', 'Permission was not given (the prompt was closed). Tap again when you want it.'),
    'permission-timeout': L('等了很久也没有收到对通知权限询问的回答，已停止。想开启时再点一次。', 'No answer to the permission prompt came; stopped. Tap again when you want it.'),
    'nothing-followed': L('还没有关注任何内容：先关注项目或类别，再开启通知。', 'You follow nothing yet: follow a project or a category first, then turn notifications on.'),
    'worker-timeout': L(`后台程序 ${limit} 秒内没有准备好，这个浏览器在这里可能收不到推送。请刷新页面后再试。`,
      `The background worker was not ready within ${limit} s; this browser may not receive push here. Reload and try again.`),
    'push-service': L('这台设备连不上浏览器的推送服务，收不到推送通知（部分手机或浏览器没有可用的推送服务）。打开本页时仍会实时更新。',
      'This device cannot reach its browser’s push service, so it cannot receive push (some phones and browsers have none). Open pages still update live.'),
    'push-service-timeout': L(`浏览器的推送服务 ${limit} 秒内没有回应，这台设备可能连不上它。请稍后再试，或换一个浏览器。`,
      `The browser’s push service did not answer within ${limit} s; this device may not reach it. Try later or in another browser.`),
    network: L('连不上本站服务器，通知没有开启。请检查网络后再试。', 'Cannot reach the server; notifications are not on. Check the network and try again.'),
    'server-timeout': L(`本站服务器 ${limit} 秒内没有回应，通知没有开启。请稍后再试。`, `The server did not answer within ${limit} s; notifications are not on. Try again later.`),
    'server-off': L('本站暂时不能发送推送通知，通知没有开启。打开本页时仍会实时更新。', 'This site cannot send push notifications right now; they are not on. Open pages still update live.'),
    'service-unresolved': L('本站暂时连不上这个浏览器的推送服务，通知没有开启。请稍后再试。', 'The site cannot reach this browser’s push service right now; notifications are not on. Try again later.'),
    'too-many': L('操作太频繁，通知没有开启。请稍后再试。', 'Too many attempts; notifications are not on. Try again later.'),
    'refused-service': L('本站不接受这个浏览器的推送服务，通知没有开启。可以换一个浏览器试试。', 'This site does not accept this browser’s push service; notifications are not on. Another browser may work.'),
    'server-refused': L('本站服务器拒绝了登记，通知没有开启。请稍后再试。', 'The server refused the registration; notifications are not on. Try again later.'),
  };
  return texts[reason] ?? L('出了点问题，通知没有开启。请稍后再试。', 'Something went wrong; notifications are not on. Try again later.');
}

/**
 * 「也可以改用短信或微信接收提醒」 with a link to them on /follows, once the
 * server said which it offers (asked only here, where push failed); nothing without any.
 */
function otherWays() {
  const line = h('p', { class: 'hint', 'data-testid': 'push-alternative', hidden: true });
  channels.available().then((kinds) => {
    const names = SUGGESTED.filter((kind) => kinds?.includes(kind))
      .map((kind) => ({ sms: L('短信', 'SMS'), wechat: L('微信', 'WeChat'), email: L('电子邮件', 'e-mail') })[kind]);
    if (!names.length) return;
    const joined = names.length > 1 ? `${names.slice(0, -1).join(L('、', ', '))}${L('或', ' or ')}${names.at(-1)}` : names[0];
    line.replaceChildren(L(`收不到推送的话，可以改用${joined}接收提醒：`, `Without push, you can be told by ${joined} instead: `),
      h('a', { href: '/follows#other-ways' }, L('设置其他提醒方式', 'other ways to be told')));
    line.hidden = false;
  });
  return line;
}

/**
 * The switch and what to say around it. `before` runs inside the click,
 * before the permission prompt (e.g. follow the project on screen).
 */
export function pushControl({ before } = {}) {
  const box = h('div', { class: 'push', 'data-testid': 'push' });
  let working = null; // the step under way, or null
  let message = null; // [text, kind, reason]: the outcome of the last tap

  const render = () => {
    const support = push.support();
    const on = push.enabled();
    const parts = [];
    if (support !== 'ok' && support !== 'denied') {
      // Nothing to tap: the browser cannot do it here.
      parts.push(h('p', { class: 'hint', 'data-testid': support === 'ios-install' ? 'ios-hint' : 'push-unavailable' }, explain(support)));
      if (NO_PUSH_HERE.has(support)) parts.push(otherWays());
    } else {
      parts.push(
        h('button', {
          type: 'button', 'data-testid': 'enable-push', class: 'toggle',
          'aria-pressed': String(on), 'aria-busy': working ? 'true' : null,
          'aria-describedby': 'push-state', onclick: click,
        }, L('接收推送通知', 'Push notifications')),
        h('p', { class: `hint${working ? ' working' : ''}`, id: 'push-state', role: 'status', 'data-testid': 'push-state' },
          working ? STEPS()[working]
            : on ? L('已开启：关注的内容有新进展时，手机会收到通知。', 'On: you get a notification when something you follow moves on.')
              : support === 'denied' ? explain('denied')
                : L('未开启。开启后，关注的内容有新进展时，即使没打开本应用也会收到通知。', 'Off. Turn on to be notified of what you follow, even with the app closed.')),
      );
    }
    if (message && !working) {
      parts.push(h('p', { class: message[1], role: message[1] === 'error' ? 'alert' : null, 'data-testid': 'push-message' }, message[0]));
      if (NO_PUSH_HERE.has(message[2])) parts.push(otherWays());
    }
    box.replaceChildren(...parts);
  };

  async function click() {
    if (working || push.isBusy()) return; // a second tap during progress does nothing
    const turningOn = !push.enabled();
    message = null;
    working = turningOn ? 'permission' : 'leaving';
    render();
    try {
      if (turningOn) {
        before?.();
        await push.enable((step) => {
          working = step;
          render();
        });
      } else {
        await push.disable();
      }
    } catch (error) {
      // Blocked: the line under the switch says so already.
      message = error?.reason === 'denied' && push.support() === 'denied' ? null : [explain(error?.reason), 'error', error?.reason];
    }
    working = null;
    render();
    box.querySelector('button')?.focus();
  }

  const onChange = () => {
    if (!box.isConnected && box.dataset.shown) return push.changes.removeEventListener('change', onChange);
    if (!working) render();
  };
  push.changes.addEventListener('change', onChange);
  render();
  box.dataset.shown = '1';
  // The record kept on this device may arrive after the first render.
  push.loaded.then(onChange);
  return box;
}
