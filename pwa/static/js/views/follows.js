// `/follows`: what this device follows, and the notification settings:
// push, and the other ways to be told (views/channels.js).
import { h } from '../ui.js';
import { L } from '../i18n.js';
import * as db from '../db.js';
import * as follows from '../follows.js';
import * as push from '../push.js';
import { textSizeControl } from '../textsize.js';
import { allCategories, categoryName } from '../vocab.js';
import { describeTopic, pushControl } from './parts.js';
import { channelsSection } from './channels.js';

export default async function followsPage(main, ctx) {
  const list = h('ul', { class: 'follows', 'data-testid': 'follows' });
  const heading = h('h1', { tabindex: -1 }, L('我的关注', 'Following'));
  const channels = channelsSection(ctx);
  const category = h('select', { id: 'add-category', name: 'category' },
    allCategories().map((c) => h('option', { value: c.code }, categoryName(c.code))));

  main.replaceChildren(
    heading,
    h('p', { class: 'lead' }, L('关注的内容有新进展时，打开的页面会立即更新；开启通知后，应用关闭时也会提醒。关注只保存在这台设备上，不需要注册。',
      'Pages update at once when something you follow moves on; with notifications on, you hear of it even with the app closed. Follows stay on this device; no account needed.')),
    h('section', { 'aria-labelledby': 'h-following' },
      h('h2', { id: 'h-following' }, L('正在关注', 'You follow')),
      list,
      h('form', { class: 'inline', onsubmit: (e) => {
        e.preventDefault();
        follows.set(`category:${category.value}`, true);
      } },
      h('label', { for: 'add-category' }, L('关注一个类别', 'Follow a category')), category,
      h('button', { type: 'submit' }, L('关注', 'Follow')))),
    h('section', { 'aria-labelledby': 'h-push' },
      h('h2', { id: 'h-push' }, L('通知', 'Notifications')),
      pushControl()),
    channels,
    h('section', { 'aria-labelledby': 'h-display' },
      h('h2', { id: 'h-display' }, L('显示', 'Display')),
      textSizeControl()),
  );

  async function fill() {
    const topics = follows.list();
    if (!topics.length) {
      list.replaceChildren(h('li', { class: 'none' }, L('还没有关注任何内容。在项目页点「关注此项目」，或在上方选择类别。',
        'Nothing yet. Tap “Follow this project” on a project page, or pick a category below.')));
      return;
    }
    // Project titles come from the copies kept of visited projects.
    const kept = await Promise.all(topics.map((t) => (t.startsWith('project:') ? db.get(t) : null)));
    await push.loaded;
    if (ctx.signal.aborted) return;
    // Which follows reach this phone as notifications: what the server accepted, as the switch reads it.
    const notified = new Set(push.acceptedTopics());
    list.replaceChildren(...topics.map((topic, i) => {
      const [kind, value, href] = describeTopic(topic);
      const title = kept[i]?.data?.title;
      return h('li', { 'data-topic': topic },
        h('span', { class: 'kind' }, kind),
        h('a', { href }, title ? `${title}（${value}）` : value),
        push.enabled() && h('span', { class: 'notified small', 'data-testid': 'notified' },
          notified.has(topic) ? L('会收到通知', 'Notified') : L('通知尚未登记', 'Not yet registered for notifications')),
        h('button', { type: 'button', class: 'link', 'aria-label': `${L('取消关注', 'Unfollow')} ${title || value}`, onclick: () => {
          follows.set(topic, false);
          heading.focus();
        } }, L('取消关注', 'Unfollow')));
    }));
  }

  const onChange = () => fill();
  follows.changes.addEventListener('change', onChange);
  push.changes.addEventListener('change', onChange);
  ctx.onLeave(() => {
    follows.changes.removeEventListener('change', onChange);
    push.changes.removeEventListener('change', onChange);
  });
  await Promise.all([fill(), channels.ready]);
}
