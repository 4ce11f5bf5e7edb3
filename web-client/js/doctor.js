// doctor.js - the consultation workstation: status (available / away /
// off duty), today's shift and figures, the department queue, incoming
// offers with a countdown, the visit with chat and the note editor, ending
// with an outcome, and the next patient in one click. Visits of more than
// two: the attending doctor invites a colleague, interpreter or nurse
// (staff.list), sees who is in the visit and removes someone; an invited
// doctor, nurse or interpreter gets a card to join or decline, takes part
// in their role and leaves without ending the visit.

import { t, lang, fmtTime, fmtDateTime, fmtDuration, codeText } from './i18n.js';
import { Signaling, api } from './signaling.js';
import { getCamera } from './peer.js';
import { Call } from './call.js';
import { roleText } from './party.js';
import { GuestLinks } from './guest_links.js';
import { $, $$, el, initPage, showView, bindConnection, announce, errText, confirmDialog } from './common.js';

const page = initPage(['doctor']);
const state = {
  hello: null,
  status: 'off_duty',
  shift: null,
  offer: null,
  offerTimer: null,
  visitId: null,
  visitInfo: null,
  call: null,
  stream: null,
  ended: null,
  noteSigned: false,
  noteDirty: false,
  queue: null,
  departments: [],
  startedAt: null,
  visitTimer: null,
  myRole: 'attending',
  invited: null,
  invitedTimer: null,
  invites: [],
  staff: null,
  skewMs: 0,
};
let sig = null;
// openVisit: consult.js (issue 18) opens a consultation's visit it joined.
window.tm = { state, get sig() { return sig; }, get call() { return state.call; }, openVisit };

if (page) main();

async function main() {
  sig = new Signaling({ token: page.token });
  bindConnection(sig);
  sig.addEventListener('hello', (e) => {
    const first = !state.hello;
    state.hello = e.detail;
    const at = Date.parse(e.detail.server_time);
    if (!Number.isNaN(at)) state.skewMs = at - Date.now();
    if (!first) resync(e.detail.state || {});
  });
  sig.on('visit.offer', onOffer);
  sig.on('visit.offer_cancelled', onOfferCancelled);
  sig.on('visit.state', onVisitState);
  sig.on('visit.invited', onInvited);
  sig.on('visit.invite_ended', onInviteEnded);
  sig.on('visit.removed', (m) => {
    if (m.visit_id === state.visitId) visitOver(m.visit_id, 'removed', m.by_role);
  });
  sig.on('doctor.status', (m) => {
    setStatus(m.status);
    if (m.reason === 'offer_timeout') {
      const n = $('#status-note');
      n.textContent = t('doc.status_auto_away');
      n.hidden = false;
      announce(t('doc.status_auto_away'), { kind: 'error' });
    }
  });
  window.addEventListener('langchange', relabel);
  // transfer.js: this doctor handed the patient on; their part is over.
  window.addEventListener('tm:transferred', (e) => {
    if (e.detail.visit_id === state.visitId) visitOver(e.detail.visit_id, 'transferred');
  });
  state.guestLinks = new GuestLinks({ sig, visitId: () => (state.ended ? null : state.visitId) });
  for (const r of $$('input[name="status"]')) r.addEventListener('change', () => changeStatus(r.value));
  $('#offer-accept').addEventListener('click', accept);
  $('#offer-decline').addEventListener('click', decline);
  $('#end-btn').addEventListener('click', endVisit);
  $('#end-reason').addEventListener('change', syncEndAdvice);
  $('#leave-btn').addEventListener('click', leaveVisit);
  $('#invited-accept').addEventListener('click', () => answerInvite(true));
  $('#invited-decline').addEventListener('click', () => answerInvite(false));
  $('#inv-form').addEventListener('submit', (e) => { e.preventDefault(); findStaff(); });
  setInterval(renderInvites, 1000);
  $('#next-btn').addEventListener('click', nextPatient);
  $('#note-save').addEventListener('click', () => saveNote(false));
  $('#note-sign').addEventListener('click', () => saveNote(true));
  $('#note-text').addEventListener('input', () => { state.noteDirty = true; });
  $('#note-code').addEventListener('input', () => { state.noteDirty = true; });
  $('#note-template').addEventListener('change', insertTemplate);
  // Drafts are saved as the doctor writes, so a dropped browser loses little.
  setInterval(() => { if (state.noteDirty && !state.noteSigned && sig.state === 'open') saveNote(false, { quiet: true }); }, 20000);
  $('#note-text').addEventListener('blur', () => { if (state.noteDirty && !state.noteSigned) saveNote(false, { quiet: true }); });
  try {
    const hello = await sig.start();
    state.hello = hello;
    // hello's state before the doctor sees the controls: applied after the
    // names below arrive, it would undo a status chosen in the meantime.
    applyDoctorState(hello.state || {});
    showView('ws', { focus: false });
    await loadDepartments();
    refreshQueue();
    setInterval(refreshQueue, 5000);
  } catch {
    /* shown by bindConnection */
  }
}

