// consult.js - consultation requests (issue 18, 远程会诊) on the doctor's
// workstation: from a live visit the attending doctor requests a
// consultation with a department (or a named specialist of it); the list of
// requests to the doctor's department, each to schedule, propose another
// time or decline; the doctor's own requests, where a proposed time is
// accepted or declined; a card to join when a consultation's visit starts;
// and the specialist's opinion, signed like a note. REST for the requests
// (docs/api.md), signaling for the pushes; doctor.js owns the visit view
// and is reached through window.tm.

import { t, fmtDateTime, codeText } from './i18n.js';
import { api } from './signaling.js';
import { $, el, getToken, announce, errText } from './common.js';

const token = getToken();
const cs = { incoming: [], outgoing: [], departments: [], doctors: [], staff: new Map(), started: null };

function tm() { return window.tm; }
function me() { return (tm() && tm().state.hello && tm().state.hello.sub) || ''; }

if (token && document.body.dataset.page === 'doctor') mount();

function mount() {
  const side = $('.ws-side');
  if (!side || !tm()) return;
  side.append(el('section', { class: 'card', id: 'consult-card', 'aria-labelledby': 'consult-h' },
    el('h2', { id: 'consult-h', 'data-i18n': 'cons.title' }),
    el('button', { id: 'consult-new', class: 'btn', type: 'button', hidden: true, 'data-i18n': 'cons.request', onclick: openForm }),
    el('form', { id: 'consult-form', class: 'consult-form', hidden: true, novalidate: true, onsubmit: submitRequest }),
    el('h3', { id: 'consult-in-h', 'data-i18n': 'cons.incoming' }),
    el('p', { id: 'consult-in-empty', class: 'muted', 'data-i18n': 'cons.none' }),
    el('ul', { id: 'consult-incoming', class: 'people-list consult-list', 'aria-labelledby': 'consult-in-h' }),
    el('h3', { id: 'consult-out-h', 'data-i18n': 'cons.outgoing' }),
    el('p', { id: 'consult-out-empty', class: 'muted', 'data-i18n': 'cons.none' }),
    el('ul', { id: 'consult-outgoing', class: 'people-list consult-list', 'aria-labelledby': 'consult-out-h' })));
  const main = $('.ws-main');
  main.prepend(el('section', { id: 'consult-started', class: 'card invited', hidden: true, role: 'alertdialog', 'aria-labelledby': 'consult-started-h' },
    el('h2', { id: 'consult-started-h', 'data-i18n': 'cons.started_title' }),
    el('p', { id: 'consult-started-desc' }),
    el('div', { class: 'actions' },
      el('button', { id: 'consult-join', class: 'btn btn-primary', type: 'button', 'data-i18n': 'cons.join', onclick: () => join() }))));
  relabel();
  const sig = tm().sig;
  sig.on('consultation.updated', () => refresh());
  sig.on('consultation.started', onStarted);
  sig.addEventListener('hello', () => refresh());
  window.addEventListener('langchange', () => { relabel(); render(); });
  // The request button follows the visit doctor.js shows.
  setInterval(syncRequestButton, 1000);
  api(token, '/departments').then((r) => { cs.departments = r.departments || []; render(); }).catch(() => {});
  api(token, '/doctors').then((r) => { cs.doctors = r.doctors || []; render(); }).catch(() => {});
  refresh();
}

function relabel() {
  for (const n of document.querySelectorAll('#consult-card [data-i18n], #consult-started [data-i18n]')) n.textContent = t(n.dataset.i18n);
}

function doctorName(id) {
  return (cs.doctors.find((d) => d.id === id) || {}).name || id;
}

function deptName(id) {
  return (cs.departments.find((d) => d.id === id) || {}).name || id || t('common.none');
}

async function refresh() {
  try {
    const [inc, out] = await Promise.all([
      api(token, '/consultations?side=incoming'),
      api(token, '/consultations?side=outgoing'),
    ]);
    cs.incoming = inc.consultations || [];
    cs.outgoing = out.consultations || [];
    render();
  } catch { /* the next push or hello tries again */ }
}

