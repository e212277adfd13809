// What this device asked and requested (回应): its enquiries about projects
// (咨询) and its disclosure requests to agencies (依申请公开).
//
// There are no accounts: the ticket each case got when it was filed is the
// only key to it, shown once in the server's answer. So this device keeps it,
// with what it last heard of the case, in localStorage 'sunbid.cases' (like
// the follows and the channels' manage tokens; another tab hears of a change
// through the 'storage' event). Forgetting a case forgets its ticket: nothing
// can show that case here again. What the server has erased after the case
// closed (the asker's own text) is dropped here too.
import { ApiError, request } from './api.js';
import { L } from './i18n.js';

const KEY = 'sunbid.cases';
const DEVICE = 'sunbid.device';
export const ENQUIRY = 'enquiry';
export const REQUEST = 'disclosure_request';
const ID = { [ENQUIRY]: /^q[a-z2-7]{12}$/, [REQUEST]: /^r[a-z2-7]{12}$/ };
const PATHS = { [ENQUIRY]: '/api/enquiries', [REQUEST]: '/api/disclosure-requests' };
// What the server's view of a case may carry; anything else it says is not kept.
const VIEW = ['status', 'due', 'closed_at', 'question', 'subject', 'description', 'answer', 'reason',
  'rating', 'extension', 'reply', 'overdue', 'erased', 'agency', 'project', 'asked_at', 'received_at'];
export const changes = new EventTarget();
/** How an agency may answer a disclosure request, in words. */
export const OUTCOMES = () => ({
  granted: L('予以公开', 'Granted'),
  partly_granted: L('部分公开', 'Partly granted'),
  refused: L('不予公开', 'Refused'),
  not_held: L('信息不存在', 'Not held'),
  not_ours: L('非本机关掌握', 'Held by another body'),
});

const isCase = (c) => typeof c?.id === 'string' && ID[c.kind]?.test(c.id) && typeof c.ticket === 'string' && c.ticket.length > 0;

function read() {
  try {
    const stored = JSON.parse(localStorage.getItem(KEY) || '[]');
    return Array.isArray(stored) ? stored.filter(isCase) : [];
  } catch {
    return []; // damaged: nothing to show, and nothing can be made up
  }
}

let kept = read();

/** Every case kept here, newest first. */
export const list = () => kept.map((c) => ({ ...c }));
export const get = (id) => {
  const found = kept.find((c) => c.id === id);
  return found ? { ...found } : null;
};
/** This device's enquiries about one project, newest first. */
export const ofProject = (project) => list().filter((c) => c.kind === ENQUIRY && c.project === project);
const isOpen = (c) => (c.kind === ENQUIRY ? c.status === 'open' : c.status !== 'replied');

/**
 * The topics this device's notifications need besides its follows: each
 * enquiry still waiting for its answer (`enquiry:<id>`: Web Push follows it,
 * no stream does; the ticket is not needed to be told an answer was published).
 */
export const topics = () => kept.filter((c) => c.kind === ENQUIRY && isOpen(c)).map((c) => `enquiry:${c.id}`);

function save(next) {
  kept = next;
  localStorage.setItem(KEY, JSON.stringify(kept));
  changes.dispatchEvent(new Event('change'));
}

function update(id, view) {
  const found = get(id);
  if (!found) return null;
  const next = { ...found, checked_at: new Date().toISOString(), gone: false };
  for (const key of VIEW) if (key in view) next[key] = view[key];
  if (view.erased) {
    // Erased on the server once the case closed: not kept here either.
    if (found.kind === ENQUIRY) next.question = null;
    else next.description = null;
  }
  save(kept.map((c) => (c.id === id ? next : c)));
  return next;
}

export const forget = (id) => save(kept.filter((c) => c.id !== id));

// Another tab filed, heard of or forgot a case.
addEventListener('storage', (event) => {
  if (event.key !== KEY) return;
  kept = read();
  changes.dispatchEvent(new Event('change'));
});

/**
 * A random id for this device, made once: public writes carry it
 * (`X-Device-Id`), so the server can limit one device without limiting
 * everyone behind the same address. It names no person and nothing else.
 */
