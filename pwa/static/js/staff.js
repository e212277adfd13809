// The staff session and what the publish form needs to know: where the token
// is kept, which data fields a stage asks for, and API refusals in plain words.
import { L, pick, locale } from './i18n.js';
import { stageName, isRecord } from './vocab.js';

const TOKEN = 'sunbid.token';
const AGENCY = 'sunbid.agency';
// Statutory times are Beijing time; a datetime-local field has no zone, so it gets this one.
export const BEIJING = '+08:00';

// The token stays for this browser session only, unless the person asks this
// device to remember it; it never goes anywhere but the Authorization header.
const storages = () => [sessionStorage, localStorage];
export const savedToken = () => storages().map((s) => s.getItem(TOKEN)).find(Boolean) ?? null;
export const savedAgency = () => storages().map((s) => s.getItem(AGENCY)).find(Boolean) ?? '';

export function keep(token, remember) {
  const [session, device] = storages();
  (remember ? device : session).setItem(TOKEN, token);
  (remember ? session : device).removeItem(TOKEN);
}

export function keepAgency(agency) {
  const store = localStorage.getItem(TOKEN) ? localStorage : sessionStorage;
  if (agency) store.setItem(AGENCY, agency);
  else storages().forEach((s) => s.removeItem(AGENCY));
}

export function forget() {
  for (const store of storages()) {
    store.removeItem(TOKEN);
    store.removeItem(AGENCY);
  }
}

// Role names as the people holding them say them, without the API's codes.
export const roleName = (role) =>
  ({ publisher: L('发布人员', 'Publisher'), supervisor: L('监督人员', 'Supervisor'), admin: L('系统管理员', 'Administrator') })[role] ?? role;

/** A datetime-local value as RFC 3339 in Beijing time. */
export const beijing = (value) => `${value.length === 16 ? `${value}:00` : value}${BEIJING}`;

// --- what a stage carries, from the vocabulary (GET /api/categories) -----------------

/** A category's publishable stages, each named as that category names it. */
export const stagesFor = (vocabulary, category) =>
  (vocabulary?.items?.find((c) => c.code === category)?.stages ?? [])
    .filter((s) => !isRecord(s.code));

/** A stage's name in a category (出让公告 for a land sale's notice), else its generic name. */
export const stageLabel = (vocabulary, category, code) =>
  pick(stagesFor(vocabulary, category).find((s) => s.code === code)?.name) || stageName(code);

// Before the vocabulary described its fields: what the form asked for then.
const USUAL = {
  notice: ['deadline'],
  contract: ['signed_at'],
  penalty: ['decided_at'],
  award: ['winner', 'amount'],
  correction: ['corrects'],
};
const KINDS = { winner: 'text', amount: 'amount', corrects: 'event' };
const LABELS = () => ({
  deadline: L('投标截止时间', 'Bid deadline'),
  signed_at: L('合同签订时间', 'Contract signed'),
  decided_at: L('处罚决定时间', 'Decision date'),
  winner: L('中标/成交人', 'Winner'),
  amount: L('中标/成交金额', 'Amount'),
  corrects: L('更正的信息', 'Corrects'),
});

/** {name, kind, label, unit}: a data key as the vocabulary describes it; unknown keys show as written. */
export function describeField(vocabulary, name) {
  const known = vocabulary?.fields?.[name];
  const kind = known?.kind ?? KINDS[name] ?? (/_(at|ends|starts|deadline)$|^deadline$/.test(name) ? 'datetime' : 'text');
  return {
    name,
    kind,
    label: pick(known) || LABELS()[name] || name,
    // An amount is money in the project's currency, yuan, unless the vocabulary names a unit.
    unit: pick(known?.unit) || (kind === 'amount' ? L('元', 'yuan') : ''),
  };
}

/**
 * The data fields of a stage in a category, in display order, each with
 * `required`. From the vocabulary's `fields` and `required` when it has them;
 * otherwise the usual ones plus every `<stage>.data.<field>` the category's
 * time-limit rules read (without those the watchdog cannot check the deadline).
 */
export function fieldsFor(vocabulary, category, stage, rules) {
  const entry = stagesFor(vocabulary, category).find((s) => s.code === stage);
  if (Array.isArray(entry?.fields)) {
    const required = new Set(entry.required ?? []);
    return [...new Set([...(entry.required ?? []), ...entry.fields])]
      .map((name) => ({ ...describeField(vocabulary, name), required: required.has(name) }));
  }
  const needed = new Set();
  for (const rule of rules) {
    if (rule.category !== category && rule.category !== 'all') continue;
    for (const ref of [rule.trigger, rule.target]) {
      const [refStage, kind, field] = ref.split('.');
      if (refStage === stage && kind === 'data' && field) needed.add(field);
    }
  }
  return [...new Set([...(USUAL[stage] ?? []), ...needed])].map((name) => ({
    ...describeField(vocabulary, name),
    required: needed.has(name) || name === 'corrects',
  }));
}

/** A form value as the API takes it, by the field's kind. */
export function valueOf(kind, value) {
  switch (kind) {
    case 'datetime': return beijing(value);
    case 'amount': case 'number': case 'percent': case 'integer': case 'event': return Number(value);
    case 'boolean': return value === 'true';
    case 'list': return value.split('\n').map((line) => line.trim()).filter(Boolean);
    default: return value; // text, date (YYYY-MM-DD as the input gives it)
  }
}

