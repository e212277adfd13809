// The staff console's amend form: change a registered project's title, budget,
// currency, region or 依法必须招标 with a reason on record. The server appends an
// `amended` event (PATCH /api/projects/{id}); the project page shows it in the
// timeline, so only what was changed is sent, and never without a reason.
import { h, exactMoney } from '../ui.js';
import { L } from '../i18n.js';
import { request } from '../api.js';
import { regionName, allRegions } from '../vocab.js';
import { field, placePicker, clearErrors, markField, showError, mustTenderHint } from './forms.js';

/**
 * {section, setProjects}: the form, and how the console tells it which
 * projects may be amended (those listed for the agency). `amended(project)`
 * gets the project as the server answers after a change.
 */
export function amendForm(token, amended, mustTenderLaw) {
  let projects = [];
  let current = null; // the chosen project as last read from the server
  let choosing = 0; // answers for an earlier choice are dropped
  let unsure = false; // the last attempt got no answer: it may have been made
  const touched = new Set(); // fields the person edited since choosing: the server's answer keeps them

  const projectSelect = h('select', { id: 'm-project', name: 'project' });
  const regionPicker = placePicker('m-region', 'region', allRegions(), regionName, '', L('不注明', 'Not stated'));
  const mustTender = h('select', { id: 'm-must_tender', name: 'must_tender' });
  const result = h('p', { class: 'result', role: 'status', 'data-testid': 'amend-result' });
  const form = h('form', { class: 'stack', 'data-testid': 'amend-project', novalidate: true },
    field('m-project', L('项目', 'Project'), projectSelect),
    field('m-title', L('项目名称', 'Title'), h('input', { id: 'm-title', name: 'title', maxlength: 200 })),
    field('m-budget', L('预算（可选）', 'Budget (optional)'), h('input', { id: 'm-budget', name: 'budget', type: 'number', min: 0, step: 'any', inputmode: 'decimal' })),
    field('m-currency', L('币种', 'Currency'), h('input', { id: 'm-currency', name: 'currency', maxlength: 3, autocapitalize: 'characters', spellcheck: 'false', placeholder: 'CNY' }),
      L('三位字母的币种代码，人民币为 CNY。', 'A three-letter currency code; CNY for yuan.')),
    field('m-region', L('地区（可选）', 'Region (optional)'), regionPicker),
    field('m-must_tender', L('依法必须招标', 'Tender required by law'), mustTender, mustTenderHint(mustTenderLaw)),
    field('m-reason', L('变更原因（必填）', 'Reason for the change (required)'), h('textarea', { id: 'm-reason', name: 'reason', rows: 3, maxlength: 500 }),
      L('会与变更一起公开，显示在项目的全过程记录里。', 'Published with the change, in the project’s timeline.')),
    h('button', { type: 'submit', class: 'primary' }, L('提交变更', 'Save the change')),
    h('p', { class: 'error', role: 'alert' }),
    result);
  projectSelect.addEventListener('change', () => choose(projectSelect.value));
  form.addEventListener('input', (event) => event.target !== projectSelect && touched.add(event.target.name));
  form.addEventListener('submit', submit);
  choose('');

  return {
    section: h('section', { 'aria-labelledby': 'h-amend' },
      h('h2', { id: 'h-amend' }, L('变更项目信息', 'Amend a project')),
      h('p', { class: 'small muted' }, L('每次变更都会作为一条「项目信息变更」公开，原信息保留在记录里。',
        'Each change is published as “Project details amended”; what it replaces stays on record.')),
      form),
    setProjects(list) {
      projects = list;
      const chosen = projectSelect.value;
      projectSelect.replaceChildren(h('option', { value: '' }, L('请选择项目', 'Choose a project')),
        ...projects.map((p) => h('option', { value: p.id }, `${p.id} · ${p.title}`)));
      projectSelect.value = projects.some((p) => p.id === chosen) ? chosen : '';
      if (projectSelect.value !== chosen) choose(projectSelect.value);
    },
  };

  /** Fill the form with the project as it is now: the listed copy at once, the server's when it answers. */
  async function choose(id) {
    const mine = ++choosing;
    unsure = false;
    touched.clear();
    clearErrors(form);
    result.textContent = '';
    fill(projects.find((p) => p.id === id) ?? null);
    if (!id) return;
    try {
      const { data } = await request('GET', `/api/projects/${encodeURIComponent(id)}`);
      if (mine === choosing) fill(data);
    } catch (error) {
      if (mine === choosing) showError(form, error);
    }
  }

  /** The project as it is now into the form; what the person already typed stays. */
  function fill(project) {
    current = project;
    const els = form.elements;
    for (const name of ['title', 'budget', 'currency', 'region', 'must_tender', 'reason']) els[name].disabled = !project;
    const put = (name, value) => touched.has(name) || (els[name].value = value ?? '');
    put('title', project?.title);
    put('budget', project?.budget);
    put('currency', project?.currency);
    if (!touched.has('region')) setPlace(regionPicker, project?.region);
    put('reason', '');
    if (touched.has('must_tender')) return;
    // 未注明 only while the project has no answer: the law's question is yes or no.
    const unset = project?.must_tender == null;
    mustTender.replaceChildren(
      ...(unset ? [h('option', { value: '' }, L('未注明', 'Not stated'))] : []),
      h('option', { value: 'true' }, L('是', 'Yes')),
      h('option', { value: 'false' }, L('否', 'No')));
    mustTender.value = unset ? '' : String(project.must_tender);
  }

  /** A region the directory does not list stays shown, as its code. */
  function setPlace(picker, code) {
    if (code && picker.tagName === 'SELECT' && ![...picker.options].some((o) => o.value === code)) picker.append(h('option', { value: code }, code));
    picker.value = code ?? '';
  }

  /** The fields that differ from the project as it is now, as the API takes them. */
  function changes() {
    const els = form.elements;
    const now = {
      title: els.title.value.trim(),
      budget: els.budget.value === '' ? null : Number(els.budget.value),
      currency: els.currency.value.trim().toUpperCase(),
      region: els.region.value.trim() || null,
      must_tender: mustTender.value === '' ? null : mustTender.value === 'true',
    };
    return Object.fromEntries(Object.entries(now).filter(([key, value]) => value !== (current[key] ?? null)));
  }

  async function submit(event) {
    event.preventDefault();
    clearErrors(form);
    result.textContent = '';
    const els = form.elements;
    if (!current) return markField(form, projectSelect, L('请先选择项目。', 'Choose a project first.'));
    if (els.budget.validity.badInput) return markField(form, els.budget, L('预算请填写数字。', 'The budget must be a number.'));
    const button = form.querySelector('button[type=submit]');
    if (unsure && !(await reread(button))) return;
    const body = changes();
    if (!Object.keys(body).length) return markField(form, els.title, L('没有任何改动：请先修改至少一项。', 'Nothing has changed: change at least one field first.'));
    const reason = els.reason.value.trim();
    if (!reason) return markField(form, els.reason, L('请填写变更原因。', 'Give the reason for the change.'));
    body.reason = reason;
    button.disabled = true;
    result.textContent = L('正在提交…', 'Saving…');
    try {
      const id = current.id;
      const { data: project } = await request('PATCH', `/api/projects/${encodeURIComponent(id)}`, { body, token });
      result.replaceChildren(L(`已变更项目 ${project.id}：${said(body)}。`, `Amended ${project.id}: ${said(body)}. `),
        h('a', { href: `/p/${encodeURIComponent(project.id)}` }, L('查看', 'View')));
      unsure = false;
      touched.clear();
      fill(project);
      amended(project);
    } catch (error) {
      result.textContent = '';
      unsure = error.status === 0;
      showError(form, error);
    } finally {
      button.disabled = false;
    }
  }

  /**
   * After an attempt that got no answer: the project as the server has it now.
   * When it already carries what the form says, that attempt was made: said so,
   * and not sent again. False when nothing more is to be done.
   */
  async function reread(button) {
    button.disabled = true;
    try {
      const { data } = await request('GET', `/api/projects/${encodeURIComponent(current.id)}`);
      current = data;
    } catch (error) {
      showError(form, error);
      return false;
    } finally {
      button.disabled = false;
    }
    unsure = false;
    if (!Object.keys(changes()).length) {
      touched.clear();
      fill(current);
      result.replaceChildren(L(`这次变更此前已经保存（项目 ${current.id}），没有重复提交。`, `This change was already saved (${current.id}); not sent twice. `),
        h('a', { href: `/p/${encodeURIComponent(current.id)}` }, L('查看', 'View')));
      amended(current);
      return false;
    }
    return true; // what differs still: sent, the person's entries as typed
  }

  /** The changes sent, in words, for the confirmation. */
  function said(body) {
    const words = {
      title: () => `${L('项目名称', 'title')} → ${body.title}`,
      budget: () => `${L('预算', 'budget')} → ${body.budget == null ? '—' : exactMoney(body.budget, body.currency ?? current.currency ?? 'CNY')}`,
      currency: () => `${L('币种', 'currency')} → ${body.currency}`,
      region: () => `${L('地区', 'region')} → ${body.region == null ? '—' : regionName(body.region)}`,
      must_tender: () => `${L('依法必须招标', 'tender required by law')} → ${body.must_tender ? L('是', 'yes') : L('否', 'no')}`,
    };
    return Object.keys(body).filter((key) => words[key]).map((key) => words[key]()).join(L('；', '; '));
  }
}
