// The categories and their stages (GET /api/categories) and the directory of
// agencies and regions (GET /api/directory), loaded once and kept offline like
// any other data. Every page names stages, categories, agencies and regions with it.
import { load } from './api.js';
import { pick, L } from './i18n.js';

let categories = [];
const stages = new Map();
// Each category's own stage entries: its own names (a land sale's notice is 出让公告),
// its facts in display order, the facts a publication must carry.
const ownStages = new Map();
let fields = {};
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
  fields = vocab.data.fields ?? {};
  stages.clear(); // loaded again: names may have changed
  ownStages.clear();
  const names = new Map(); // stage code → its distinct names across categories
  for (const category of categories) {
    ownStages.set(category.code, new Map(category.stages.map((s) => [s.code, s])));
    for (const stage of category.stages) {
      if (!stages.has(stage.code)) stages.set(stage.code, { ...stage });
      const seen = names.get(stage.code) ?? new Map();
      seen.set(stage.name?.zh, stage.name);
      names.set(stage.code, seen);
    }
  }
  // Without a category (the list's filter over every category), a stage that each
  // category names its own way is called by all its names at once.
  for (const [code, seen] of names) {
    if (seen.size < 2) continue;
    const all = [...seen.values()];
    stages.get(code).name = { zh: all.map((n) => n?.zh).join(' / '), en: [...new Set(all.map((n) => n?.en))].join(' / ') };
  }
  if (directory) {
    ({ agencies, regions } = directory.data);
    for (const a of agencies) places.agency.set(a.code, a);
    for (const r of regions) places.region.set(r.code, r);
  }
}

export const allCategories = () => categories;
export const category = (code) => categories.find((c) => c.code === code);
export const categoryName = (code) => pick(category(code)?.name) || code;
/** A stage's name: the category's own (出让公告 for a land sale's notice) when the category is given. */
export const stageName = (code, categoryCode) => (code
  ? pick(ownStages.get(categoryCode)?.get(code)?.name) || pick(stages.get(code)?.name) || (OWN_NAMES[code] ? L(...OWN_NAMES[code]) : code)
  : L('尚未发布', 'Nothing published yet'));
/** The facts a stage carries in a category, in the order they are shown ([] when the vocabulary has none). */
export const stageFields = (categoryCode, code) => ownStages.get(categoryCode)?.get(code)?.fields ?? [];
/** The directory's agencies and regions, as listed there: [{code, zh, en, …}]. */
export const allAgencies = () => agencies;
export const allRegions = () => regions;
/** An agency's or region's name in the current language; its code when the directory has none. */
export const agencyName = (code) => pick(places.agency.get(code)) || code || '';
export const regionName = (code) => pick(places.region.get(code)) || code || '';
export const isOversight = (code) => Boolean(stages.get(code)?.oversight);
// Stages that record the project itself — its registration, each amendment
// of its details, an answer to a public enquiry — rather than a step of the
// transaction: in every category's list, yet never the project's stage, never
// "what comes next", and never published through the publish form (only POST
// and PATCH /api/projects and the enquiry's answer endpoint append them).
const RECORDS = new Set(['registered', 'amended', 'enquiry_answer']);
// Their names for a vocabulary that does not list them yet.
const OWN_NAMES = { enquiry_answer: ['咨询答复', 'Answer to an enquiry'] };
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

// The facts staff put in an event's `data`, as the vocabulary describes them
// (GET /api/categories `fields`): name, kind, unit, whether it is a key date.
/** A data key's entry in the vocabulary, or null for a key it does not know. */
export const fieldOf = (key) => fields[key] ?? null;
/** A data key's name in the current language; the key itself when the vocabulary does not know it. */
export const dataLabel = (key) => pick(fields[key]) || key;
/** A data key's unit in the current language ('' without one). */
export const fieldUnit = (key) => pick(fields[key]?.unit);
/** The data keys that are dates bidders plan by, and the one that closes the bidding window. */
export const keyDateFields = () => Object.keys(fields).filter((key) => fields[key].key_date);
export const closesFields = () => Object.keys(fields).filter((key) => fields[key].closes);
/** What a key date is called where it matters (投标截止, 挂牌截止…). */
export const keyDateName = (key) => pick(fields[key]?.key_date) || dataLabel(key);