// The departments' names, shown wherever an id was shown until they came.
async function loadDepartments() {
  try { state.departments = (await api(page.token, '/departments')).departments || []; } catch { /* names optional */ }
  fillInviteDepts();
  setShift(state.shift);
  renderOffer();
  if (state.visitInfo) renderVisitHead();
}

function deptName(id) {
  return (state.departments.find((d) => d.id === id) || {}).name || id || '';
}

function applyDoctorState(st) {
  setStatus(st.status || 'off_duty');
  setShift(st.shift || null);
  const visits = st.visits || [];
  if (visits.length && visits[0] !== state.visitId) openVisit(visits[0]);
  else if (!visits.length && !state.ended) showIdle();
}

// After a reconnect the server tells which visit we still hold.
function resync(st) {
  // An offer does not survive a dropped connection.
  if (state.offer && st.offer !== state.offer.visit_id) hideOffer();
  setStatus(st.status || state.status);
  setShift(st.shift || null);
  const visits = st.visits || [];
  if (state.visitId && !visits.includes(state.visitId) && !state.ended) {
    visitOver(state.visitId, null, 'system');
  } else if (visits.length && visits[0] !== state.visitId) {
    openVisit(visits[0]);
  }
  refreshQueue();
}

/* ---- status, shift, figures, queue -------------------------------- */

function setStatus(s) {
  state.status = s;
  for (const r of $$('input[name="status"]')) r.checked = r.value === s;
  if (s === 'available') $('#status-note').hidden = true;
  renderIdle();
}

function setShift(shift) {
  state.shift = shift;
  $('#shift-text').textContent = shift
    ? t('doc.shift_desc', { dept: deptName(shift.dept), end: fmtTime(shift.ends_at), cap: shift.capacity })
    : t('doc.shift_none');
}

async function changeStatus(s) {
  try {
    const r = await sig.request('doctor.status', { status: s });
    setStatus(r.status);
    setShift(r.shift || null);
    refreshQueue();
  } catch (e) {
    setStatus(state.status);
    announce(t('common.error', { msg: errText(e) }), { kind: 'error' });
  }
}

async function refreshQueue() {
  if (!sig || sig.state !== 'open') return;
  let r;
  try {
    r = await sig.request('doctor.queue', {});
  } catch {
    return; /* outside a shift there is no department queue */
  }
  state.queue = r;
  const body = $('#queue-body');
  const list = r.queue || [];
  body.replaceChildren(...list.map((q) => el('tr', { class: q.urgent ? 'urgent' : null },
    el('td', {}, String(q.position)),
    el('td', {}, fmtDuration(q.waited_s), q.connected ? null : el('span', { class: 'tag' }, ` ${t('doc.offline')}`)),
    el('td', {}, `${q.appointment ? t('doc.appointment') : t('doc.walkin')} · ${t(`kind.${q.kind}`)} `,
      q.urgent ? el('span', { class: 'tag tag-urgent' }, t('doc.urgent')) : null, ' ',
      q.state !== 'waiting' ? el('span', { class: 'tag' }, t(`state.${q.state}`)) : null))));
  $('#queue-table').hidden = list.length === 0;
  $('#queue-empty').hidden = list.length > 0;
  $('#queue-count').textContent = String(list.length);
  const f = r.today;
  if (f) {
    $('#fig-visits').textContent = String(f.visits ?? 0);
    $('#fig-response').textContent = f.avg_response_ms === null || f.avg_response_ms === undefined ? t('common.none') : fmtDuration(f.avg_response_ms / 1000);
    $('#fig-rating').textContent = f.avg_rating === null || f.avg_rating === undefined ? t('common.none') : Number(f.avg_rating).toFixed(1);
  }
}

function showIdle() {
  $('#visit').hidden = true;
  $('#idle').hidden = false;
  renderIdle();
}

function renderIdle() {
  $('#idle-text').textContent = state.status === 'available' ? t('doc.waiting_offers') : t('doc.idle');
}

/* ---- offers ------------------------------------------------------- */

function onOffer(m) {
  state.offer = m;
  const deadline = Date.now() + (m.expires_in_s || 30) * 1000;
  const total = m.expires_in_s || 30;
  renderOffer();
  const card = $('#offer');
  card.hidden = false;
  $('#idle').hidden = true;
  clearInterval(state.offerTimer);
  const tick = () => {
    const left = Math.max(0, Math.round((deadline - Date.now()) / 1000));
    $('#offer-countdown').textContent = t('doc.offer_countdown', { s: left });
    $('#offer-bar').style.width = `${(100 * left) / total}%`;
    if (left <= 0) clearInterval(state.offerTimer);
  };
  tick();
  state.offerTick = tick; // again at once on a language switch
  state.offerTimer = setInterval(tick, 1000);
  announce(t('doc.offer_title'), { toast: false });
  attention(true);
  $('#offer-accept').focus();
  refreshQueue();
}

