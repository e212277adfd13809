// `/`: projects, newest activity first, with filters and search. The filters
// live in the URL (?category=&region=&agency=&stage=&q=) so reload and back keep them.
import { h, when, money, keepInPlace, showingCopy, failure } from '../ui.js';
import { L } from '../i18n.js';
import { load } from '../api.js';
import {
  allCategories, categoryName, stageName, stagesOf, everyStage, movesStage,
  allAgencies, allRegions, agencyName, regionName,
} from '../vocab.js';
import { live } from '../live.js';
import { describeTopic, followToggle } from './parts.js';

const PAGE = 20;
const FILTERS = ['category', 'region', 'agency', 'stage'];
// The region and agency filters offer the directory's (GET /api/directory),
// named, with codes as values; a code the directory lacks is added, as it is,
// once a project on the page shows it (or the URL asks for it).
const PLACES = {
  region: { all: allRegions, name: regionName },
  agency: { all: allAgencies, name: agencyName },
};

export default async function list(main, ctx) {
  const chosen = Object.fromEntries([...FILTERS, 'q'].map((k) => [k, ctx.query.get(k) ?? '']));
  const items = h('ol', { class: 'projects', 'data-testid': 'project-list' });
  const count = h('p', { class: 'muted', role: 'status' });
  const more = h('button', { type: 'button', class: 'more', hidden: true }, L('加载更多', 'Load more'));
  const selects = {};
  const follow = h('div', { class: 'chips' });
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
    placeholder: L('项目名称或编号', 'Project name or code'), autocomplete: 'off',
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
  h('div', { class: 'field wide' }, h('label', { for: 'f-q' }, L('搜索', 'Search')), search));

  for (const c of allCategories()) selects.category.append(h('option', { value: c.code }, categoryName(c.code)));
  for (const [name, place] of Object.entries(PLACES)) {
    selects[name].append(...place.all().map((p) => h('option', { value: p.code }, place.name(p.code))));
  }
  fillStages();
  addPlaces([]);

  main.replaceChildren(
    h('h1', { tabindex: -1 }, L('交易项目', 'Projects')),
    h('p', { class: 'lead' }, L('最新动态在前，点开可看全过程。', 'Latest activity first; open one to see its whole process.')),
    form, follow, count, items, more,
  );
  more.addEventListener('click', async () => {
    const first = await page(false);
    first?.querySelector('a')?.focus(); // keep the keyboard where the new items start
  });

  function fillStages() {
    const stages = chosen.category ? stagesOf(chosen.category) : everyStage();
    selects.stage.replaceChildren(selects.stage.firstChild,
      ...stages.map((s) => h('option', { value: s.code }, stageName(s.code) + (s.oversight ? L('（监督）', ' (oversight)') : ''))));
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

  // One-tap follows for what the reader is filtering by.
  function showFollows() {
    follow.replaceChildren(...['category', 'agency', 'region'].filter((k) => chosen[k]).map((k) => {
      const [kind, value] = describeTopic(`${k}:${chosen[k]}`);
      return followToggle(`${k}:${chosen[k]}`, L(`关注${kind}：${value}`, `Follow ${kind.toLowerCase()}: ${value}`));
    }));
  }

  function changed(name, value) {
    if (chosen[name] === value) return;
    chosen[name] = value;
    if (name === 'category') fillStages();
    const query = new URLSearchParams(Object.entries(chosen).filter(([, v]) => v));
    history.replaceState(null, '', query.toString() ? `/?${query}` : '/');
    showFollows();
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
      if (movesStage(event.stage)) item.querySelector('.stage').textContent = stageName(event.stage);
      const title = event.stage === 'amended' ? event.data?.changes?.title : null;
      if (typeof title === 'string') item.querySelector('.title').textContent = title;
      item.querySelector('.updated').textContent = L('最近动态 ', 'Latest ') + when(event.published_at);
      item.classList.add('is-new');
    });
  }));

  showFollows();
  await page(true);
}

function row(project) {
  return h('li', { 'data-project': project.id },
    h('a', { class: 'card', href: `/p/${encodeURIComponent(project.id)}`, 'data-testid': 'project-link' },
      h('span', { class: 'title' }, project.title),
      h('span', { class: 'meta' }, h('span', { class: 'stage' }, stageName(project.stage)), ' ', categoryName(project.category)),
      h('span', { class: 'meta muted updated' }, L('最近动态 ', 'Latest ') + when(project.updated_at)),
      h('span', { class: 'meta muted' }, [project.id, agencyName(project.agency), regionName(project.region)].filter(Boolean).join(' · '),
        project.budget != null ? ` · ${L('预算', 'Budget')} ${money(project.budget, project.currency)}` : '')));
}
