// `/`: projects, newest activity first (or soonest closing), with filters and
// search. The filters live in the URL (?category=&region=&agency=&stage=&status=&sort=&q=)
// so reload and back keep them; each active one shows as a chip that removes it.
import { h, parseTime, span, keepInPlace, showingCopy, failure } from '../ui.js';
import { L } from '../i18n.js';
import { load } from '../api.js';
import {
  allCategories, categoryName, stageName, stagesOf, everyStage, movesStage,
  allAgencies, allRegions, agencyName, regionName, keyDateName, closesFields,
} from '../vocab.js';
import { live } from '../live.js';
import { describeTopic, followToggle, shortDateTime, budgetText, subscribeLinks } from './parts.js';

const PAGE = 20;
const FILTERS = ['category', 'region', 'agency', 'stage', 'status'];
// status=open: still taking bids or applications; closing: and they close within 72 hours.
const STATUSES = { open: ['投标中', 'Open for bids'], closing: ['即将截止', 'Closing soon'] };
// The region and agency filters offer the directory's (GET /api/directory),
// named, with codes as values; a code the directory lacks is added, as it is,
// once a project on the page shows it (or the URL asks for it).
const PLACES = {
  region: { all: allRegions, name: regionName },
  agency: { all: allAgencies, name: agencyName },
};