function syncRequestButton() {
  const st = tm().state;
  const live = Boolean(st.visitId && !st.ended && st.myRole === 'attending');
  $('#consult-new').hidden = !live;
  if (!live) $('#consult-form').hidden = true;
}

/* ---- the lists ------------------------------------------------------ */

function render() {
  fill('#consult-incoming', '#consult-in-empty', cs.incoming, incomingItem);
  fill('#consult-outgoing', '#consult-out-empty', cs.outgoing, outgoingItem);
}

function fill(listSel, emptySel, rows, item) {
  const list = $(listSel);
  list.replaceChildren(...rows.map(item));
  $(emptySel).hidden = rows.length > 0;
}

function summary(c) {
  const when = c.slot_at ? t('cons.at', { when: fmtDateTime(c.slot_at) })
    : c.proposed_slot_at ? t('cons.proposed_at', { when: fmtDateTime(c.proposed_slot_at) })
      : t('cons.window', { from: fmtDateTime(c.window_start_at), to: fmtDateTime(c.window_end_at) });
  return el('div', { class: 'consult-sum' },
    el('strong', { text: t('cons.patient', { id: c.patient_id }) }), ' ',
    el('span', { class: `tag consult-urgency-${c.urgency}`, text: codeText('cons.urgency', c.urgency) }), ' ',
    el('span', { class: 'tag consult-state', text: codeText('cons.state', c.state) }),
    el('div', { class: 'muted', text: t('cons.route', { from: doctorName(c.requester_id), dept: deptName(c.dept_id) }) }),
    el('div', { text: t('cons.reason_is', { text: c.reason }) }),
    el('div', { text: t('cons.question_is', { text: c.question }) }),
    c.attachments.length ? el('div', { class: 'muted', text: t('cons.attachments_are', { list: c.attachments.join(', ') }) }) : null,
    el('div', { class: 'muted', text: when }),
    c.specialist_id ? el('div', { class: 'muted', text: t('cons.specialist_is', { name: doctorName(c.specialist_id) }) }) : null,
    c.decline_reason ? el('div', { class: 'notice notice-warn', text: t('cons.declined_why', { text: c.decline_reason }) }) : null);
}

function button(key, onclick, primary = false) {
  return el('button', { class: primary ? 'btn btn-small btn-primary' : 'btn btn-small', type: 'button', text: t(key), 'data-act': key, onclick });
}

function incomingItem(c) {
  const li = el('li', { class: 'consult-item', 'data-id': c.consultation_id }, summary(c));
  if (c.state === 'requested') {
    li.append(el('div', { class: 'actions' },
      button('cons.schedule', () => decide(li, c, 'schedule'), true),
      button('cons.propose', () => decide(li, c, 'propose')),
      button('cons.decline', () => declineForm(li, c))));
  }
  if (c.state === 'in_progress' && c.specialist_id === me()) {
    if (!inVisit(c)) li.append(el('div', { class: 'actions' }, button('cons.join', () => join(c), true)));
    li.append(opinionForm(c));
  }
  if (c.opinion_signed_at) li.append(el('div', { class: 'muted', text: t('cons.opinion_signed', { when: fmtDateTime(c.opinion_signed_at) }) }));
  return li;
}

function outgoingItem(c) {
  const li = el('li', { class: 'consult-item', 'data-id': c.consultation_id }, summary(c));
  const acts = el('div', { class: 'actions' });
  if (c.state === 'proposed') {
    acts.append(button('cons.accept_proposal', () => act(c, 'accept-proposal', {}), true),
      button('cons.decline_proposal', () => declineForm(li, c)));
  }
  if (['requested', 'proposed', 'scheduled'].includes(c.state)) acts.append(button('cons.cancel', () => act(c, 'cancel', {})));
  if (c.state === 'in_progress' && !inVisit(c)) acts.append(button('cons.join', () => join(c), true));
  if (acts.childElementCount) li.append(acts);
  return li;
}

async function act(c, step, body) {
  try {
    await api(token, `/consultations/${encodeURIComponent(c.consultation_id)}/${step}`, { method: 'POST', body });
    announce(t(`cons.done.${step}`));
    refresh();
    return true;
  } catch (e) {
    announce(t('common.error', { msg: errText(e) }), { kind: 'error' });
    return false;
  }
}

