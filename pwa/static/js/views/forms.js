// What every form of the staff console shares: a labelled field, and errors
// shown next to the field they concern (tied to it for screen readers) and
// in the form's alert, in plain words.
import { h } from '../ui.js';
import { L } from '../i18n.js';
import { stageName } from '../vocab.js';
import * as staff from '../staff.js';

export function field(id, label, control, hint) {
  return h('div', { class: 'field' }, h('label', { for: id }, label), control,
    hint && h('p', { class: 'hint', id: `${id}-hint` }, hint));
}

/** Beside the 依法必须招标 choice: what the law counts (rules.toml's must_tender), and why it matters. */
export function mustTenderHint(law) {
  const rules = L('只有注明「是」的项目适用仅约束依法必须招标项目的法定时限。',
    'Only projects marked “yes” are held to the limits that bind tenders required by law.');
  if (!law?.thresholds?.length) return rules;
  const wan = (amount) => `${(amount / 10_000).toLocaleString('zh-CN')} 万元`;
  const yuan = (amount) => `${amount.toLocaleString('en')} yuan`;
  return [L(`${law.basis}：规定范围内的项目，单项合同估算价达到 ${law.thresholds.map((t) => `${t.zh} ${wan(t.amount)}`).join('、')} 以上的，必须招标。`,
    `${law.basis_en}: a project in its scope must be tendered from an estimated contract value of ${law.thresholds.map((t) => `${yuan(t.amount)} (${t.en.toLowerCase()})`).join(', ')}. `), rules];
}

export function clearErrors(form) {
  form.querySelectorAll('.field-error').forEach((note) => note.remove());
  for (const input of form.querySelectorAll('[aria-invalid]')) {
    input.removeAttribute('aria-invalid');
    const hint = form.querySelector(`#${input.id}-hint`);
    if (hint) input.setAttribute('aria-describedby', hint.id);
    else input.removeAttribute('aria-describedby');
  }
  form.querySelector('[role=alert]').textContent = '';
}

/** The message next to the field, tied to it for screen readers, and the field focused. */
export function markField(form, input, text) {
  const note = h('p', { class: 'field-error', id: `${input.id}-error` }, text);
  input.setAttribute('aria-invalid', 'true');
  input.setAttribute('aria-describedby', note.id);
  input.closest('.field').append(note);
  form.querySelector('[role=alert]').textContent = L('未能提交：', 'Not submitted: ') + text;
  input.focus();
}

/** An API refusal: next to the field `details.field` names when the form has it, else in the alert. */
export function showError(form, error) {
  const { field: name, text } = staff.explain(error, (codes) => codes.map(stageName).join('、'));
  const input = name && form.elements.namedItem(name);
  if (input?.id) markField(form, input, text);
  else form.querySelector('[role=alert]').textContent = L('未能提交：', 'Not submitted: ') + text;
}

/**
 * A picker of the directory's agencies or regions, by name. A code the
 * directory does not list (kept from before, or typed by an administrator on
 * another device) stays selectable, shown as it is. Without a directory
 * (offline on first use) the person types the code.
 */
export function placePicker(id, name, places, nameOf, value, empty) {
  if (!places.length) return h('input', { id, name, value, maxlength: 64, autocomplete: 'off' });
  const known = places.some((p) => p.code === value);
  return h('select', { id, name },
    h('option', { value: '' }, empty),
    places.map((p) => h('option', { value: p.code, selected: p.code === value }, nameOf(p.code))),
    value && !known ? h('option', { value, selected: true }, value) : null);
}