function renderOffer() {
  const m = state.offer;
  if (!m) return;
  const name = (m.patient && (m.patient.name || m.patient.id)) || '';
  $('#offer-desc').textContent = t('doc.offer_desc', { name, kind: t(`kind.${m.kind}`), wait: fmtDuration(m.waited_s) });
  const tags = [el('span', { class: 'tag' }, deptName(m.dept)), el('span', { class: 'tag' }, m.appointment ? t('doc.appointment') : t('doc.walkin'))];
  if (m.urgent) tags.push(el('span', { class: 'tag tag-urgent' }, t('doc.urgent')));
  $('#offer-tags').replaceChildren(...tags.flatMap((x, i) => (i ? [' ', x] : [x])));
}

// A doctor may be in another window: the tab title blinks and a short
// chime sounds while an offer waits.
let baseTitle = document.title;
let blink = null;
function attention(on, key = 'doc.offer_title') {
  clearInterval(blink);
  document.title = baseTitle;
  if (!on) return;
  let flip = false;
  blink = setInterval(() => {
    flip = !flip;
    document.title = flip ? `(!) ${t(key)}` : baseTitle;
  }, 1000);
  try {
    const ctx = new AudioContext();
    const osc = ctx.createOscillator();
    const gain = ctx.createGain();
    osc.frequency.value = 880;
    gain.gain.setValueAtTime(0.15, ctx.currentTime);
    gain.gain.exponentialRampToValueAtTime(0.001, ctx.currentTime + 0.6);
    osc.connect(gain).connect(ctx.destination);
    osc.start();
    osc.stop(ctx.currentTime + 0.6);
    osc.onended = () => ctx.close().catch(() => {});
  } catch { /* no audio output: the title still blinks */ }
}

function hideOffer() {
  attention(false);
  clearInterval(state.offerTimer);
  state.offer = null;
  $('#offer').hidden = true;
  if (!state.visitId) $('#idle').hidden = false;
}

function onOfferCancelled(m) {
  if (!state.offer || state.offer.visit_id !== m.visit_id) return;
  hideOffer();
  announce(t('doc.offer_gone', { reason: codeText('reason', m.reason) }), { kind: 'error' });
  refreshQueue();
}

async function accept() {
  const m = state.offer;
  if (!m) return;
  $('#offer-accept').disabled = true;
  try {
    await ensureCamera();
    await sig.request('visit.accept', { visit_id: m.visit_id });
    hideOffer();
    rememberPatient(m.visit_id, m.patient);
    openVisit(m.visit_id, m);
  } catch (e) {
    if (e.reason && e.reason.startsWith('identity_')) {
      // Not verified recently enough: the offer stays open while the doctor signs in again.
      announce(codeText('doc.verify', e.reason), { kind: 'error' });
    } else {
      hideOffer();
      announce(t('common.error', { msg: errText(e) }), { kind: 'error' });
    }
  } finally {
    $('#offer-accept').disabled = false;
  }
}

async function decline() {
  const m = state.offer;
  if (!m) return;
  hideOffer();
  try { await sig.request('visit.decline', { visit_id: m.visit_id }); } catch { /* the offer may have lapsed */ }
  refreshQueue();
}

async function ensureCamera() {
  if (state.stream && state.stream.getTracks().some((tr) => tr.readyState === 'live')) return;
  const r = await getCamera();
  if (r.stream) state.stream = r.stream;
  else announce(t(`dev.${r.error === 'failed' ? 'busy' : r.error}`), { kind: 'error' });
}

/* ---- the visit ---------------------------------------------------- */

// The patient's name comes only with the offer; kept for this tab so that
// a reload mid-visit still shows who the doctor is talking to.
function rememberPatient(visitId, patient) {
  try { sessionStorage.setItem(`telemed.patient.${visitId}`, JSON.stringify(patient || {})); } catch { /* storage blocked */ }
}

function recalledPatient(visitId) {
  try { return JSON.parse(sessionStorage.getItem(`telemed.patient.${visitId}`) || '{}'); } catch { return {}; }
}

