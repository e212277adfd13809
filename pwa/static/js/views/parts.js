// Pieces several pages show: follow toggles, topic names, the notification switch.
import { h } from '../ui.js';
import { L } from '../i18n.js';
import { categoryName, agencyName, regionName } from '../vocab.js';
import * as follows from '../follows.js';

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

// The notification switch lives in its own module.
export { pushControl } from './pushswitch.js';
