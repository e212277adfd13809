// `/staff`: sign in with a token, create projects, publish stage changes, and
// (supervisors, admins) watch compliance warnings arrive live.
import { h, when, dueTime, keepInPlace, problem, failure } from '../ui.js';
import { L } from '../i18n.js';
import { request, load } from '../api.js';
import { live } from '../live.js';
import {
  allCategories, categoryName, stageName, stagesOf, lifecycle, nextStage, dataLabel,
  allAgencies, allRegions, agencyName, regionName,
} from '../vocab.js';
import * as staff from '../staff.js';
import { field, clearErrors, markField, showError } from './forms.js';
import { amendForm } from './amend.js';

export default async function staffPage(main, ctx) {
  const token = staff.savedToken();
  if (!token) return signIn(main, ctx);
  main.replaceChildren(h('h1', { tabindex: -1 }, L('工作人员', 'Staff')), h('p', { role: 'status' }, L('正在验证登录…', 'Checking your sign-in…')));
  let role;
  try {
    role = await live.signIn(token);
  } catch (error) {
    if (ctx.signal.aborted) return;
    if (error.message === 'unauthorized') {
      staff.forget();
      return signIn(main, ctx, L('登录已失效（令牌无效或已被撤销），请重新登录。', 'Your sign-in is no longer valid (token unknown or revoked). Sign in again.'));
    }
    main.append(failure({ status: 0 }, () => staffPage(main, ctx)));
    return;
  }
  if (!ctx.signal.aborted) await consolePage(main, ctx, token, role);
}

// --- signing in -------------------------------------------------------------------

function signIn(main, ctx, message = '') {
  const token = h('input', { id: 's-token', name: 'token', type: 'password', autocomplete: 'off', spellcheck: 'false', 'aria-describedby': 's-token-hint' });
  const remember = h('input', { id: 's-remember', type: 'checkbox', name: 'remember' });
  const alert = h('p', { class: 'error', role: 'alert' }, message);
  const submit = h('button', { type: 'submit', class: 'primary' }, L('登录', 'Sign in'));
  const form = h('form', { class: 'stack', 'data-testid': 'signin', novalidate: true },
    h('div', { class: 'field' }, h('label', { for: 's-token' }, L('令牌', 'Token')), token,
      h('p', { class: 'hint', id: 's-token-hint' }, L('令牌由系统管理员发放（以 sb_ 开头）。', 'Your administrator gives you a token (it starts with sb_).'))),
    h('div', { class: 'check' }, remember, h('label', { for: 's-remember' }, L('在此设备上记住', 'Remember on this device'))),
    h('p', { class: 'hint' }, L('不勾选时，令牌只保存到关闭浏览器为止。公用设备请不要勾选。', 'Unticked, the token is kept only until the browser closes. Do not tick it on a shared device.')),
    submit, alert);
  form.addEventListener('submit', async (event) => {
    event.preventDefault();
    const secret = token.value.trim();
    if (!secret) {
      alert.textContent = L('请填写令牌。', 'Enter your token.');
      return token.focus();
    }
    submit.disabled = true;
    alert.textContent = '';
    try {
      const role = await live.signIn(secret);
      staff.keep(secret, remember.checked);
      await consolePage(main, ctx, secret, role);
      main.querySelector('h1').focus();
    } catch (error) {
      alert.textContent = error.message === 'unauthorized'
        ? L('令牌无效或已被撤销。', 'This token is unknown or revoked.')
        : L('连不上服务器，请检查网络后再试。', 'Cannot reach the server; check the network and try again.');
      submit.disabled = false;
      token.focus();
    }
  });
  main.replaceChildren(h('h1', { tabindex: -1 }, L('工作人员登录', 'Staff sign-in')),
    h('p', { class: 'lead' }, L('交易中心和代理机构的工作人员在这里新建项目、发布各阶段信息；监督人员在这里查看合规预警。',
      'Staff of the trading centre and agencies create projects and publish each stage here; supervisors watch compliance warnings.')),
    form);
}

// --- the console ------------------------------------------------------------------

