// `/catalog`: the disclosure catalogue (公开事项标准目录), the statutory time
// limits, and each agency's public scorecard.
import { h, when, showingCopy, failure } from '../ui.js';
import { L } from '../i18n.js';
import { load } from '../api.js';
import { allCategories, categoryName, stageName, agencyName } from '../vocab.js';

export default async function catalog(main, ctx) {
  main.replaceChildren(h('h1', { tabindex: -1 }, L('公开目录与考核', 'Catalogue and scorecard')),
    h('p', { class: 'lead' }, L('每类交易必须公开哪些信息、依据什么、多久内公开；各机构是否按时做到。',
      'What each kind of transaction must disclose, on what basis and how soon — and whether each agency does so on time.')));
  let answers;
  try {
    answers = await Promise.all([load('/api/compliance', 'compliance'), load('/api/catalog', 'catalog')]);
  } catch (error) {
    if (!ctx.signal.aborted) main.append(failure(error, () => catalog(main, ctx)));
    return;
  }
  if (ctx.signal.aborted) return;
  const [score, items] = answers.map((a) => a.data);
  showingCopy(answers.find((a) => a.cached)?.cached ?? null);

  const list = h('ul', { class: 'catalog', 'data-testid': 'catalog' });
  const filter = h('select', { id: 'c-category' }, h('option', { value: '' }, L('全部类别', 'All categories')),
    allCategories().map((c) => h('option', { value: c.code }, categoryName(c.code))));
  const fill = () => list.replaceChildren(...items.items
    .filter((item) => !filter.value || item.categories.includes(filter.value))
    .map(catalogItem));
  filter.addEventListener('change', fill);
  fill();

  main.append(
    h('section', { 'aria-labelledby': 'h-score' },
      h('h2', { id: 'h-score' }, L('各机构按时公开情况', 'On-time disclosure by agency')),
      h('p', { class: 'small muted' }, L(`统计截至 ${when(score.as_of)}`, `As of ${when(score.as_of)}`)),
      h('ul', { class: 'scorecard', 'data-testid': 'scorecard' },
        score.agencies.length ? score.agencies.map(agency) : h('li', null, L('暂无数据。', 'No data yet.')))),
    h('section', { 'aria-labelledby': 'h-catalog' },
      h('h2', { id: 'h-catalog' }, L('公开事项标准目录', 'Disclosure catalogue')),
      h('div', { class: 'field' }, h('label', { for: 'c-category' }, L('类别', 'Category')), filter),
      list),
    h('section', { 'aria-labelledby': 'h-rules' },
      h('h2', { id: 'h-rules' }, L('法定时限规则', 'Statutory time limits')),
      h('details', null, h('summary', null, L(`查看全部 ${items.rules.length} 条规则`, `Show all ${items.rules.length} rules`)),
        h('ul', { class: 'rules' }, items.rules.map(rule)))),
  );
}

function agency(a) {
  const rate = a.on_time_rate == null ? null : Math.round(a.on_time_rate * 100);
  return h('li', { class: 'score' },
    h('h3', null, agencyName(a.agency)),
    h('p', null, rate == null ? L('尚无到期事项', 'Nothing due yet') : [
      h('strong', { class: rate < 90 ? 'bad' : 'good' }, `${rate}%`), L(' 按时公开', ' on time')]),
    rate != null && h('meter', { min: 0, max: 100, value: rate, 'aria-label': L('按时率', 'On-time rate') }),
    h('p', { class: 'small' }, L(
      `应公开 ${a.due} 项：按时 ${a.on_time}，逾期 ${a.late}，超期未公开 ${a.open_breaches}`,
      `${a.due} due: ${a.on_time} on time, ${a.late} late, ${a.open_breaches} overdue and open`)));
}

function catalogItem(item) {
  const row = (term, value) => value && [h('dt', null, term), h('dd', null, value)];
  return h('li', null, h('details', null,
    h('summary', null, h('span', { class: 'title' }, item.name.at(-1)), h('span', { class: 'small muted' }, ` ${item.time_limit}`)),
    h('dl', { class: 'data' },
      row(L('事项', 'Item'), item.name.join(' › ')),
      row(L('公开内容', 'Content'), item.content),
      row(L('公开依据', 'Basis'), item.basis),
      row(L('公开时限', 'Time limit'), item.time_limit),
      row(L('公开主体', 'Responsible'), item.body),
      row(L('公开渠道', 'Channel'), item.channel),
      row(L('公开对象', 'Audience'), item.audience),
      row(L('公开方式', 'Mode'), item.mode),
      row(L('公开层级', 'Level'), item.level?.join('、')),
      row(L('相关阶段', 'Stages'), item.stages?.map(stageName).join('、')),
      row(L('编号', 'Code'), item.code))));
}

function rule(r) {
  const unit = r.unit === 'workday' ? L('个工作日', ' working days') : L('日', ' days');
  return h('li', null,
    h('p', null, h('strong', null, r.category === 'all' ? L('全部类别', 'All categories') : categoryName(r.category)), ' ', h('span', { lang: 'zh-CN' }, r.name)),
    h('p', { class: 'small muted' },
      `${r.kind === 'due_within' ? L('不超过', 'within') : L('不少于', 'at least')} ${r.amount}${unit} · `,
      h('span', { lang: 'zh-CN' }, r.basis)));
}
