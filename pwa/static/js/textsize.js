// Large-text mode (适老化): text about 1.3× larger on every page, remembered on
// this device. Everything is sized in rem or em, so one class on <html> is
// enough; the layout is kept by the "Large text" section of app.css.
import { h } from './ui.js';
import { L } from './i18n.js';

const KEY = 'sunbid.text';
export const isLarge = () => localStorage.getItem(KEY) === 'large';

function apply() {
  document.documentElement.classList.toggle('large-text', isLarge());
}

export function setLarge(on) {
  if (on) localStorage.setItem(KEY, 'large');
  else localStorage.removeItem(KEY);
  apply();
}

/** The toggle 「大字模式」, for the settings on /follows. */
export function textSizeControl() {
  const button = h('button', { type: 'button', class: 'toggle', 'data-testid': 'large-text', 'aria-pressed': String(isLarge()) },
    L('大字模式', 'Large text'));
  button.addEventListener('click', () => {
    setLarge(!isLarge());
    button.setAttribute('aria-pressed', String(isLarge()));
  });
  return h('div', { class: 'text-size' }, button,
    h('p', { class: 'hint' }, L('把所有页面的文字放大约三分之一，方便阅读。只在这台设备上生效。', 'Makes the text on every page about a third larger. Applies to this device only.')));
}

// Another tab changed it.
addEventListener('storage', (event) => event.key === KEY && apply());
apply();