async function consolePage(main, ctx, token, role) {
  const publishes = role === 'publisher' || role === 'admin';
  const supervises = role === 'supervisor' || role === 'admin';
  let rules = [];
  try {
    rules = (await load('/api/catalog', 'catalog')).data.rules;
  } catch {
    // without the rules the form still offers the usual fields of each stage
  }
  if (ctx.signal.aborted) return;
  const signOut = h('button', { type: 'button', class: 'link', onclick: () => {
    staff.forget();
    live.signOut();
    signIn(main, ctx);
    main.querySelector('h1').focus();
  } }, L('退出登录', 'Sign out'));

  main.replaceChildren(
    h('h1', { tabindex: -1 }, L('工作人员控制台', 'Staff console')),
    h('p', { class: 'role' }, L('角色：', 'Role: '), h('strong', { 'data-testid': 'staff-role' }, `${staff.roleName(role)} (${role})`), ' ', signOut),
  );
  if (publishes) main.append(...publishing(ctx, token, role, rules));
  main.append(supervises ? await warningsSection(ctx, token)
    : h('section', null, h('h2', null, L('合规预警', 'Compliance warnings')),
      h('p', { class: 'note' }, L('合规预警只对监督人员和管理员开放。您的项目如有临近或超期的法定时限，会显示在项目页的「法定时限」里。',
        'Warnings are for supervisors and administrators. Deadlines of your projects that are near or overdue show on each project page.'))));
}