export default async function list(main, ctx) {
  const chosen = Object.fromEntries([...FILTERS, 'sort', 'q'].map((k) => [k, ctx.query.get(k) ?? '']));
  if (!STATUSES[chosen.status]) chosen.status = '';
  if (chosen.sort !== 'closes') chosen.sort = '';
  const items = h('ol', { class: 'projects', 'data-testid': 'project-list' });
  const count = h('p', { class: 'muted', role: 'status' });
  const more = h('button', { type: 'button', class: 'more', hidden: true }, L('加载更多', 'Load more'));
  const selects = {};
  const follow = h('div', { class: 'chips' });
  const subscribe = h('div');
  let cursor = null;
  let generation = 0; // answers to an older filter are dropped

  const field = (name, label, control) =>
    h('div', { class: 'field' }, h('label', { for: `f-${name}` }, label), control);
  const select = (name, all) => {
    selects[name] = h('select', { id: `f-${name}`, name }, h('option', { value: '' }, all));
    selects[name].addEventListener('change', () => changed(name, selects[name].value));
    return selects[name];
  };
  const search = h('input', {
    id: 'f-q', type: 'search', name: 'q', value: chosen.q, enterkeyhint: 'search', maxlength: 100,
    placeholder: L('名称、编号或公告内容，可输入多个词', 'Name, code or notice text; several words'), autocomplete: 'off',
  });
  let typing = 0;
  search.addEventListener('input', () => {
    clearTimeout(typing);
    typing = setTimeout(() => changed('q', search.value.trim()), 350);
  });
  const form = h('form', { class: 'filters', role: 'search', onsubmit: (e) => {
    e.preventDefault();
    clearTimeout(typing);
    changed('q', search.value.trim());
  } },
  field('category', L('类别', 'Category'), select('category', L('全部类别', 'All categories'))),
  field('stage', L('阶段', 'Stage'), select('stage', L('全部阶段', 'All stages'))),
  field('region', L('地区', 'Region'), select('region', L('全部地区', 'All regions'))),
  field('agency', L('机构', 'Agency'), select('agency', L('全部机构', 'All agencies'))),
  field('status', L('投标状态', 'Bidding'), select('status', L('全部项目', 'All projects'))),
  field('sort', L('排序', 'Order'), select('sort', L('最新动态在前', 'Latest activity first'))),
  h('div', { class: 'field wide' }, h('label', { for: 'f-q' }, L('搜索', 'Search')), search));

  selects.status.append(...Object.entries(STATUSES).map(([code, name]) => h('option', { value: code }, L(...name))));
  selects.sort.append(h('option', { value: 'closes' }, L('截止时间最近在前', 'Closing soonest first')));
  selects.status.value = chosen.status;
  selects.sort.value = chosen.sort;
  // The active filters, each a chip that removes it, and one to remove them all.
  const active = h('div', { class: 'chips active-filters', role: 'group', 'aria-label': L('当前筛选', 'Active filters'), 'data-testid': 'active-filters' });

  for (const c of allCategories()) selects.category.append(h('option', { value: c.code }, categoryName(c.code)));
  for (const [name, place] of Object.entries(PLACES)) {
    selects[name].append(...place.all().map((p) => h('option', { value: p.code }, place.name(p.code))));
  }
  fillStages();
  addPlaces([]);

  main.replaceChildren(
    h('h1', { tabindex: -1 }, L('交易项目', 'Projects')),
    h('p', { class: 'lead' }, L('最新动态在前，点开可看全过程。', 'Latest activity first; open one to see its whole process.')),
    form, active, follow, subscribe, count, items, more,
  );
  more.addEventListener('click', async () => {
    const first = await page(false);
    first?.querySelector('a')?.focus(); // keep the keyboard where the new items start
  });

  function fillStages() {
    const stages = chosen.category ? stagesOf(chosen.category) : everyStage();
    selects.stage.replaceChildren(selects.stage.firstChild,
      ...stages.map((s) => h('option', { value: s.code }, stageName(s.code, chosen.category) + (s.oversight ? L('（监督）', ' (oversight)') : ''))));
    if (!stages.some((s) => s.code === chosen.stage)) chosen.stage = '';
    selects.stage.value = chosen.stage;
    selects.category.value = chosen.category;
  }

  function addPlaces(projects) {
    for (const name of ['region', 'agency']) {
      const known = new Set([...selects[name].options].map((o) => o.value));
      const found = [...new Set([chosen[name], ...projects.map((p) => p[name])])].filter((v) => v && !known.has(v)).sort();
      selects[name].append(...found.map((v) => h('option', { value: v }, PLACES[name].name(v))));
      selects[name].value = chosen[name];
    }
  }

  // One-tap follows for what the reader is filtering by, and its feed and calendar.
  function showFollows() {
    const topics = ['category', 'agency', 'region'].filter((k) => chosen[k]).map((k) => `${k}:${chosen[k]}`);
    follow.replaceChildren(...topics.map((topic) => {
      const [kind, value] = describeTopic(topic);
      return followToggle(topic, L(`关注${kind}：${value}`, `Follow ${kind.toLowerCase()}: ${value}`));
    }));
    subscribe.replaceChildren();
    if (!topics.length) return;
    // The feed follows the same topics (any of them), of the stage chosen; the calendar
    // is the agency's and category's (both, when both are chosen), as the list shows.
    const feed = new URLSearchParams({ topics: topics.join(',') });
    if (chosen.stage) feed.set('stages', chosen.stage);
    const places = new URLSearchParams(Object.entries({ agency: chosen.agency, category: chosen.category }).filter(([, v]) => v));
    subscribe.append(subscribeLinks({
      feed: `/api/feed.atom?${feed}`,
      calendar: places.toString() ? `/api/deadlines.ics?${places}` : null,
    }));
  }

  // What each active filter is, in words: 类别：工程建设, 机构：义乌市公共资源交易中心…
  function describe(name, value) {
    switch (name) {
      case 'category': return L(`类别：${categoryName(value)}`, `Category: ${categoryName(value)}`);
      case 'stage': return L(`阶段：${stageName(value, chosen.category)}`, `Stage: ${stageName(value, chosen.category)}`);
      case 'region': return L(`地区：${regionName(value)}`, `Region: ${regionName(value)}`);
      case 'agency': return L(`机构：${agencyName(value)}`, `Agency: ${agencyName(value)}`);
      case 'status': return L(...STATUSES[value]);
      case 'sort': return L('截止时间最近在前', 'Closing soonest first');
      default: return L(`搜索：${value}`, `Search: ${value}`);
    }
  }

  function showActive() {
    const on = [...FILTERS, 'q', 'sort'].filter((k) => chosen[k]);
    active.replaceChildren(...on.map((name) => h('button', {
      type: 'button', class: 'chip-remove', 'data-testid': 'filter-chip', 'data-filter': name,
      'aria-label': L(`移除筛选 ${describe(name, chosen[name])}`, `Remove filter ${describe(name, chosen[name])}`),
      onclick: () => changed({ [name]: '' }),
    }, describe(name, chosen[name]), h('span', { 'aria-hidden': 'true', class: 'x' }, ' ×'))),
    ...(on.length ? [h('button', { type: 'button', class: 'link clear', 'data-testid': 'clear-filters',
      onclick: () => changed(Object.fromEntries(on.map((k) => [k, '']))) }, L('清除筛选', 'Clear filters'))] : []));
  }

  /** Change one filter (name, value) or several ({name: value}); the URL, chips and list follow. */
  function changed(name, value) {
    const changes = typeof name === 'object' ? name : { [name]: value };
    if (Object.entries(changes).every(([k, v]) => chosen[k] === v)) return;
    Object.assign(chosen, changes);
    if ('q' in changes) search.value = chosen.q;
    for (const k of [...FILTERS, 'sort']) if (k in changes && k !== 'region' && k !== 'agency') selects[k].value = chosen[k];
    if ('category' in changes) fillStages();
    if ('region' in changes || 'agency' in changes) addPlaces([]);
    const query = new URLSearchParams(Object.entries(chosen).filter(([, v]) => v));
    history.replaceState(null, '', query.toString() ? `/?${query}` : '/');
    showFollows();
    showActive();
    page(true);
  }

  async function page(first) {
    const mine = first ? ++generation : generation;
    const query = new URLSearchParams(Object.entries(chosen).filter(([, v]) => v));
    query.set('limit', PAGE);
    if (!first && cursor) query.set('cursor', cursor);
    more.disabled = true;
    let answer;
    try {
      // Only first pages are kept for offline reading; "load more" needs the network.
      answer = await load(`/api/projects?${query}`, first ? `list:${query}` : null);
    } catch (error) {
      if (mine !== generation || ctx.signal.aborted) return null;
      if (first) items.replaceChildren(h('li', null, failure(error, () => page(true))));
      else count.textContent = L('没能加载更多。', 'Could not load more.');
      more.disabled = false;
      return null;
    }
    if (mine !== generation || ctx.signal.aborted) return null;
    const { data, cached } = answer;
    showingCopy(cached);
    cursor = data.next_cursor;
    const rows = data.items.map(row);
    if (first) items.replaceChildren(...rows);
    else items.append(...rows);
    addPlaces(data.items);
    more.hidden = !cursor;
    more.disabled = false;
    const shown = items.querySelectorAll('[data-testid=project-link]').length;
    count.textContent = shown
      ? L(`显示 ${shown} 个项目${cursor ? '（还有更多）' : ''}`, `${shown} project${shown > 1 ? 's' : ''}${cursor ? ' (more below)' : ''}`)
      : L('没有符合条件的项目。换个筛选条件试试。', 'No projects match. Try other filters.');
    return rows[0];
  }

  // Followed projects that are on the list move on live, in place: the order
  // only changes when the reader reloads, so nothing jumps under their finger.
  ctx.onLeave(live.on('event', (event) => {
    const item = items.querySelector(`li[data-project="${CSS.escape(event.project)}"]`);
    if (!item) return;
    keepInPlace(() => {
      if (movesStage(event.stage)) item.querySelector('.stage').textContent = stageName(event.stage, item.dataset.category);
      const title = event.stage === 'amended' ? event.data?.changes?.title : null;
      if (typeof title === 'string') item.querySelector('.title').textContent = title;
      item.querySelector('.updated').textContent = L('最近动态 ', 'Latest ') + shortDateTime(event.published_at);
      item.classList.add('is-new');
    });
  }));

  showFollows();
  showActive();
  await page(true);
}

