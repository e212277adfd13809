// The staff console's publish form, in two steps: 「预览」 asks the server what
// the publication would be (POST …/events?dry_run=1: the event as it would be
// published and the statutory warnings it would raise, nothing appended), and
// 「确认发布」 publishes exactly that. The log cannot be changed afterwards,
// so every refusal (a missing fact, a contradiction with the record) comes
// before publishing, next to the field it concerns or as one clear message.
// One message at a time: each new attempt clears what the last one said.
import { h, when, dueTime, problem } from '../ui.js';
import { L, pick } from '../i18n.js';
import { request } from '../api.js';
import { lifecycle, nextStage } from '../vocab.js';
import * as staff from '../staff.js';
import { field, clearErrors, markField, showError } from './forms.js';
import { citation } from './parts.js';

/**
 * {form, setProjects(projects, chosen)}. `vocabulary` is GET /api/categories
 * (its per-category stage names, `fields` and `required`); `rules` the catalog's
 * time-limit rules (the fields a server without `fields` still needs).
 */
export function publishForm({ token, rules, vocabulary }) {
  let projects = [];
  let detail = null; // the chosen project, with its timeline once the server answers
  let pending = null; // {id, body, key}: what the preview showed, to publish on confirm

  const projectSelect = h('select', { id: 'p-project', name: 'project' });
  const stageSelect = h('select', { id: 'p-stage', name: 'stage' });
  const dataFields = h('div', { class: 'data-fields' });
  const alert = h('p', { class: 'error', role: 'alert' });
  const result = h('p', { class: 'result', role: 'status', 'data-testid': 'publish-result' });
  const preview = h('section', { class: 'preview', 'data-testid': 'publish-preview', 'aria-labelledby': 'h-preview', hidden: true });
  const submit = h('button', { type: 'submit', class: 'primary' }, L('预览', 'Preview'));
  const form = h('form', { class: 'stack', 'data-testid': 'publish', novalidate: true },
    field('p-project', L('项目', 'Project'), projectSelect),
    field('p-stage', L('阶段', 'Stage'), stageSelect),
    field('p-title', L('标题', 'Title'), h('input', { id: 'p-title', name: 'title', maxlength: 200, placeholder: L('如：某某工程招标公告', 'e.g. Tender notice for …') })),
    field('p-body', L('正文（可选）', 'Text (optional)'), h('textarea', { id: 'p-body', name: 'body', rows: 5, maxlength: 20000 })),
    dataFields,
    field('p-occurred', L('发生时间（可选，北京时间；不填即为发布时间）', 'Occurred at (optional, Beijing time; default: now)'),
      h('input', { id: 'p-occurred', name: 'occurred_at', type: 'datetime-local' })),
    h('p', { class: 'hint' }, L('先预览：发布前会显示公开后的样子和可能违反的法定时限，确认后才正式发布。已发布的信息不能撤回，只能更正。',
      'Preview first: you see the publication and any statutory period it would breach, and publish only after confirming. Published items cannot be withdrawn, only corrected.')),
    submit, alert, result, preview);

  // Anything changed after a preview: that preview no longer says what would be published.
  form.addEventListener('input', () => {
    if (pending) closePreview();
  });
  projectSelect.addEventListener('change', () => choose(projectSelect.value));
  stageSelect.addEventListener('change', () => {
    if (pending) closePreview();
    showDataFields();
  });
  form.addEventListener('submit', askPreview);

  return {
    form,
    setProjects(list) {
      projects = list;
      const chosen = projectSelect.value;
      projectSelect.replaceChildren(h('option', { value: '' }, L('请选择项目', 'Choose a project')),
        ...projects.map((p) => h('option', { value: p.id }, `${p.title}（${p.id}）`)));
      projectSelect.value = projects.some((p) => p.id === chosen) ? chosen : '';
      if (projectSelect.value !== chosen || !detail) choose(projectSelect.value);
    },
    choose(id) {
      projectSelect.value = id;
      choose(id);
    },
  };

  function say(text, link = null) {
    result.replaceChildren(...(text ? [text] : []), ...(link ? [' ', link] : []));
  }

  function closePreview() {
    pending = null;
    preview.hidden = true;
    preview.replaceChildren();
    submit.hidden = false;
  }

  // --- the project and its stages ---------------------------------------------------

  async function choose(id) {
    closePreview();
    const listed = projects.find((p) => p.id === id);
    detail = listed ? { ...listed, timeline: [] } : null;
    if (!detail) {
      stageSelect.replaceChildren(h('option', { value: '' }, L('请先选择项目', 'Choose a project first')));
      return showDataFields();
    }
    // Only this category's stages, with this category's own names: lifecycle in order, then oversight.
    const stages = staff.stagesFor(vocabulary, detail.category);
    stageSelect.replaceChildren(
      h('optgroup', { label: L('流程阶段', 'Process stages') }, stages.filter((s) => !s.oversight).map((s) => h('option', { value: s.code }, pick(s.name)))),
      h('optgroup', { label: L('监督事项（任何时候）', 'Oversight (any time)') }, stages.filter((s) => s.oversight).map((s) => h('option', { value: s.code }, pick(s.name)))));
    stageSelect.value = nextStage(detail.category, detail.stage) ?? stages[0]?.code ?? '';
    showDataFields();
    try {
      const { data } = await request('GET', `/api/projects/${encodeURIComponent(id)}`);
      if (detail?.id !== id) return;
      detail.timeline = data.timeline;
      for (const list of dataFields.querySelectorAll('datalist')) list.replaceChildren(...earlier());
    } catch (error) {
      alert.textContent = problem(error);
    }
  }

  function stageLabel(code) {
    return staff.stageLabel(vocabulary, detail?.category, code);
  }

  function earlier() {
    return (detail?.timeline ?? []).map((e) => h('option', { value: e.seq }, `#${e.seq} ${stageLabel(e.stage)} ${e.title}`));
  }

  function fields() {
    return detail && stageSelect.value ? staff.fieldsFor(vocabulary, detail.category, stageSelect.value, rules) : [];
  }

  /** The facts of the chosen stage: labelled, with units, required ones first marked so. */
  function showDataFields() {
    dataFields.replaceChildren(...fields().map((f) => {
      const id = `d-${f.name}`;
      const label = f.label + (f.unit ? L(`（${f.unit}）`, ` (${f.unit})`) : '')
        + (f.kind === 'datetime' ? L('（北京时间）', ' (Beijing time)') : '')
        + (f.required ? L('（必填）', ' (required)') : L('（可选）', ' (optional)'));
      const attrs = { id, name: `data.${f.name}`, 'data-kind': f.kind };
      switch (f.kind) {
        case 'datetime': return field(id, label, h('input', { ...attrs, type: 'datetime-local' }));
        case 'date': return field(id, label, h('input', { ...attrs, type: 'date' }));
        case 'amount': case 'number': case 'percent':
          return field(id, label, h('input', { ...attrs, type: 'number', step: 'any', inputmode: 'decimal' }));
        case 'integer': return field(id, label, h('input', { ...attrs, type: 'number', step: 1, inputmode: 'numeric' }));
        case 'boolean': return field(id, label, h('select', attrs,
          h('option', { value: '' }, L('未注明', 'Not stated')), h('option', { value: 'true' }, L('是', 'Yes')), h('option', { value: 'false' }, L('否', 'No'))));
        case 'list': return field(id, label, h('textarea', { ...attrs, rows: 3 }), L('每行一项。', 'One per line.'));
        case 'event': {
          const listId = `${id}-list`;
          return field(id, label, [h('input', { ...attrs, type: 'number', min: 1, step: 1, list: listId, inputmode: 'numeric' }),
            h('datalist', { id: listId }, earlier())],
          L('本项目一条已发布信息的序号（项目页每条信息下方的 # 号）。', 'The number (#) of an earlier item of this project, as shown on its page.'));
        }
        default: return field(id, label, h('input', attrs));
      }
    }));
  }

  // --- preview, confirm, publish ----------------------------------------------------

  /** The request body from the form, or null after marking the field that cannot be sent. */
  function collect() {
    const els = form.elements;
    const data = {};
    for (const f of fields()) {
      const input = els.namedItem(`data.${f.name}`);
      if (input.validity?.badInput) return markField(form, input, L(`「${f.label}」请填写数字。`, `“${f.label}” must be a number.`)), null;
      const value = input.value.trim();
      if (!value) continue; // a required one missing: the server says so, next to the field
      data[f.name] = staff.valueOf(f.kind, value);
    }
    const body = { stage: stageSelect.value, title: els.title.value.trim(), data };
    if (els.body.value.trim()) body.body = els.body.value.trim();
    if (els.occurred_at.value) body.occurred_at = staff.beijing(els.occurred_at.value);
    return body;
  }

  async function askPreview(event) {
    event.preventDefault();
    clearErrors(form);
    say('');
    closePreview();
    const id = projectSelect.value;
    if (!id || !detail) return markField(form, projectSelect, L('请先选择项目。', 'Choose a project first.'));
    const body = collect();
    if (!body) return;
    submit.disabled = true;
    say(L('正在检查…', 'Checking…'));
    try {
      const answer = await request('POST', `/api/projects/${encodeURIComponent(id)}/events?dry_run=1`, { body, token });
      say('');
      // A server that does not know dry_run publishes at once: say so rather than show a preview.
      if (answer.status === 201 || !answer.data?.event) return published(id, answer);
      pending = { id, body, key: staff.newKey() };
      showPreview(answer.data);
    } catch (error) {
      say('');
      refuse(error);
    } finally {
      submit.disabled = false;
    }
  }

  /** A 422 next to its field or as one message naming the rule and the earlier event; others in words. */
  function refuse(error) {
    if (error.status === 422 && error.code === 'contradicts') {
      const seq = error.details?.event;
      const earlierEvent = detail?.timeline.find((e) => e.seq === seq);
      const link = seq != null && h('a', { href: `/p/${encodeURIComponent(detail.id)}#e${seq}` },
        L(`查看第 ${seq} 号信息`, `See #${seq}`) + (earlierEvent ? L(`（${stageLabel(earlierEvent.stage)}）`, ` (${stageLabel(earlierEvent.stage)})`) : ''));
      alert.replaceChildren(L('未能发布：', 'Not published: '), error.message, ...(link ? [' ', link] : []));
      return;
    }
    const name = error.details?.field;
    if (error.status === 422 && name?.startsWith('data.')) {
      const f = fields().find((x) => `data.${x.name}` === name);
      const input = form.elements.namedItem(name);
      if (f && input) {
        const text = input.value.trim()
          ? L(`「${f.label}」的内容不符合要求：${error.message}`, `“${f.label}” is not acceptable: ${error.message}`)
          : L(`请填写「${f.label}」：发布「${stageLabel(stageSelect.value)}」必须有这一项。`, `Fill in “${f.label}”: a “${stageLabel(stageSelect.value)}” must carry it.`);
        return markField(form, input, text);
      }
    }
    showError(form, error);
  }

  function showPreview({ event: shown, warnings = [] }) {
    const facts = fields();
    const rows = Object.entries(shown.data ?? {}).map(([key, value]) => {
      const f = facts.find((x) => x.name === key) ?? staff.describeField(vocabulary, key);
      return [h('dt', null, f.label), h('dd', null, staff.showValue(f, value, stageLabel, detail?.timeline ?? []))];
    });
    const confirm = h('button', { type: 'button', class: 'primary', 'data-testid': 'confirm-publish', onclick: publish }, L('确认发布', 'Publish'));
    const back = h('button', { type: 'button', onclick: () => {
      closePreview();
      form.elements.title.focus();
    } }, L('返回修改', 'Back to edit'));
    preview.replaceChildren(
      h('h3', { id: 'h-preview', tabindex: -1 }, L('发布前请确认', 'Confirm before publishing')),
      h('p', { class: 'small muted' }, L('公开后将显示为：', 'It will be published as:')),
      h('div', { class: 'card preview-card' },
        h('p', null, h('span', { class: 'stage' }, stageLabel(shown.stage))),
        h('p', { class: 'title' }, shown.title),
        shown.occurred_at && h('p', { class: 'small muted' }, L(`发生时间 ${when(shown.occurred_at)}`, `Occurred ${when(shown.occurred_at)}`)),
        shown.body && h('p', { class: 'body' }, shown.body),
        rows.length > 0 && h('dl', { class: 'data' }, rows)),
      warnings.length
        ? h('div', { class: 'preview-warnings', 'data-testid': 'preview-warnings' },
          h('p', { class: 'error' }, L(`发布后将产生 ${warnings.length} 条法定时限预警：`, `Publishing raises ${warnings.length} statutory warning(s):`)),
          h('ul', { class: 'plain' }, warnings.map(warningLine)))
        : h('p', { class: 'good small' }, L('没有发现违反法定时限的问题。', 'No statutory period would be breached.')),
      h('div', { class: 'confirm-actions' }, confirm, back));
    preview.hidden = false;
    submit.hidden = true;
    preview.querySelector('h3').focus();
  }

  function warningLine(w) {
    const level = staff.warningLevel(w, rules);
    return h('li', { class: `warning level-${w.level}`, 'data-testid': 'preview-warning' },
      h('p', null, h('span', { class: 'level' }, level), ' ', h('span', { lang: 'zh-CN' }, w.message)),
      (w.due_at || w.basis) && h('p', { class: 'small' },
        w.due_at ? L(`期限 ${dueTime(w.due_at)}`, `Due ${dueTime(w.due_at)}`) : '',
        w.due_at && w.basis ? ' · ' : '', w.basis ? h('span', { lang: 'zh-CN' }, citation(w.basis)) : ''));
  }

  async function publish() {
    if (!pending) return;
    const { id, body, key } = pending;
    const buttons = preview.querySelectorAll('button');
    buttons.forEach((b) => { b.disabled = true; });
    clearErrors(form);
    say(L('正在发布…', 'Publishing…'));
    try {
      const answer = await request('POST', `/api/projects/${encodeURIComponent(id)}/events`, {
        body, token, headers: { 'Idempotency-Key': key },
      });
      published(id, answer);
    } catch (error) {
      say('');
      // No answer: the same key makes a second tap safe; the preview stays to confirm again.
      if (error.status === 0) {
        buttons.forEach((b) => { b.disabled = false; });
        return showError(form, error);
      }
      closePreview();
      refuse(error);
    }
  }

  /** Published (201), or found published already (200): said once, the form ready for the next. */
  function published(id, answer) {
    const event = answer.data;
    closePreview();
    say(answer.status === 201
      ? L(`已发布：第 ${event.seq} 号信息（${when(event.published_at)}）。`, `Published as #${event.seq} (${when(event.published_at)}).`)
      : L(`这条信息此前已经发布过（第 ${event.seq} 号），没有重复发布。`, `This was already published as #${event.seq}; not published twice.`),
    h('a', { href: `/p/${encodeURIComponent(id)}#e${event.seq}` }, L('查看', 'View')));
    for (const name of ['title', 'body', 'occurred_at']) form.elements[name].value = '';
    if (detail?.id === id) {
      detail.timeline.push(event);
      if (lifecycle(detail.category).includes(event.stage)) {
        detail.stage = event.stage;
        const listed = projects.find((p) => p.id === id);
        if (listed) listed.stage = event.stage;
      }
      stageSelect.value = nextStage(detail.category, detail.stage) ?? stageSelect.value;
    }
    showDataFields();
  }
}
