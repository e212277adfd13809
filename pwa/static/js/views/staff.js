// `/staff`: sign in with a token, answer the public's enquiries and disclosure
// requests, create projects, publish stage changes, and (supervisors, admins)
// watch compliance warnings arrive live.
import { h, when, dueTime, keepInPlace, problem, failure } from '../ui.js';
import { L } from '../i18n.js';
import { request, load } from '../api.js';
import { live } from '../live.js';
import { allCategories, categoryName, allAgencies, allRegions, agencyName, regionName } from '../vocab.js';
import * as staff from '../staff.js';
import { field, placePicker, clearErrors, markField, showError, mustTenderHint } from './forms.js';
import { amendForm } from './amend.js';
import { publishForm } from './publish.js';
import { inboxSections } from './inbox.js';

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
    h('div', { class: 'field' }, h('label', { for: 's-token' }, L('登录令牌', 'Sign-in token')), token,
      h('p', { class: 'hint', id: 's-token-hint' }, L('登录令牌由本单位的系统管理员发放，请整串复制粘贴到这里。', 'Your administrator gives you a sign-in token: paste it here in full.'))),
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
  // The vocabulary (per-category stage names, each stage's facts) and the
  // time-limit rules; without them the form still offers the usual facts.
  const [catalog, vocabulary] = await Promise.all([
    load('/api/catalog', 'catalog').then((a) => a.data, () => ({ rules: [] })),
    load('/api/categories', 'categories').then((a) => a.data, () => null),
  ]);
  const { rules } = catalog;
  if (ctx.signal.aborted) return;
  // The cases waiting for an answer: every day's work, so first.
  const inbox = await inboxSections(ctx, token, role);
  if (ctx.signal.aborted) return;
  const signOut = h('button', { type: 'button', class: 'link', onclick: () => {
    staff.forget();
    live.signOut();
    signIn(main, ctx);
    main.querySelector('h1').focus();
  } }, L('退出登录', 'Sign out'));

  main.replaceChildren(
    h('h1', { tabindex: -1 }, L('工作人员控制台', 'Staff console')),
    h('p', { class: 'role' }, L('角色：', 'Role: '), h('strong', { 'data-testid': 'staff-role' }, staff.roleName(role)), ' ', signOut),
    ...inbox,
  );
  if (publishes) main.append(...publishing(ctx, token, role, rules, vocabulary, catalog.must_tender));
  main.append(supervises ? await warningsSection(ctx, token, rules)
    : h('section', null, h('h2', null, L('合规预警', 'Compliance warnings')),
      h('p', { class: 'note' }, L('合规预警只对监督人员和管理员开放。您的项目如有临近或超期的法定时限，会显示在项目页的「法定时限」里。',
        'Warnings are for supervisors and administrators. Deadlines of your projects that are near or overdue show on each project page.'))));
  if (supervises) {
    const usage = await channelUsage(token);
    if (usage && !ctx.signal.aborted) main.append(usage);
  }
}

const KIND_NAMES = { sms: ['短信', 'SMS'], email: ['电子邮件', 'E-mail'], wechat: ['微信', 'WeChat'] };

/** What the SMS, e-mail and WeChat reminders cost this month (none: nothing shown). */
async function channelUsage(token) {
  let data;
  try {
    ({ data } = await request('GET', '/api/channels/usage', { token }));
  } catch {
    return null;
  }
  const kinds = Object.entries(data.kinds);
  if (!kinds.length) return null;
  const yuan = (n) => `¥${n.toFixed(2)}`;
  const cell = (text) => h('td', null, String(text));
  return h('section', { 'aria-labelledby': 'h-usage' },
    h('h2', { id: 'h-usage' }, L('提醒用量与费用', 'Reminders: use and cost')),
    h('table', { class: 'usage', 'data-testid': 'channel-usage' },
      h('caption', null, L(`${data.month} 月，按每条单价计`, `${data.month}, at the price per message`)),
      h('thead', null, h('tr', null, ...[
        L('方式', 'Kind'), L('已开启', 'Active'), L('今日发送', 'Sent today'),
        L('本月发送', 'Sent this month'), L('本月费用', 'Cost this month'),
      ].map((label) => h('th', { scope: 'col' }, label)))),
      h('tbody', null, ...kinds.map(([kind, u]) => h('tr', { 'data-kind': kind },
        h('th', { scope: 'row' }, L(...(KIND_NAMES[kind] ?? [kind, kind]))),
        cell(u.active), cell(u.sent_today), cell(u.sent_month), cell(yuan(u.cost_month)))))));
}