// participants: the visit's people when known (an accepted invitation).
async function openVisit(visitId, offer = null, role = null, participants = null) {
  if (state.call && state.visitId === visitId) return;
  closeCall();
  state.visitId = visitId;
  state.myRole = role || 'attending';
  state.invites = [];
  state.staff = null;
  state.participants = [];
  state.ended = null;
  state.noteSigned = false;
  state.noteDirty = false;
  state.guestLinks.reset();
  state.visitInfo = offer ? { patient_id: offer.patient && offer.patient.id, patient_name: offer.patient && offer.patient.name, dept: offer.dept, kind: offer.kind } : { patient_id: '', dept: '', kind: '' };
  startVisitTimer(offer ? Date.now() : null);
  renderStatusTag();
  $('#idle').hidden = true;
  $('#visit').hidden = false;
  $('#end-card').hidden = false;
  $('#wrap-card').hidden = true;
  $('#note-text').value = '';
  $('#note-code').value = '';
  $('#note-status').textContent = '';
  setNoteLocked(false);
  renderVisitHead();
  let history = [];
  // An interpreter may not read the record: the people list names the patient.
  if (!offer && state.myRole !== 'interpreter') {
    // Resumed: fill in the patient, the chat so far and any saved note
    // from the record.
    try {
      const rec = await api(page.token, `/visits/${encodeURIComponent(visitId)}`);
      const known = recalledPatient(visitId);
      state.visitInfo = { patient_id: rec.patient_id, patient_name: known.id === rec.patient_id ? known.name : '', dept: rec.dept_id, kind: rec.kind };
      if (!role && rec.doctor_id && rec.doctor_id !== hello().sub) state.myRole = recordRole(rec) || 'consulting';
      if (rec.accepted_at) startVisitTimer(new Date(rec.accepted_at).getTime());
      history = (rec.chat || []).map((c) => ({ message_id: c.id, from: c.sender_id, from_role: c.sender_role, text: c.body, at: c.sent_at }));
      const note = (rec.notes || []).slice(-1)[0];
      if (note) {
        $('#note-text').value = note.body || '';
        $('#note-code').value = note.diagnosis_code || '';
        if (note.signed) setNoteLocked(true);
      }
      renderVisitHead();
    } catch { /* the header stays generic */ }
  }
  renderRole();
  if (state.myRole !== 'interpreter') loadPatientCard(visitId);
  await ensureCamera();
  if (state.visitId !== visitId) return;
  if (state.myRole === 'interpreter' && !await interpreterNotice(visitId)) return;
  const info = state.visitInfo || {};
  const others = state.myRole === 'attending' && info.patient_id
    ? [{ id: info.patient_id, role: 'patient', name: info.patient_name || t('doc.patient', { id: info.patient_id }), connected: true }] : [];
  state.call = new Call({
    mount: $('#visit-mount'), sig, hello: state.hello, visitId, role: 'doctor', visitRole: state.myRole, stream: state.stream,
    others, onParticipants: onParticipants,
  });
  if (participants) state.call.setParticipants(participants, true);
  // The attending's own view of a two-person visit until the server lists
  // its people: the patient and themself, so inviting is there at once.
  else if (others.length) onParticipants([...others, { id: hello().sub, role: 'attending', name: page.claims.name || '', connected: true }], { local: true });
  for (const m of history) state.call.addChat(m);
  state.call.startMedia();
  $('#visit-h').focus?.();
}

// An interpreter reads and accepts their own notice (the hospital's text,
// consent.get) through the server before any media; one who does not
// agree leaves the visit. A resume finds it accepted already.
async function interpreterNotice(visitId) {
  try {
    const c = await sig.request('consent.get', { kind: 'interpreter', visit_id: visitId });
    if (c.accepted) return true;
    const text = c.texts[lang()] || c.texts['zh-CN'] || c.texts.en || '';
    if (await confirmDialog(text, { okText: t('doc.notice_accept'), cancelText: t('doc.notice_decline') })) {
      await sig.request('consent.accept', { visit_id: visitId, version: c.version });
      return state.visitId === visitId;
    }
    await sig.request('visit.leave', { visit_id: visitId });
    visitOver(visitId, 'left', hello().sub);
  } catch (e) {
    announce(t('common.error', { msg: errText(e) }), { kind: 'error' });
  }
  return false;
}