function row(project) {
  return h('li', { 'data-project': project.id, 'data-category': project.category },
    h('a', { class: 'card', href: `/p/${encodeURIComponent(project.id)}`, 'data-testid': 'project-link' },
      h('span', { class: 'title' }, project.title),
      h('span', { class: 'meta' }, h('span', { class: 'stage' }, stageName(project.stage, project.category)), ' ', categoryName(project.category)),
      nextDate(project),
      h('span', { class: 'meta muted updated' }, L('最近动态 ', 'Latest ') + shortDateTime(project.updated_at)),
      h('span', { class: 'meta muted' }, [project.id, agencyName(project.agency), regionName(project.region)].filter(Boolean).join(' · '),
        project.budget != null ? ` · ${L('预算', 'Budget')} ${budgetText(project.budget, project.currency)}` : '')));
}

/**
 * The next date that matters on a card: the bid deadline or listing end while
 * open (投标截止 12月18日 09:30 · 还有 12 天), else the next key date ahead;
 * a closed window says so. Nothing when the server sends no key dates.
 */
function nextDate(project) {
  const dates = project.key_dates ?? [];
  const now = Date.now();
  const closes = project.closes_at
    ? dates.find((d) => d.at === project.closes_at && closesFields().includes(d.field)) ?? dates.find((d) => d.at === project.closes_at) ?? { field: null, at: project.closes_at }
    : null;
  const ahead = dates.filter((d) => parseTime(d.at) > now);
  const shown = closes && parseTime(closes.at) > now ? closes : ahead[0] ?? closes;
  if (!shown) return null;
  const left = parseTime(shown.at) - now;
  const name = shown.field ? keyDateName(shown.field) : L('截止', 'Closes');
  return h('span', { class: `meta key-date${left < 0 ? ' past' : ''}`, 'data-testid': 'next-key-date', 'data-field': shown.field ?? '' },
    `${name} ${shortDateTime(shown.at)} · `,
    // A window a result or a failure already ended is over, whatever its date said.
    h('strong', null, shown === closes && project.open === false && left >= 0 ? L('已结束', 'Ended')
      : left >= 0 ? L(`还有 ${span(left)}`, `${span(left)} left`) : L('已截止', 'Closed')));
}