function deviceId() {
  let id = localStorage.getItem(DEVICE);
  if (!/^[A-Za-z0-9_-]{8,64}$/.test(id ?? '')) {
    const bytes = crypto.getRandomValues(new Uint8Array(16));
    id = btoa(String.fromCharCode(...bytes)).replace(/\+/g, '-').replace(/\//g, '_').replace(/=+$/, '');
    localStorage.setItem(DEVICE, id);
  }
  return id;
}
const device = () => ({ 'X-Device-Id': deviceId() });

/**
 * One Idempotency-Key per thing filed, kept until the server has answered:
 * sending the same question again after a lost answer (a tunnel, a lift)
 * gets the case already filed and its ticket, not a second case.
 */
const unanswered = new Map();
function once(body) {
  const what = JSON.stringify(body);
  if (!unanswered.has(what)) unanswered.set(what, randomKey());
  return { what, headers: { ...device(), 'Idempotency-Key': unanswered.get(what) } };
}
function randomKey() {
  const bytes = crypto.getRandomValues(new Uint8Array(16));
  return Array.from(bytes, (b) => b.toString(16).padStart(2, '0')).join('');
}
const ticketOf = (c) => ({ 'X-Ticket': c.ticket });

/** Ask about a project; resolves to the case kept, rejects with the server's ApiError. */
export async function ask(project, question, contact) {
  const body = { question };
  if (contact) body.contact = contact;
  const sent = once({ project, ...body });
  const { data } = await request('POST', `/api/projects/${encodeURIComponent(project)}/enquiries`, { body, headers: sent.headers });
  unanswered.delete(sent.what);
  const filed = {
    id: data.id, ticket: data.ticket, kind: ENQUIRY, project: data.project ?? project, question,
    status: data.status ?? 'open', due: data.due, asked_at: data.asked_at ?? new Date().toISOString(),
  };
  save([filed, ...kept.filter((c) => c.id !== filed.id)]);
  return filed;
}

/** Request information from an agency (依申请公开); the contact is sent, never kept here. */
export async function file({ agency, subject, description, contact }) {
  const body = { agency, subject, description, contact };
  const sent = once(body);
  const { data } = await request('POST', PATHS[REQUEST], { body, headers: sent.headers });
  unanswered.delete(sent.what);
  const filed = {
    id: data.id, ticket: data.ticket, kind: REQUEST, agency: data.agency ?? agency, subject, description,
    status: data.status ?? 'received', due: data.due, received_at: data.received_at ?? new Date().toISOString(),
  };
  save([filed, ...kept.filter((c) => c.id !== filed.id)]);
  return filed;
}

/**
 * The server's view of a case, with its ticket, kept here. A 404 (unknown
 * id or a ticket it no longer takes: the server does not say which) marks
 * the case `gone` rather than forgetting it: only the person forgets it.
 */
export function refresh(id) {
  // One request per case at a time: the page, the start-up check and a push may all ask.
  if (!checking.has(id)) checking.set(id, check(id).finally(() => checking.delete(id)));
  return checking.get(id);
}
const checking = new Map();

async function check(id) {
  const found = get(id);
  if (!found) return null;
  try {
    const { data } = await request('GET', `${PATHS[found.kind]}/${id}`, { headers: ticketOf(found) });
    return get(id) ? update(id, data) : null;
  } catch (error) {
    if (error instanceof ApiError && error.status === 404 && get(id)) {
      save(kept.map((c) => (c.id === id ? { ...c, gone: true } : c)));
      return get(id);
    }
    throw error;
  }
}

/** 1–5 for an answered enquiry, once; already rated: the server's rating is shown. */
export async function rate(id, score, comment) {
  const found = get(id);
  if (!found) return null;
  const body = { score };
  if (comment) body.comment = comment;
  try {
    const { data } = await request('POST', `${PATHS[ENQUIRY]}/${id}/rating`, { body, headers: { ...ticketOf(found), ...device() } });
    return update(id, { rating: data });
  } catch (error) {
    if (error instanceof ApiError && error.code === 'already_rated') return refresh(id);
    throw error;
  }
}

/** Ask again about every enquiry still waiting (of `project`, when given); failures wait for the next time. */
export function recheck(project = null) {
  const waiting = kept.filter((c) => c.kind === ENQUIRY && isOpen(c) && (!project || c.project === project));
  return Promise.all(waiting.map((c) => refresh(c.id).catch(() => null)));
}

/**
 * A published event heard live: an answer to one of this device's enquiries
 * is kept at once (the server's view follows when a page asks for it).
 */
export function heard(event) {
  if (event?.stage !== 'enquiry_answer') return false;
  const id = event.data?.enquiry;
  const found = typeof id === 'string' ? get(id) : null;
  if (!found || found.status === 'answered') return false;
  update(id, {
    status: 'answered',
    closed_at: event.published_at,
    answer: { seq: event.seq, question: event.data.question, answer: event.data.answer, published_at: event.published_at },
  });
  return true;
}