// What the record says about this patient: the appointment the visit is
// for, and their earlier visits with this doctor (date, outcome, signed
// diagnosis), so a follow-up starts from the last one.
async function loadPatientCard(visitId) {
  const card = $('#patient-card');
  card.replaceChildren();
  card.hidden = true;
  let rec;
  try {
    rec = await api(page.token, `/visits/${encodeURIComponent(visitId)}`);
  } catch {
    return;
  }
  const rows = [];
  if (rec.appointment_id) {
    try {
      const a = await api(page.token, `/appointments/${encodeURIComponent(rec.appointment_id)}`);
      rows.push(el('p', { 'data-k': 'appt' }, t('doc.card_appt', { time: fmtDateTime(a.slot_at) })));
    } catch { /* the appointment may be gone */ }
  }
  let prior = [];
  try {
    const r = await api(page.token, `/visits?patient=${encodeURIComponent(rec.patient_id)}&state=ended&limit=4`);
    prior = (r.visits || []).filter((v) => v.id !== visitId).slice(0, 3);
  } catch { /* none shown */ }
  const lines = await Promise.all(prior.map(async (v) => {
    let code = '';
    try {
      const full = await api(page.token, `/visits/${encodeURIComponent(v.id)}`);
      const note = (full.notes || []).filter((n) => n.signed && n.diagnosis_code).slice(-1)[0];
      if (note) code = note.diagnosis_code;
    } catch { /* the line goes without a code */ }
    return el('li', {}, t(code ? 'doc.card_line_code' : 'doc.card_line', { date: fmtDateTime(v.checkin_at), reason: codeText('reason', v.end_reason), code }));
  }));
  rows.push(el('p', { class: 'muted' }, t(lines.length ? 'doc.card_prior' : 'doc.card_none')));
  if (lines.length) rows.push(el('ul', { class: 'prior' }, lines));
  if (state.visitId !== visitId) return;
  card.replaceChildren(...rows);
  card.hidden = false;
}

function renderVisitHead() {
  const v = state.visitInfo || {};
  $('#visit-h').textContent = v.patient_name || t('doc.patient', { id: v.patient_id || '' });
  const parts = [deptName(v.dept), v.kind ? t(`kind.${v.kind}`) : ''].filter(Boolean);
  $('#visit-info').textContent = parts.join(' · ');
  renderVisitTimer();
}

// My role in a visit from its record (its participants), if it says.
function recordRole(rec) {
  const me = (rec.participants || []).filter((p) => (p.user_id === hello().sub || p.id === hello().sub) && !p.left_at).slice(-1)[0];
  const r = me && (me.visit_role || me.role);
  return r && r !== 'doctor' ? r : null;
}

// What this doctor may do here follows their role in the visit: the
// attending ends it, invites and removes; the others leave; an
// interpreter does not see the note.
function renderRole() {
  const attending = state.myRole === 'attending';
  $('#end-card').hidden = !attending || !!state.ended;
  $('#leave-card').hidden = attending || !!state.ended;
  $('#invite-box').hidden = !attending || !!state.ended;
  $('#family').hidden = !attending || !!state.ended;
  $('#note-card').hidden = state.myRole === 'interpreter';
  const tag = $('#my-role');
  tag.hidden = attending;
  tag.textContent = attending ? '' : t('doc.my_role', { role: roleText(state.myRole) });
  if (state.myRole === 'nurse') setNoteLocked(true);
}

function onParticipants(list, { local = false } = {}) {
  if (local && state.serverListed === state.visitId) return;
  if (!local) state.serverListed = state.visitId;
  state.participants = list;
  const me = list.find((p) => p.id === hello().sub);
  if (me && me.role && me.role !== state.myRole) {
    state.myRole = me.role;
    renderRole();
  }
  // Everyone in the visit may see the patient's name.
  const patient = list.find((p) => p.role === 'patient');
  if (patient && patient.name && state.visitInfo && !state.visitInfo.patient_name) {
    state.visitInfo.patient_name = patient.name;
    if (!state.visitInfo.patient_id) state.visitInfo.patient_id = patient.id;
    renderVisitHead();
  }
  $('#people').hidden = list.length === 0;
  renderPeople();
  renderStaff();
  // A guest joining uses their link: the list says so.
  if (!local && state.myRole === 'attending') state.guestLinks.load();
}

function renderPeople() {
  const list = state.participants || [];
  const attending = state.myRole === 'attending' && !state.ended;
  $('#people-list').replaceChildren(...list.map((p) => {
    const mine = p.id === hello().sub;
    const removable = attending && !mine && p.role !== 'patient' && p.role !== 'attending';
    return el('li', { 'data-participant': p.id, 'data-role': p.role },
      el('span', { class: 'grow' }, el('strong', {}, p.name || t('party.unnamed')), mine ? t('party.you_suffix') : ''),
      el('span', { class: 'tag' }, roleText(p.role)),
      p.connected === false ? el('span', { class: 'tag tag-busy' }, t('party.reconnecting')) : null,
      removable ? el('button', { class: 'btn btn-small btn-danger', type: 'button', onclick: () => removeParticipant(p) }, t('inv.remove')) : null);
  }));
}

async function removeParticipant(p) {
  const name = p.name || t('party.unnamed');
  if (!await confirmDialog(t('inv.remove_confirm', { name }), { okText: t('inv.remove'), cancelText: t('common.cancel'), danger: true })) return;
  try {
    await sig.request('visit.remove', { visit_id: state.visitId, user_id: p.id });
    announce(t('inv.removed', { name }), { kind: 'ok' });
  } catch (e) {
    announce(t('inv.remove_failed', { msg: errText(e) }), { kind: 'error' });
  }
}