// The department's doctors, for a specialist to name.
async function specialists(dept) {
  if (!cs.staff.has(dept)) {
    try {
      const r = await api(token, `/doctors?dept=${encodeURIComponent(dept)}`);
      cs.staff.set(dept, (r.doctors || []).filter((d) => d.active && (d.kind || 'doctor') === 'doctor'));
    } catch { return []; }
  }
  return cs.staff.get(dept);
}

function localInput(id, ms) {
  const d = new Date(ms - new Date(ms).getTimezoneOffset() * 60000);
  return el('input', { id, type: 'datetime-local', value: d.toISOString().slice(0, 16), required: true });
}

function field(label, input) {
  return el('div', { class: 'field' }, el('label', { for: input.id, text: t(label) }), input);
}

async function decide(li, c, step) {
  li.querySelector('form')?.remove();
  const docs = await specialists(c.dept_id);
  const pick = el('select', { id: `cs-spec-${c.consultation_id}` },
    docs.map((d) => el('option', { value: d.id, text: d.name, selected: d.id === c.specialist_id })));
  const when = localInput(`cs-when-${c.consultation_id}`, Math.max(Date.now() + 3600e3, Date.parse(c.window_start_at)));
  const err = el('p', { class: 'error', role: 'alert', hidden: true });
  const form = el('form', { class: 'consult-decide', novalidate: true, onsubmit: async (e) => {
    e.preventDefault();
    const at = Date.parse(when.value);
    if (Number.isNaN(at) || at <= Date.now()) { err.textContent = t('cons.err_past'); err.hidden = false; return; }
    if (await act(c, step, { specialist_id: pick.value, slot_at: new Date(at).toISOString() })) form.remove();
  } }, field('cons.specialist', pick), field('cons.when', when), err,
  el('button', { class: 'btn btn-primary btn-small', type: 'submit', text: t(step === 'schedule' ? 'cons.schedule_ok' : 'cons.propose_ok') }));
  li.append(form);
  pick.focus();
}

function declineForm(li, c) {
  li.querySelector('form')?.remove();
  const reason = el('textarea', { id: `cs-why-${c.consultation_id}`, rows: 2, maxlength: 4000, required: true });
  const err = el('p', { class: 'error', role: 'alert', hidden: true });
  const form = el('form', { class: 'consult-decide', novalidate: true, onsubmit: async (e) => {
    e.preventDefault();
    if (!reason.value.trim()) { err.textContent = t('cons.err_reason'); err.hidden = false; return; }
    if (await act(c, 'decline', { reason: reason.value.trim() })) form.remove();
  } }, field('cons.decline_reason', reason), err,
  el('button', { class: 'btn btn-danger btn-small', type: 'submit', text: t('cons.decline_ok') }));
  li.append(form);
  reason.focus();
}

function opinionForm(c) {
  const body = el('textarea', { id: `cs-op-${c.consultation_id}`, rows: 4, maxlength: 4000, text: c.opinion || '' });
  const code = el('input', { id: `cs-code-${c.consultation_id}`, type: 'text', maxlength: 16, value: c.opinion_diagnosis_code || '', spellcheck: false });
  const save = (sign) => {
    if (!body.value.trim()) { announce(t('cons.err_opinion'), { kind: 'error' }); return; }
    act(c, 'opinion', { body: body.value.trim(), diagnosis_code: code.value.trim() || undefined, sign });
  };
  return el('div', { class: 'consult-opinion' },
    field('cons.opinion', body), field('doc.note_code', code),
    el('div', { class: 'actions' }, button('cons.opinion_save', () => save(false)), button('cons.opinion_sign', () => save(true), true)));
}

/* ---- a request from the live visit ---------------------------------- */

