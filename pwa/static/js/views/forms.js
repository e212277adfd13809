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
