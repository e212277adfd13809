// Language: Chinese by default, English on request, remembered on this device.
// Texts sit next to the code that shows them, both languages side by side
// (L('项目', 'Projects')), so nobody has to chase keys across files.

const KEY = 'sunbid.lang';
let lang = localStorage.getItem(KEY) === 'en' ? 'en' : 'zh';

export const current = () => lang;
export const locale = () => (lang === 'zh' ? 'zh-CN' : 'en');

/** The text in the current language. */
export const L = (zh, en) => (lang === 'zh' ? zh : en);

/** A {zh, en} name from the API, in the current language (Chinese when English is missing). */
export const pick = (name) => (name ? (lang === 'en' && name.en) || name.zh || '' : '');

/** Switch; the caller sets <html lang> once the page is shown in the new language. */
export function setLang(next) {
  lang = next === 'en' ? 'en' : 'zh';
  localStorage.setItem(KEY, lang);
}

document.documentElement.lang = locale();