/** The agency filter, the publish form, the create form and the agency's projects. */
function publishing(ctx, token, role, rules) {
  let agency = staff.savedAgency();
  let projects = [];
  let detail = null; // the project chosen in the publish form, with its timeline
  let loading = 0; // answers to an older request for the list are dropped
  const links = h('ul', { class: 'links' });

  // Which agency a token belongs to is not something the API tells: the
  // person says it once here, and it is kept with the token.
  // The directory's codes are suggested, named; any other code is still accepted.
  const choices = (id, places, name) => h('datalist', { id }, places.map((p) => h('option', { value: p.code }, name(p.code))));
  const agencyInput = h('input', { id: 'a-agency', name: 'my-agency', value: agency, autocomplete: 'organization', placeholder: 'YW-GGZY', list: 'agency-codes' });
  const agencyForm = h('form', { class: 'inline', onsubmit: (event) => {
    event.preventDefault();
    agency = agencyInput.value.trim();
    staff.keepAgency(agency);
    createForm.elements.agency.value ||= agency;
    loadProjects();
  } },
  h('label', { for: 'a-agency' }, role === 'publisher' ? L('本机构代码', 'My agency code') : L('按机构查看（可选）', 'Show one agency (optional)')), agencyInput,
  h('button', { type: 'submit' }, L('显示', 'Show')));

  // Publishing.
  const projectSelect = h('select', { id: 'p-project', name: 'project' });
  const stageSelect = h('select', { id: 'p-stage', name: 'stage' });
  const dataFields = h('div', { class: 'data-fields' });
  const result = h('p', { class: 'result', role: 'status', 'data-testid': 'publish-result' });
  const publishForm = h('form', { class: 'stack', 'data-testid': 'publish', novalidate: true },
    field('p-project', L('项目', 'Project'), projectSelect),
    field('p-stage', L('阶段', 'Stage'), stageSelect),
    field('p-title', L('标题', 'Title'), h('input', { id: 'p-title', name: 'title', maxlength: 200, placeholder: L('如：某某工程招标公告', 'e.g. Tender notice for …') })),
    field('p-body', L('正文（可选）', 'Text (optional)'), h('textarea', { id: 'p-body', name: 'body', rows: 5, maxlength: 20000 })),
    dataFields,
    field('p-occurred', L('发生时间（可选，北京时间；不填即为发布时间）', 'Occurred at (optional, Beijing time; default: now)'),
      h('input', { id: 'p-occurred', name: 'occurred_at', type: 'datetime-local' })),
    h('button', { type: 'submit', class: 'primary' }, L('发布', 'Publish')),
    h('p', { class: 'error', role: 'alert' }),
    result);
  publishForm.addEventListener('input', () => delete publishForm.dataset.key); // changed: a new submission
  projectSelect.addEventListener('change', () => chooseProject(projectSelect.value));
  stageSelect.addEventListener('change', showDataFields);
  publishForm.addEventListener('submit', publish);

  // Creating.
  const createResult = h('p', { class: 'result', role: 'status' });
  const createForm = h('form', { class: 'stack', 'data-testid': 'create-project', novalidate: true },
    field('c-id', L('项目编号', 'Project code'), h('input', { id: 'c-id', name: 'id', maxlength: 64, autocapitalize: 'characters', placeholder: 'YW-GC-2026-0200' }),
      L('字母、数字和 . _ -，最多 64 个字符；创建后不能修改。', 'Letters, digits and . _ -, at most 64; cannot be changed later.')),
    field('c-title', L('项目名称', 'Title'), h('input', { id: 'c-title', name: 'title', maxlength: 200 })),
    field('c-category', L('类别', 'Category'), h('select', { id: 'c-category', name: 'category' },
      allCategories().map((c) => h('option', { value: c.code }, categoryName(c.code))))),
    field('c-agency', L('机构代码', 'Agency code'), h('input', { id: 'c-agency', name: 'agency', value: agency, maxlength: 64, list: 'agency-codes' })),
    field('c-region', L('地区代码（可选）', 'Region code (optional)'), h('input', { id: 'c-region', name: 'region', maxlength: 64, inputmode: 'numeric', placeholder: '330782', list: 'region-codes' })),
    field('c-budget', L('预算（元，可选）', 'Budget (yuan, optional)'), h('input', { id: 'c-budget', name: 'budget', type: 'number', min: 0, step: 'any', inputmode: 'decimal' })),
    h('button', { type: 'submit', class: 'primary' }, L('新建项目', 'Create project')),
    h('p', { class: 'error', role: 'alert' }),
    createResult);
  createForm.addEventListener('submit', create);

  // Amending: the server's answer is the project as it is now.
  const amend = amendForm(token, (project) => {
    projects = projects.map((p) => (p.id === project.id ? { ...p, ...project } : p));
    showProjects(projectSelect.value);
  });

  loadProjects();

  return [
    h('section', { 'aria-labelledby': 'h-agency', class: 'compact' }, h('h2', { id: 'h-agency', class: 'visually-hidden' }, L('本机构', 'My agency')), agencyForm),
    choices('agency-codes', allAgencies(), agencyName), choices('region-codes', allRegions(), regionName),
    h('section', { 'aria-labelledby': 'h-publish' }, h('h2', { id: 'h-publish' }, L('发布进展', 'Publish a stage')), publishForm),
    h('section', { 'aria-labelledby': 'h-create' }, h('h2', { id: 'h-create' }, L('新建项目', 'New project')), createForm),
    amend.section,
    h('section', { 'aria-labelledby': 'h-projects' }, h('h2', { id: 'h-projects' }, L('项目', 'Projects')), links),
  ];

  async function loadProjects() {
    const mine = ++loading;
    const query = new URLSearchParams({ limit: 100 });
    if (agency) query.set('agency', agency);
    let found;
    try {
      found = (await request('GET', `/api/projects?${query}`)).data.items;
    } catch (error) {
      if (mine === loading) links.replaceChildren(h('li', null, problem(error)));
      return;
    }
    if (mine !== loading || ctx.signal.aborted) return; // a newer list, or a project created meanwhile
    projects = found;
    showProjects(projectSelect.value);
  }

  function showProjects(select) {
    links.replaceChildren(...(projects.length
      ? projects.map((p) => h('li', null, h('a', { href: `/p/${encodeURIComponent(p.id)}` }, p.title), h('span', { class: 'small muted' }, ` ${p.id} · ${stageName(p.stage)}`)))
      : [h('li', null, agency ? L(`机构 ${agencyName(agency)} 还没有项目。`, `Agency ${agencyName(agency)} has no projects yet.`) : L('还没有项目。', 'No projects yet.'))]));
    projectSelect.replaceChildren(h('option', { value: '' }, L('请选择项目', 'Choose a project')),
      ...projects.map((p) => h('option', { value: p.id }, `${p.id} · ${p.title}`)));
    projectSelect.value = projects.some((p) => p.id === select) ? select : '';
    chooseProject(projectSelect.value);
    amend.setProjects(projects);
  }

  // The stages are offered at once, from the listed project's category; the
  // timeline (for corrections) follows from the server.
  async function chooseProject(id) {
    const listed = projects.find((p) => p.id === id);
    detail = listed ? { ...listed, timeline: [] } : null;
    if (!detail) {
      stageSelect.replaceChildren(h('option', { value: '' }, L('请先选择项目', 'Choose a project first')));
      return showDataFields();
    }
    // Only the stages of this project's category: lifecycle in order, then oversight.
    const stages = stagesOf(detail.category);
    stageSelect.replaceChildren(
      h('optgroup', { label: L('流程阶段', 'Process stages') }, stages.filter((s) => !s.oversight).map((s) => h('option', { value: s.code }, stageName(s.code)))),
      h('optgroup', { label: L('监督事项（任何时候）', 'Oversight (any time)') }, stages.filter((s) => s.oversight).map((s) => h('option', { value: s.code }, stageName(s.code)))));
    stageSelect.value = nextStage(detail.category, detail.stage) ?? stages[0]?.code ?? '';
    showDataFields();
    try {
      const { data } = await request('GET', `/api/projects/${encodeURIComponent(id)}`);
      if (detail?.id !== id) return;
      detail.timeline = data.timeline;
      dataFields.querySelector('datalist')?.replaceChildren(...earlier());
    } catch (error) {
      publishForm.querySelector('[role=alert]').textContent = problem(error);
    }
  }

  function earlier() {
    return detail.timeline.map((e) => h('option', { value: e.seq }, `#${e.seq} ${stageName(e.stage)} ${e.title}`));
  }

  function showDataFields() {
    const stage = stageSelect.value;
    const fields = detail && stage ? staff.fieldsFor(detail.category, stage, rules) : [];
    dataFields.replaceChildren(...fields.map((f) => {
      const id = `d-${f.name}`;
      const label = dataLabel(f.name) + (f.type === 'datetime' ? L('（北京时间）', ' (Beijing time)') : '') + (f.required ? '' : L('（可选）', ' (optional)'));
      const attrs = { id, name: `data.${f.name}` };
      if (f.type === 'datetime') return field(id, label, h('input', { ...attrs, type: 'datetime-local' }));
      if (f.type === 'number') return field(id, label, h('input', { ...attrs, type: 'number', min: 0, step: 'any', inputmode: 'decimal' }));
      if (f.type === 'seq') {
        return field(id, label, [h('input', { ...attrs, type: 'number', min: 1, step: 1, list: 'corrects-list', inputmode: 'numeric' }),
          h('datalist', { id: 'corrects-list' }, earlier())],
        L('被更正信息的序号（项目页每条信息下方的 # 号）。', 'The number (#) shown under the item being corrected on the project page.'));
      }
      return field(id, label, h('input', { ...attrs }));
    }));
  }

  async function publish(event) {
    event.preventDefault();
    clearErrors(publishForm);
    const id = projectSelect.value;
    if (!id || !detail) return markField(publishForm, projectSelect, L('请先选择项目。', 'Choose a project first.'));
    const els = publishForm.elements;
    const data = {};
    for (const f of staff.fieldsFor(detail.category, stageSelect.value, rules)) {
      const input = els.namedItem(`data.${f.name}`);
      const value = input.value.trim();
      if (!value) {
        if (f.required) return markField(publishForm, input, L(`请填写「${dataLabel(f.name)}」。`, `Fill in “${dataLabel(f.name)}”.`));
        continue;
      }
      data[f.name] = f.type === 'datetime' ? beijing(value) : f.type === 'text' ? value : Number(value);
    }
    const body = { stage: stageSelect.value, title: els.title.value.trim(), data };
    if (els.body.value.trim()) body.body = els.body.value.trim();
    if (els.occurred_at.value) body.occurred_at = beijing(els.occurred_at.value);
    publishForm.dataset.key ||= staff.newKey();
    const button = publishForm.querySelector('button[type=submit]');
    button.disabled = true;
    result.textContent = L('正在发布…', 'Publishing…');
    try {
      const answer = await request('POST', `/api/projects/${encodeURIComponent(id)}/events`, {
        body, token, headers: { 'Idempotency-Key': publishForm.dataset.key },
      });
      const published = answer.data;
      delete publishForm.dataset.key;
      result.replaceChildren(answer.status === 201
        ? L(`已发布：第 ${published.seq} 号信息（${when(published.published_at)}）。`, `Published as #${published.seq} (${when(published.published_at)}). `)
        : L(`这条信息此前已经发布过（第 ${published.seq} 号），没有重复发布。`, `This was already published as #${published.seq}; not published twice. `),
      h('a', { href: `/p/${encodeURIComponent(id)}#e${published.seq}` }, L('查看', 'View')));
      for (const name of ['title', 'body', 'occurred_at']) els[name].value = '';
      detail.timeline.push(published);
      if (lifecycle(detail.category).includes(published.stage)) {
        detail.stage = published.stage;
        const listed = projects.find((p) => p.id === id);
        if (listed) listed.stage = published.stage;
      }
      stageSelect.value = nextStage(detail.category, detail.stage) ?? stageSelect.value;
      showDataFields();
    } catch (error) {
      result.textContent = '';
      showError(publishForm, error);
    } finally {
      button.disabled = false;
    }
  }

  async function create(event) {
    event.preventDefault();
    clearErrors(createForm);
    const els = createForm.elements;
    const body = { id: els.id.value.trim(), title: els.title.value.trim(), category: els.category.value, agency: els.agency.value.trim() };
    if (els.region.value.trim()) body.region = els.region.value.trim();
    if (els.budget.validity.badInput) return markField(createForm, els.budget, L('预算请填写数字。', 'The budget must be a number.'));
    if (els.budget.value !== '') body.budget = Number(els.budget.value);
    createResult.textContent = '';
    try {
      const { data: created } = await request('POST', '/api/projects', { body, token });
      createResult.replaceChildren(L(`已新建项目 ${created.id}，可在上方发布它的第一条信息。`, `Created ${created.id}; publish its first stage above. `),
        h('a', { href: `/p/${encodeURIComponent(created.id)}` }, L('查看', 'View')));
      createForm.reset();
      els.agency.value = agency || created.agency;
      if (role === 'publisher' && !agency) {
        agency = created.agency;
        agencyInput.value = agency;
        staff.keepAgency(agency);
      }
      loading += 1; // a list asked for before this project existed must not replace it
      projects = [created, ...projects.filter((p) => p.id !== created.id)];
      showProjects(created.id);
    } catch (error) {
      showError(createForm, error);
    }
  }
}