function openForm() {
  const st = tm().state;
  const form = $('#consult-form');
  const depts = cs.departments.filter((d) => d.id !== (st.visitInfo && st.visitInfo.dept));
  const dept = el('select', { id: 'cs-dept', required: true }, depts.map((d) => el('option', { value: d.id, text: d.name })));
  const spec = el('select', { id: 'cs-spec' });
  const fillSpecs = async () => {
    const docs = await specialists(dept.value);
    spec.replaceChildren(el('option', { value: '', text: t('cons.any_specialist') }), ...docs.map((d) => el('option', { value: d.id, text: d.name })));
  };
  dept.addEventListener('change', fillSpecs);
  const urgency = el('select', { id: 'cs-urgency' }, ['routine', 'urgent', 'emergency'].map((u) => el('option', { value: u, text: codeText('cons.urgency', u) })));
  form.replaceChildren(
    field('cons.dept', dept), field('cons.specialist', spec),
    field('cons.reason', el('textarea', { id: 'cs-reason', rows: 2, maxlength: 4000, required: true })),
    field('cons.question', el('textarea', { id: 'cs-question', rows: 2, maxlength: 4000, required: true })),
    field('cons.attachments', el('input', { id: 'cs-attach', type: 'text', placeholder: t('cons.attachments_hint') })),
    field('cons.from', localInput('cs-from', Date.now())),
    field('cons.to', localInput('cs-to', Date.now() + 3 * 86400e3)),
    field('cons.urgency', urgency),
    el('p', { id: 'cs-error', class: 'error', role: 'alert', hidden: true }),
    el('div', { class: 'actions' },
      el('button', { class: 'btn btn-primary', type: 'submit', text: t('cons.send') }),
      el('button', { class: 'btn', type: 'button', text: t('common.cancel'), onclick: () => { form.hidden = true; } })));
  form.hidden = false;
  fillSpecs();
  dept.focus();
}

async function submitRequest(e) {
  e.preventDefault();
  const st = tm().state;
  const err = $('#cs-error');
  const reason = $('#cs-reason').value.trim();
  const question = $('#cs-question').value.trim();
  const from = Date.parse($('#cs-from').value);
  const to = Date.parse($('#cs-to').value);
  if (!reason || !question) { err.textContent = t('cons.err_words'); err.hidden = false; return; }
  if (Number.isNaN(from) || Number.isNaN(to) || to <= from || to <= Date.now()) { err.textContent = t('cons.err_window'); err.hidden = false; return; }
  const attachments = $('#cs-attach').value.split(/[,\n]/).map((s) => s.trim()).filter(Boolean);
  try {
    await api(token, '/consultations', { method: 'POST', body: {
      patient_id: st.visitInfo.patient_id, visit_id: st.visitId, dept_id: $('#cs-dept').value,
      specialist_id: $('#cs-spec').value || undefined, reason, question, attachments,
      window_start: new Date(from).toISOString(), window_end: new Date(to).toISOString(),
      urgency: $('#cs-urgency').value } });
    $('#consult-form').hidden = true;
    announce(t('cons.done.request'));
    refresh();
  } catch (x) {
    err.textContent = t('common.error', { msg: errText(x) });
    err.hidden = false;
  }
}

/* ---- the consultation's visit --------------------------------------- */

// Whether this page is in the consultation's visit already.
function inVisit(c) {
  return tm().state.visitId === c.visit_id && !tm().state.ended;
}

function onStarted(m) {
  cs.started = m;
  $('#consult-started-desc').textContent = t('cons.started_desc', { id: m.patient_id });
  $('#consult-started').hidden = false;
  announce(t('cons.started_title'), { toast: false });
  $('#consult-join').focus();
}

// Joins the consultation's visit: from the card when it starts, or from the
// list (m: the push, or the request's row) when the page came later.
async function join(m = cs.started) {
  if (!m) return;
  $('#consult-join').disabled = true;
  try {
    const r = await tm().sig.request('consultation.join', { consultation_id: m.consultation_id });
    $('#consult-started').hidden = true;
    cs.started = null;
    tm().openVisit(m.visit_id, null, r.role, r.participants);
    render();
  } catch (e) {
    announce(t('common.error', { msg: errText(e) }), { kind: 'error' });
  } finally {
    $('#consult-join').disabled = false;
  }
}
