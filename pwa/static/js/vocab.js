// The categories and their stages (GET /api/categories) and the directory of
// agencies and regions (GET /api/directory), loaded once and kept offline like
// any other data. Every page names stages, categories, agencies and regions with it.
import { load } from './api.js';
import { pick, L } from './i18n.js';

let categories = [];
const stages = new Map();
let agencies = [];
let regions = [];
const places = { agency: new Map(), region: new Map() };

export async function loadVocab({ again = false } = {}) {
  if (categories.length && !again) return;
  // The directory only adds names: without it every agency and region shows its code.
  const [vocab, directory] = await Promise.all([
    load('/api/categories', 'categories'),
    load('/api/directory', 'directory').catch(() => null),
  ]);
  categories = vocab.data.items;
  for (const category of categories) for (const stage of category.stages) stages.set(stage.code, stage);
  if (directory) {
    ({ agencies, regions } = directory.data);
    for (const a of agencies) places.agency.set(a.code, a);
    for (const r of regions) places.region.set(r.code, r);
  }
}

export const allCategories = () => categories;
export const category = (code) => categories.find((c) => c.code === code);
export const categoryName = (code) => pick(category(code)?.name) || code;
export const stageName = (code) => (code ? pick(stages.get(code)?.name) || code : L('尚未发布', 'Nothing published yet'));
/** The directory's agencies and regions, as listed there: [{code, zh, en, …}]. */
export const allAgencies = () => agencies;
export const allRegions = () => regions;
/** An agency's or region's name in the current language; its code when the directory has none. */
export const agencyName = (code) => pick(places.agency.get(code)) || code || '';
export const regionName = (code) => pick(places.region.get(code)) || code || '';
export const isOversight = (code) => Boolean(stages.get(code)?.oversight);
// Stages that record the project itself — its registration and each amendment
// of its details — rather than a step of the transaction: in every category's
// list, yet never the project's stage, never "what comes next", and never
// published through the publish form (only POST and PATCH /api/projects append them).
const RECORDS = new Set(['registered', 'amended']);
export const isRecord = (code) => RECORDS.has(code) || Boolean(stages.get(code)?.record);
/** Whether an event of this stage becomes the project's current stage. */
export const movesStage = (code) => Boolean(code) && !isOversight(code) && !isRecord(code);
/** Every stage a project of this category may publish: its lifecycle in order, then oversight. */
export const stagesOf = (code) => (category(code)?.stages ?? []).filter((s) => !isRecord(s.code));
export const lifecycle = (code) => stagesOf(code).filter((s) => !s.oversight).map((s) => s.code);
// Stages a transaction may well skip: shown among the next ones as "if any",
// and not proposed as the next stage to publish.
const OPTIONAL = new Set(['plan', 'prequalification', 'clarification']);
export const isOptional = (code) => OPTIONAL.has(code);
/** The stage that usually follows `stage` (null: nothing published yet) in a category. */
export function nextStage(categoryCode, stage) {
  const order = lifecycle(categoryCode);
  return order.slice(order.indexOf(stage) + 1).find((s) => !OPTIONAL.has(s)) ?? null;
}
/** Every stage of every category, lifecycle ones first (for the list's stage filter). */
export const everyStage = () => [...stages.values()].filter((s) => !isRecord(s.code)).sort((a, b) => a.oversight - b.oversight);

// Names for the facts staff put in an event's `data`. Unknown keys show as written.
const DATA = {
  deadline: ['投标截止/开标时间', 'Bid deadline / opening'],
  submission_deadline: ['申请截止时间', 'Application deadline'],
  signed_at: ['合同签订时间', 'Contract signed'],
  listing_ends: ['挂牌截止时间', 'Listing ends'],
  publicity_ends: ['公示截止时间', 'Publicity ends'],
  decided_at: ['处罚决定时间', 'Decision date'],
  received_at: ['收到时间', 'Received'],
  accepted_at: ['验收时间', 'Accepted'],
  auction_starts: ['挂牌/竞价开始', 'Auction starts'],
  auction_at: ['竞价时间', 'Auction time'],
  corrects: ['更正的信息', 'Corrects'],
  winner: ['中标/成交人', 'Winner'],
  amount: ['中标/成交金额', 'Amount'],
  candidates: ['中标候选人', 'Candidates'],
  bidders: ['投标人数', 'Bidders'],
  method: ['方式', 'Method'],
  qualification: ['资格要求', 'Qualification'],
  max_price: ['最高限价', 'Price cap'],
  start_price: ['起始价', 'Starting price'],
  final_price: ['成交价', 'Final price'],
  lowest_price: ['最低报价', 'Lowest bid'],
  highest_price: ['最高报价', 'Highest bid'],
  bid_bond: ['投标保证金', 'Bid bond'],
  deposit: ['保证金', 'Deposit'],
  budget: ['预算', 'Budget'],
  title: ['项目名称', 'Title'],
  currency: ['币种', 'Currency'],
  region: ['地区', 'Region'],
  must_tender: ['依法必须招标', 'Tender required by law'],
  fine: ['罚款', 'Fine'],
  party: ['当事人', 'Party'],
  authority: ['处理机关', 'Authority'],
  result: ['结果', 'Result'],
  reason: ['原因', 'Reason'],
  status: ['状态', 'Status'],
  subject: ['事项', 'Subject'],
  duration_days: ['工期/期限（天）', 'Duration (days)'],
  experts: ['评审专家人数', 'Experts'],
  valid_bids: ['有效投标', 'Valid bids'],
  rejected: ['被否决投标', 'Rejected bids'],
  number: ['编号', 'Number'],
  deadline_changed: ['截止时间是否变更', 'Deadline changed'],
  schedule_changed: ['日程是否变更', 'Schedule changed'],
  field: ['更正的内容', 'Field corrected'],
  was: ['原为', 'Was'],
  now: ['更正为', 'Now'],
  evaluation: ['评标办法', 'Evaluation method'],
  items: ['采购内容', 'Items'],
  parcel: ['地块编号', 'Parcel'],
  use: ['用途', 'Use'],
  area_m2: ['面积（平方米）', 'Area (m²)'],
  area_mu: ['面积（亩）', 'Area (mu)'],
  lease_years: ['租期（年）', 'Lease (years)'],
  term_years: ['期限（年）', 'Term (years)'],
  progress: ['进度', 'Progress'],
  grade: ['评价', 'Grade'],
  rounds: ['竞价轮次', 'Bidding rounds'],
};
export const dataLabel = (key) => (DATA[key] ? L(...DATA[key]) : key);