/* ---- inviting staff (attending) ----------------------------------- */

function fillInviteDepts() {
  const sel = $('#inv-dept');
  const keep = sel.value;
  sel.replaceChildren(el('option', { value: '' }, t('inv.any')), ...state.departments.map((d) => el('option', { value: d.id }, d.name || d.id)));
  sel.value = keep;
}

async function findStaff() {
  const fields = {};
  if ($('#inv-dept').value) fields.dept = $('#inv-dept').value;
  if ($('#inv-kind').value) fields.kind = $('#inv-kind').value;
  $('#inv-error').hidden = true;
  try {
    const r = await sig.request('staff.list', fields);
    state.staff = (r.staff || []).filter((x) => x.id !== hello().sub);
  } catch (e) {
    showInviteError(t('inv.failed', { msg: errText(e) }));
    return;
  }
  renderStaff();
}

function showInviteError(text) {
  $('#inv-error').textContent = text;
  $('#inv-error').hidden = false;
}

// The visit role an invitee takes follows their kind of staff.
const ROLE_OF_KIND = { doctor: 'consulting', nurse: 'nurse', interpreter: 'interpreter' };

function staffLabel(x) {
  return x.title ? t('doctor.with_title', { name: x.name || x.id, title: x.title }) : x.name || x.id;
}

function renderStaff() {
  const list = state.staff;
  if (!list) return;
  const inVisit = new Set((state.participants || []).map((p) => p.id));
  const pending = new Set(state.invites.map((i) => i.user_id));
  $('#staff-none').hidden = list.length > 0;
  $('#staff-list').replaceChildren(...list.map((x) => {
    const here = inVisit.has(x.id);
    const status = here ? 'in_visit' : x.status;
    const can = (x.status === 'available' || x.status === 'away') && !here && !pending.has(x.id);
    return el('li', { 'data-staff': x.id, 'data-status': x.status },
      el('span', { class: 'grow' }, el('strong', {}, staffLabel(x)), ' ', el('span', { class: 'muted' }, deptName(x.dept))),
      el('span', { class: 'tag' }, codeText('staff.kind', x.kind)),
      el('span', { class: `tag tag-status-${status}` }, codeText('staff.status', status)),
      el('button', { class: 'btn btn-small', type: 'button', disabled: !can, onclick: () => invite(x) }, t('inv.invite')));
  }));
}

async function invite(x) {
  const role = ROLE_OF_KIND[x.kind] || 'consulting';
  try {
    const r = await sig.request('visit.invite', { visit_id: state.visitId, user_id: x.id, role });
    state.invites.push({ invite_id: r.invite_id, expires_at: r.expires_at, user_id: x.id, name: staffLabel(x), role });
    $('#inv-error').hidden = true;
  } catch (e) {
    showInviteError(t('inv.failed', { msg: errText(e) }));
  }
  renderInvites();
  renderStaff();
}

function secondsLeft(iso) {
  return Math.max(0, Math.round((Date.parse(iso) - (Date.now() + state.skewMs)) / 1000));
}

// The pending invitations with their countdown. Rows are made once and
// only their text changes each second: a button rebuilt under the pointer
// would swallow the click.
function renderInvites() {
  const box = $('#inv-pending');
  if (!box) return;
  const rows = state.invites.map((i) => {
    if (!i.row) {
      i.text = el('span', { class: 'grow' });
      i.cancel = el('button', { class: 'btn btn-small', type: 'button', onclick: () => cancelInvite(i) });
      i.row = el('li', { 'data-invite': i.invite_id }, i.text, i.cancel);
    }
    i.text.textContent = t('inv.pending', { name: i.name, role: roleText(i.role), s: secondsLeft(i.expires_at) });
    i.cancel.textContent = t('inv.cancel');
    return i.row;
  });
  const kids = [...box.children];
  if (kids.length !== rows.length || rows.some((r, k) => kids[k] !== r)) box.replaceChildren(...rows);
}

async function cancelInvite(i) {
  try {
    await sig.request('visit.invite_cancel', { invite_id: i.invite_id });
  } catch (e) {
    announce(t('common.error', { msg: errText(e) }), { kind: 'error' });
  }
}

// Pushed to the inviter and to the invitee.
function onInviteEnded(m) {
  if (state.invited && state.invited.invite_id === m.invite_id) {
    // One's own answer needs no telling.
    if (m.outcome !== 'accepted' && !state.invited.answered) {
      hideInvited();
      announce(t('invd.ended', { outcome: codeText('invd.outcome', m.outcome) }), { kind: 'error' });
    }
    return;
  }
  const i = state.invites.find((x) => x.invite_id === m.invite_id);
  if (!i) return;
  state.invites = state.invites.filter((x) => x !== i);
  announce(t(`inv.outcome.${['accepted', 'declined', 'timeout', 'cancelled', 'visit_ended'].includes(m.outcome) ? m.outcome : 'other'}`, { name: i.name }),
    { kind: m.outcome === 'accepted' ? 'ok' : 'info' });
  renderInvites();
  renderStaff();
}