/** A published value for people, exactly as published: numbers are not rounded. */
export function showValue(f, value, stageOf = (code) => code, timeline = []) {
  if (value == null) return '—';
  if (f.kind === 'datetime' && typeof value === 'string') return `${value.slice(0, 10)} ${value.slice(11, 16)}`;
  if (f.kind === 'boolean') return value ? L('是', 'Yes') : L('否', 'No');
  if (f.kind === 'event') {
    const event = timeline.find((e) => e.seq === value);
    return `#${value}${event ? ` ${stageOf(event.stage)} ${event.title}` : ''}`;
  }
  if (typeof value === 'number') {
    const exact = value.toLocaleString(locale(), { maximumFractionDigits: 20 });
    return f.unit ? `${exact} ${f.unit}` : exact;
  }
  if (Array.isArray(value)) return value.map((v) => (typeof v === 'object' ? JSON.stringify(v) : String(v))).join(L('、', ', '));
  return typeof value === 'object' ? JSON.stringify(value) : String(value);
}

/**
 * How bad a statutory warning is, in words: a minimum period left too short
 * is 时限不足 (the rule's kind is at_least), not 已超期.
 */
export function warningLevel(w, rules = []) {
  const rule = rules.find((r) => r.id === w.rule);
  if (w.level === 'breach' && (rule?.kind === 'at_least' || w.kind === 'at_least' || w.state === 'too_short')) return L('时限不足', 'Period too short');
  return ({ approaching: L('即将到期', 'Approaching'), breach: L('已超期', 'Breach'), data_incomplete: L('资料不全', 'Data incomplete') })[w.level] ?? w.level;
}

const FIELD_NAMES = () => ({
  id: L('项目编号', 'Project code'),
  title: L('标题', 'Title'),
  category: L('类别', 'Category'),
  agency: L('机构', 'Agency'),
  region: L('地区', 'Region'),
  budget: L('预算', 'Budget'),
  stage: L('阶段', 'Stage'),
  body: L('正文', 'Text'),
  occurred_at: L('发生时间', 'Occurred at'),
  currency: L('币种', 'Currency'),
  must_tender: L('依法必须招标', 'Tender required by law'),
  reason: L('变更原因', 'Reason'),
});
export const fieldName = (name) =>
  name.startsWith('data.') ? describeField(null, name.slice(5)).label : FIELD_NAMES()[name] ?? name;

/** {field, text}: what went wrong, for the person at the form, and which field it concerns. */
export function explain(error, stageNames = (codes) => codes.join('、')) {
  const details = error.details ?? {};
  const field = details.field ?? null;
  switch (error.status) {
    case 0: return { field: null, text: L('连不上服务器，没有保存。网络恢复后再点一次即可，不会重复发布。', 'Cannot reach the server; nothing was saved. Try again when the network is back: it will not be published twice.') };
    case 401: return { field: null, text: L('令牌无效或已被撤销，请重新登录。', 'The token is unknown or revoked; sign in again.') };
    case 403: return { field: null, text: L('这个令牌无权为该机构操作：发布人员只能为本机构的项目发布或变更信息，监督人员不能。', 'This token may not act for that agency: publishers publish and amend only for their own agency, supervisors not at all.') };
    case 404: return { field: null, text: L('没有找到这个项目，可能编号有误。请刷新项目列表后再试。', 'There is no such project; the code may be wrong. Reload the list and try again.') };
    case 409: return error.code === 'project_exists'
      ? { field: 'id', text: L('这个项目编号已经存在，请换一个。', 'A project with this code exists; choose another.') }
      : { field: null, text: L('这次提交与上一次的内容不同，请再点一次。', 'This differs from the earlier attempt; submit again.') };
    case 413: return { field: null, text: L('内容太长了，请精简正文。', 'Too long; shorten the text.') };
    case 429: return { field: null, text: L(`操作太频繁，请 ${error.retryAfter ?? '几'} 秒后再试。`, `Too many requests; try again in ${error.retryAfter ?? 'a few'} s.`) };
    case 503: return { field: null, text: L('服务器暂时无法保存，没有发布任何内容，请稍后再试。', 'The server cannot save right now; nothing was published. Try again shortly.') };
  }
  if (error.status === 422) {
    if (error.code === 'invalid_stage') {
      return { field: 'stage', text: L(`这个项目的类别不能发布该阶段。可选：${stageNames(details.allowed ?? [])}`, `This project's category does not have that stage. Allowed: ${stageNames(details.allowed ?? [])}`) };
    }
    const hints = {
      id: L('只能用字母、数字和 . _ -，最多 64 个字符。', 'Letters, digits and . _ - only, at most 64.'),
      agency: L('请从列表中选择机构。', 'Choose an agency from the list.'),
      region: L('请从列表中选择地区。', 'Choose a region from the list.'),
      title: L('请填写标题，最多 200 字。', 'Fill in a title of at most 200 characters.'),
      budget: L('请填写不小于 0 的数字（元）。', 'Enter a number, 0 or more (yuan).'),
      currency: L('请填写三位大写字母的币种代码，如 CNY。', 'Enter a three-letter code in capitals, such as CNY.'),
      reason: L(`请填写简短的变更原因（${error.message}）。`, `Give a short reason for the change (${error.message}).`),
      body: L('正文最多 20000 字。', 'At most 20,000 characters.'),
      occurred_at: L('请填写完整的日期和时间。', 'Enter a full date and time.'),
      'data.corrects': L('请填写本项目一条已发布信息的序号（#后面的数字）。', 'Enter the number (#) of an earlier item of this project.'),
    };
    if (field) return { field, text: `${fieldName(field)}：${hints[field] ?? error.message}` };
  }
  return { field, text: L('服务器没有接受：', 'The server did not accept this: ') + error.message };
}

/** A key that makes a retried submission safe: the same until the form changes or succeeds. */
export function newKey() {
  const bytes = crypto.getRandomValues(new Uint8Array(16));
  return [...bytes].map((b) => b.toString(16).padStart(2, '0')).join('');
}
