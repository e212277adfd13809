// Pieces several pages show: follow toggles, topic names, the notification switch.
import { h, problem } from '../ui.js';
import { L } from '../i18n.js';
import { categoryName, agencyName, regionName } from '../vocab.js';
import * as follows from '../follows.js';
import * as push from '../push.js';

/** [kind, value, href] of a topic, for people. */
export function describeTopic(topic) {
  const [kind, value] = topic.split(/:(.*)/s);
  switch (kind) {
    case 'project': return [L('项目', 'Project'), value, `/p/${encodeURIComponent(value)}`];
    case 'category': return [L('类别', 'Category'), categoryName(value), `/?category=${value}`];
    case 'agency': return [L('机构', 'Agency'), agencyName(value), `/?agency=${encodeURIComponent(value)}`];
    case 'region': return [L('地区', 'Region'), regionName(value), `/?region=${encodeURIComponent(value)}`];
    default: return [L('全部', 'Everything'), '', '/'];
  }
}

/**
 * A toggle button following `topic`. Its name stays the same and `aria-pressed`
 * carries the state, as screen readers expect of a toggle; the look shows it too.
 */
export function followToggle(topic, label, attrs = {}) {
  const button = h('button', { type: 'button', class: 'toggle', ...attrs }, label);
  const update = () => {
    if (!button.isConnected && button.dataset.shown) return follows.changes.removeEventListener('change', update);
    button.setAttribute('aria-pressed', String(follows.has(topic)));
  };
  button.addEventListener('click', () => follows.set(topic, !follows.has(topic)));
  follows.changes.addEventListener('change', update);
  update();
  button.dataset.shown = '1';
  return button;
}

/**
 * The notification switch and what to say around it. `before` runs inside the
 * click, before the permission prompt (e.g. follow the project on screen).
 */
export function pushControl({ before } = {}) {
  const box = h('div', { class: 'push' });
  const render = (message) => {
    const support = push.support();
    const on = push.enabled();
    const parts = [];
    if (support === 'ios-install') {
      parts.push(h('p', { class: 'hint', 'data-testid': 'ios-hint' },
        L('在 iPhone/iPad 上，需先把本站「添加到主屏幕」（Safari 底部的分享按钮 → 添加到主屏幕），再从主屏幕打开，才能接收通知。',
          'On iPhone and iPad, notifications need the app on the Home Screen first: Share → Add to Home Screen, then open it from there.')));
    } else if (support === 'unsupported') {
      parts.push(h('p', { class: 'hint' }, L('这个浏览器不支持通知；打开本页时仍会实时更新。', 'This browser cannot show notifications; open pages still update live.')));
    } else if (support === 'denied') {
      parts.push(h('p', { class: 'hint' }, L('通知已被拒绝。如需开启，请在浏览器的网站设置里允许本站通知。', 'Notifications are blocked. Allow them for this site in the browser settings.')));
    } else {
      parts.push(
        h('button', { type: 'button', 'data-testid': 'enable-push', 'aria-pressed': String(on), class: 'toggle', onclick: click },
          L('接收推送通知', 'Push notifications')),
        h('p', { class: 'hint' }, on
          ? L('已开启：关注的内容有新进展时，手机会收到通知。', 'On: you get a notification when something you follow moves on.')
          : L('开启后，关注的内容有新进展时，即使没打开本应用也会收到通知。', 'Turn on to be notified of what you follow, even with the app closed.')),
      );
    }
    if (message) parts.push(h('p', { class: 'error', role: 'alert' }, message));
    box.replaceChildren(...parts);
  };
  async function click() {
    const turningOn = !push.enabled();
    try {
      if (turningOn) {
        before?.();
        await push.enable();
      } else {
        await push.disable();
      }
      render();
    } catch (error) {
      render(error.message === 'denied' || error.message === 'default'
        ? L('没有得到通知权限。', 'Permission to notify was not given.')
        : error.status === 422
          ? L('本站不接受这个浏览器的推送服务。', 'This site does not accept this browser’s push service.')
          : problem(error));
    }
    box.querySelector('button')?.focus();
  }
  render();
  return box;
}