// --- warnings ---------------------------------------------------------------------

async function warningsSection(ctx, token) {
  const list = h('ul', { class: 'warnings', 'data-testid': 'warnings' });
  const add = (warning, isNew) => {
    const old = list.querySelector(`[data-id="${CSS.escape(warning.id)}"]`);
    keepInPlace(() => {
      list.querySelector('.none')?.remove();
      if (old) old.replaceWith(warningItem(warning, isNew));
      else list.prepend(warningItem(warning, isNew));
    });
  };
  const fetchOpen = async (isNew) => {
    try {
      const { data } = await request('GET', '/api/supervision/warnings?limit=50', { token });
      if (ctx.signal.aborted) return;
      const fresh = data.items.filter((w) => !list.querySelector(`[data-id="${CSS.escape(w.id)}"]`));
      if (isNew) fresh.reverse().forEach((w) => add(w, true));
      else list.append(...fresh.map((w) => warningItem(w, false)));
      if (!list.children.length) list.append(h('li', { class: 'none' }, L('还没有预警。', 'No warnings yet.')));
    } catch (error) {
      if (!isNew) list.replaceChildren(h('li', { class: 'none' }, problem(error)));
    }
  };
  ctx.onLeave(live.on('warning', (warning) => add(warning, true)));
  ctx.onLeave(live.on('ready', (count) => count > 1 && fetchOpen(true))); // after a reconnect: what came meanwhile
  live.watchSupervision(true);
  ctx.onLeave(() => live.watchSupervision(false));
  await fetchOpen(false);
  return h('section', { 'aria-labelledby': 'h-warnings' },
    h('h2', { id: 'h-warnings' }, L('合规预警（实时）', 'Compliance warnings (live)')),
    h('p', { class: 'small muted' }, L('最近的预警，新的出现在最上面；已解决的会注明。', 'Recent warnings, new ones at the top; resolved ones say so.')),
    list);
}