/* ---- being invited ------------------------------------------------ */

function onInvited(m) {
  state.invited = m;
  renderInvited();
  $('#invited').hidden = false;
  $('#idle').hidden = true;
  clearInterval(state.invitedTimer);
  const tick = () => {
    const left = secondsLeft(m.expires_at);
    $('#invited-countdown').textContent = t('invd.countdown', { s: left });
    if (left <= 0) clearInterval(state.invitedTimer);
  };
  tick();
  state.invitedTimer = setInterval(tick, 1000);
  announce(t('invd.title'), { toast: false });
  attention(true, 'invd.title');
  $('#invited-accept').focus();
}

function renderInvited() {
  const m = state.invited;
  if (!m) return;
  const from = (m.from && (m.from.name || m.from.id)) || '';
  $('#invited-desc').textContent = t('invd.desc', { from, role: codeText('prole_as', m.role), dept: deptName(m.dept) || t('common.none') });
}

function hideInvited() {
  attention(false);
  clearInterval(state.invitedTimer);
  state.invited = null;
  $('#invited').hidden = true;
  if (!state.visitId && $('#offer').hidden) $('#idle').hidden = false;
}

async function answerInvite(accept) {
  const m = state.invited;
  if (!m) return;
  $('#invited-accept').disabled = true;
  try {
    if (accept) await ensureCamera();
    m.answered = true;
    const r = await sig.request('visit.invite_answer', { invite_id: m.invite_id, accept });
    hideInvited();
    if (accept) openVisit(m.visit_id, null, (r && r.role) || m.role, (r && r.participants) || null);
  } catch (e) {
    // Handed on to another doctor who has not joined yet: the invite stays.
    if (e.reason === 'awaiting_doctor') {
      m.answered = false;
      announce(t('party.awaiting_doctor'), { kind: 'error' });
      return;
    }
    hideInvited();
    announce(t('common.error', { msg: errText(e) }), { kind: 'error' });
  } finally {
    $('#invited-accept').disabled = false;
  }
}

async function leaveVisit() {
  if (!await confirmDialog(t('doc.leave_confirm'), { okText: t('doc.leave'), cancelText: t('common.cancel'), danger: true })) return;
  const id = state.visitId;
  try {
    await sig.request('visit.leave', { visit_id: id });
    visitOver(id, 'left', hello().sub);
  } catch (e) {
    announce(t('common.error', { msg: errText(e) }), { kind: 'error' });
  }
}

// The visit's running time, from the accept (the record's on a resume).
function startVisitTimer(at) {
  clearInterval(state.visitTimer);
  state.startedAt = at;
  state.visitTimer = at ? setInterval(renderVisitTimer, 1000) : null;
  renderVisitTimer();
}

function renderVisitTimer() {
  const node = $('#visit-timer');
  node.hidden = !state.startedAt;
  if (state.startedAt) node.textContent = t('visit.timer', { t: clock((Date.now() - state.startedAt) / 1000) });
}

function clock(seconds) {
  const s = Math.max(0, Math.floor(seconds));
  const mm = String(Math.floor(s / 60) % 60).padStart(2, '0');
  const ss = String(s % 60).padStart(2, '0');
  return s >= 3600 ? `${Math.floor(s / 3600)}:${mm}:${ss}` : `${mm}:${ss}`;
}

// During a visit the status box says so: the radio shows the offer
// setting, the tag what the doctor is doing.
function renderStatusTag() {
  const tag = $('#status-busy');
  tag.hidden = !(state.visitId && !state.ended);
  tag.textContent = tag.hidden ? '' : t('doc.in_visit');
}

function closeCall() {
  if (state.call) state.call.close();
  state.call = null;
}

function onVisitState(m) {
  if (m.visit_id !== state.visitId) return;
  if (m.state === 'ended' || m.state === 'cancelled') visitOver(m.visit_id, m.end_reason, m.ended_by);
}

function visitOver(visitId, reason, by) {
  closeCall();
  if (state.ended) return;
  state.ended = { visitId, reason };
  startVisitTimer(null);
  renderStatusTag();
  $('#visit-mount').replaceChildren();
  $('#end-card').hidden = true;
  $('#leave-card').hidden = true;
  $('#invite-box').hidden = true;
  $('#family').hidden = true;
  $('#people').hidden = true;
  state.invites = [];
  $('#wrap-card').hidden = false;
  renderWrapText();
  refreshQueue();
  $('#note-text').focus();
}