/** The agency filter, the publish form, the create form and the agency's projects. */
function publishing(ctx, token, role, rules, vocabulary, mustTenderLaw) {
  let agency = staff.savedAgency();
  let projects = [];
  let loading = 0; // answers to an older request for the list are dropped
  const links = h('ul', { class: 'links' });

  // Which agency a token belongs to is not something the API tells: the
  // person picks it once here, by name, and it is kept with the token.
  const agencyPicker = placePicker('a-agency', 'my-agency', allAgencies(), agencyName, agency,
    role === 'publisher' ? L('请选择本机构', 'Choose your agency') : L('全部机构', 'All agencies'));
  const agencyForm = h('form', { class: 'inline', onsubmit: (event) => {
    event.preventDefault();
    agency = agencyPicker.value.trim();
    staff.keepAgency(agency);
    if (!createForm.elements.agency.value) createForm.elements.agency.value = agency;
    loadProjects();
  } },
  h('label', { for: 'a-agency' }, role === 'publisher' ? L('本机构', 'My agency') : L('按机构查看（可选）', 'Show one agency (optional)')), agencyPicker,
  h('button', { type: 'submit' }, L('显示', 'Show')));

  const publish = publishForm({ token, rules, vocabulary });

  // Creating.
  const createResult = h('p', { class: 'result', role: 'status' });
  const createForm = h('form', { class: 'stack', 'data-testid': 'create-project', novalidate: true },
    field('c-id', L('项目编号', 'Project code'), h('input', { id: 'c-id', name: 'id', maxlength: 64, autocapitalize: 'characters', placeholder: 'YW-GC-2026-0200' }),
      L('字母、数字和 . _ -，最多 64 个字符；创建后不能修改。', 'Letters, digits and . _ -, at most 64; cannot be changed later.')),
    field('c-title', L('项目名称', 'Title'), h('input', { id: 'c-title', name: 'title', maxlength: 200 })),
    field('c-category', L('类别', 'Category'), h('select', { id: 'c-category', name: 'category' },
      allCategories().map((c) => h('option', { value: c.code }, categoryName(c.code))))),
    field('c-agency', L('机构', 'Agency'), placePicker('c-agency', 'agency', allAgencies(), agencyName, agency, L('请选择机构', 'Choose an agency'))),
    field('c-region', L('地区（可选）', 'Region (optional)'), placePicker('c-region', 'region', allRegions(), regionName, '', L('不注明', 'Not stated'))),
    field('c-budget', L('预算（元，可选）', 'Budget (yuan, optional)'), h('input', { id: 'c-budget', name: 'budget', type: 'number', min: 0, step: 'any', inputmode: 'decimal' })),
    field('c-must_tender', L('依法必须招标', 'Tender required by law'), h('select', { id: 'c-must_tender', name: 'must_tender' },
      h('option', { value: '' }, L('未注明', 'Not stated')),
      h('option', { value: 'true' }, L('是', 'Yes')),
      h('option', { value: 'false' }, L('否', 'No'))), mustTenderHint(mustTenderLaw)),
    h('button', { type: 'submit', class: 'primary' }, L('新建项目', 'Create project')),
    h('p', { class: 'error', role: 'alert' }),
    createResult);
  createForm.addEventListener('submit', create);

  // Amending: the server's answer is the project as it is now.
  const amend = amendForm(token, (project) => {
    projects = projects.map((p) => (p.id === project.id ? { ...p, ...project } : p));
    showProjects();
  }, mustTenderLaw);

  loadProjects();

  return [
    h('section', { 'aria-labelledby': 'h-agency', class: 'compact' }, h('h2', { id: 'h-agency', class: 'visually-hidden' }, L('本机构', 'My agency')), agencyForm),
    h('section', { 'aria-labelledby': 'h-publish' }, h('h2', { id: 'h-publish' }, L('发布进展', 'Publish a stage')), publish.form),
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
    showProjects();
  }

  function showProjects(chosen = null) {
    links.replaceChildren(...(projects.length
      ? projects.map((p) => h('li', null, h('a', { href: `/p/${encodeURIComponent(p.id)}` }, p.title),
        h('span', { class: 'small muted' }, ` ${p.id} · ${staff.stageLabel(vocabulary, p.category, p.stage)}`)))
      : [h('li', null, agency ? L(`${agencyName(agency)}还没有项目。`, `${agencyName(agency)} has no projects yet.`) : L('还没有项目。', 'No projects yet.'))]));
    publish.setProjects(projects);
    if (chosen) publish.choose(chosen);
    amend.setProjects(projects);
  }

  async function create(event) {
    event.preventDefault();
    clearErrors(createForm);
    const els = createForm.elements;
    const body = { id: els.id.value.trim(), title: els.title.value.trim(), category: els.category.value, agency: els.agency.value.trim() };
    if (!body.agency) return markField(createForm, els.agency, L('请选择机构。', 'Choose an agency.'));
    if (els.region.value.trim()) body.region = els.region.value.trim();
    if (els.budget.validity.badInput) return markField(createForm, els.budget, L('预算请填写数字。', 'The budget must be a number.'));
    if (els.budget.value !== '') body.budget = Number(els.budget.value);
    if (els.must_tender.value !== '') body.must_tender = els.must_tender.value === 'true';
    createResult.textContent = '';
    try {
      const { data: created } = await request('POST', '/api/projects', { body, token });
      createResult.replaceChildren(L(`已新建项目 ${created.id}，可在上方发布它的第一条信息。`, `Created ${created.id}; publish its first stage above. `),
        h('a', { href: `/p/${encodeURIComponent(created.id)}` }, L('查看', 'View')));
      createForm.reset();
      els.agency.value = agency || created.agency;
      if (role === 'publisher' && !agency) {
        agency = created.agency;
        agencyPicker.value = agency;
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

async function warningsSection(ctx, token, rules) {
  const list = h('ul', { class: 'warnings', 'data-testid': 'warnings' });
  const add = (warning, isNew) => {
    const old = list.querySelector(`[data-id="${CSS.escape(warning.id)}"]`);
    keepInPlace(() => {
      list.querySelector('.none')?.remove();
      if (old) old.replaceWith(warningItem(warning, isNew, rules));
      else list.prepend(warningItem(warning, isNew, rules));
    });
  };
  const fetchOpen = async (isNew) => {
    try {
      const { data } = await request('GET', '/api/supervision/warnings?limit=50', { token });
      if (ctx.signal.aborted) return;
      const fresh = data.items.filter((w) => !list.querySelector(`[data-id="${CSS.escape(w.id)}"]`));
      if (isNew) fresh.reverse().forEach((w) => add(w, true));
      else list.append(...fresh.map((w) => warningItem(w, false, rules)));
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

function warningItem(w, isNew, rules) {
  return h('li', { class: `warning level-${w.level}${w.resolved_at ? ' resolved' : ''}${isNew ? ' is-new' : ''}`, 'data-testid': 'warning', 'data-id': w.id },
    h('p', null, isNew && h('span', { class: 'new' }, L('新', 'New')), h('span', { class: 'level' }, staff.warningLevel(w, rules)),
      // Local practice or policy, not law: the scorecard counts it apart.
      w.advisory && h('span', { class: 'tag advisory', 'data-testid': 'advisory-tag' }, L('地方惯例', 'local practice')),
      ' ', h('span', { lang: 'zh-CN' }, w.message)),
    // The message already names the rule and its legal basis.
    h('p', { class: 'small' }, w.project ? h('a', { href: `/p/${encodeURIComponent(w.project)}` }, w.project) : caseName(w.case), ` · ${agencyName(w.agency)}`,
      w.due ? ` · ${L('期限', 'due')} ${dueTime(w.due)}` : ''),
    w.resolved_at && h('p', { class: 'small good' }, L(`已于 ${when(w.resolved_at)} 解决`, `Resolved ${when(w.resolved_at)}`)));
}

/** A response warning's case when it has no project (a disclosure request): its kind and id. */
function caseName(found) {
  if (!found) return '—';
  const kind = { enquiry: L('咨询', 'Enquiry'), disclosure_request: L('依申请公开', 'Disclosure request') }[found.kind] ?? found.kind;
  return `${kind} ${found.id}`;
}