const LEVELS = {
  approaching: ['即将到期', 'Approaching'],
  breach: ['已超期', 'Breach'],
  data_incomplete: ['资料不全', 'Data incomplete'],
};

function warningItem(w, isNew) {
  return h('li', { class: `warning level-${w.level}${w.resolved_at ? ' resolved' : ''}${isNew ? ' is-new' : ''}`, 'data-testid': 'warning', 'data-id': w.id },
    h('p', null, isNew && h('span', { class: 'new' }, L('新', 'New')), h('span', { class: 'level' }, L(...(LEVELS[w.level] ?? [w.level, w.level]))),
      ' ', h('span', { lang: 'zh-CN' }, w.message)),
    // The message already names the rule and its legal basis.
    h('p', { class: 'small' }, h('a', { href: `/p/${encodeURIComponent(w.project)}` }, w.project), ` · ${agencyName(w.agency)}`,
      w.due ? ` · ${L('期限', 'due')} ${dueTime(w.due)}` : ''),
    w.resolved_at && h('p', { class: 'small good' }, L(`已于 ${when(w.resolved_at)} 解决`, `Resolved ${when(w.resolved_at)}`)));
}

/** A datetime-local value as RFC 3339 in Beijing time. */
const beijing = (value) => `${value.length === 16 ? `${value}:00` : value}${staff.BEIJING}`;