function renderWrapText() {
  const r = state.ended.reason;
  const guestOf = state.myRole !== 'attending';
  $('#next-btn').textContent = guestOf ? t('doc.back_idle') : t('doc.next');
  if (r === 'removed' || r === 'left') {
    $('#wrap-text').textContent = t(r === 'removed' ? 'doc.removed' : 'doc.left');
    return;
  }
  if (guestOf) {
    $('#wrap-text').textContent = t('doc.party_over');
    return;
  }
  if (r === 'transferred') {
    $('#wrap-text').textContent = t('tr.wrap');
    return;
  }
  $('#wrap-text').textContent = r === 'patient_left' || r === 'grace_expired'
    ? t('doc.ended_by_patient', { reason: reasonText(r) })
    : t('doc.ended', { reason: reasonText(r) });
}

function reasonText(r) {
  const k = `doc.end.${r}`;
  return t(k) !== k ? t(k) : codeText('reason', r);
}

// Stop and refer: the patient is told where to go and why, in the doctor's words.
function syncEndAdvice() {
  $('#end-advice-field').hidden = $('#end-reason').value !== 'terminate_and_refer';
}

async function endVisit() {
  const reason = $('#end-reason').value;
  const advice = $('#end-advice').value.trim();
  if (reason === 'terminate_and_refer' && !advice) {
    syncEndAdvice();
    announce(t('doc.refer_advice_needed'), { kind: 'error' });
    $('#end-advice').focus();
    return;
  }
  if (!await confirmDialog(t('doc.end_confirm', { reason: reasonText(reason) }), { okText: t('doc.end'), cancelText: t('common.cancel'), danger: true })) return;
  const id = state.visitId;
  try {
    // Wrap-up: no new offer while the note is finished.
    if (state.status === 'available') await sig.request('doctor.status', { status: 'away' }).then((r) => setStatus(r.status)).catch(() => {});
    await sig.request('visit.end', { visit_id: id, reason, ...(reason === 'terminate_and_refer' ? { advice } : {}) });
    $('#end-advice').value = '';
    visitOver(id, reason, hello().sub);
  } catch (e) {
    announce(t('common.error', { msg: errText(e) }), { kind: 'error' });
  }
}

function hello() { return state.hello || {}; }

async function nextPatient() {
  if (state.noteDirty && !state.noteSigned) await saveNote(false, { quiet: true });
  state.ended = null;
  state.visitId = null;
  renderStatusTag();
  $('#visit').hidden = true;
  // Back from someone else's visit, the doctor's own status stays as set.
  if (state.myRole === 'attending') await changeStatus('available');
  state.myRole = 'attending';
  showIdle();
  $('#idle-text').focus?.();
}

// A template's headings go in at the end of the note, in the doctor's
// language; what is already written stays.
function insertTemplate() {
  const sel = $('#note-template');
  const key = sel.value;
  sel.value = '';
  if (!key || state.noteSigned) return;
  const area = $('#note-text');
  const text = t(`doc.template_text.${key}`);
  area.value = area.value.trim() ? `${area.value.replace(/\s+$/, '')}\n\n${text}` : text;
  state.noteDirty = true;
  area.focus();
}

function setNoteLocked(locked) {
  state.noteSigned = locked;
  $('#note-text').readOnly = locked;
  $('#note-code').readOnly = locked;
  $('#note-save').disabled = locked;
  $('#note-sign').disabled = locked;
  $('#note-template').disabled = locked;
}

async function saveNote(sign, { quiet = false } = {}) {
  const id = state.visitId || (state.ended && state.ended.visitId);
  if (!id || state.noteSigned) return;
  if (sign && !await confirmDialog(t('doc.note_sign_confirm'), { okText: t('doc.note_sign'), cancelText: t('common.cancel') })) return;
  const fields = { visit_id: id, text: $('#note-text').value, sign };
  const code = $('#note-code').value.trim();
  if (code) fields.diagnosis_code = code;
  try {
    await sig.request('visit.note', fields);
    state.noteDirty = false;
    const now = new Date().toISOString();
    $('#note-status').textContent = sign ? t('doc.note_signed', { time: fmtTime(now) }) : t('doc.note_saved', { time: fmtTime(now) });
    if (sign) setNoteLocked(true);
  } catch (e) {
    if (!quiet || e.code !== 'offline') $('#note-status').textContent = t('doc.note_failed', { msg: errText(e) });
  }
}

function relabel() {
  renderInvited();
  renderRole();
  renderPeople();
  renderInvites();
  renderStaff();
  fillInviteDepts();
  setShift(state.shift);
  renderIdle();
  renderOffer();
  if (state.offer && state.offerTick) state.offerTick();
  if (state.visitInfo) renderVisitHead();
  if (state.visitId && !state.ended && state.myRole !== 'interpreter') loadPatientCard(state.visitId);
  if (state.ended) renderWrapText();
  renderStatusTag();
  if (state.queue) refreshQueue();
}
