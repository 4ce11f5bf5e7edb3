// timeline.js - the patient's whole course beside the live visit on the
// doctor's workstation (issue 18): upcoming follow-ups first, then earlier
// visits newest first with their diagnosis codes and signed notes, and the
// consultations and referrals the record holds. Read from
// GET /api/v1/patients/{id}/timeline (every read is audited by the
// server), again when the visit changes, a follow-up is booked, or the
// language switches. Loaded by doctor.html beside doctor.js, whose state
// (window.tm.state) says which visit and patient are on screen.

import { t, fmtDate, fmtDateTime, codeText } from './i18n.js';
import { api } from './signaling.js';
import { $, el, getToken } from './common.js';

const token = getToken();
let shownFor = '';
let data = null;
let failed = false;

// The card sits in the side column, under the queue: beside the visit.
function card() {
  let c = $('#course');
  if (c) return c;
  c = el('section', { id: 'course', class: 'card course', 'aria-labelledby': 'course-h', hidden: '' },
    el('h2', { id: 'course-h' }), el('div', { id: 'course-body' }));
  const side = $('.ws-side');
  if (side) side.append(c);
  return c;
}

function visitOnScreen() {
  const st = window.tm && window.tm.state;
  if (!st || !st.visitId || !st.visitInfo || !st.visitInfo.patient_id) return null;
  if (st.myRole === 'interpreter') return null; // an interpreter does not read the record
  return { visitId: st.visitId, patientId: st.visitInfo.patient_id };
}

async function load(v) {
  const key = `${v.visitId}/${v.patientId}`;
  shownFor = key;
  data = null;
  failed = false;
  render(v);
  try {
    const r = await api(token, `/patients/${encodeURIComponent(v.patientId)}/timeline`);
    if (shownFor !== key) return;
    data = r;
  } catch {
    if (shownFor !== key) return;
    failed = true;
  }
  render(v);
}

function text(v) {
  return v === null || v === undefined ? '' : String(v);
}

function whenOf(a) {
  return a.window_end_at
    ? t('tl.window', { from: fmtDate(a.slot_at), to: fmtDate(a.window_end_at) })
    : fmtDateTime(a.slot_at);
}

function apptLine(a) {
  const vars = {
    kind: codeText('kind', a.appointment_kind),
    when: whenOf(a),
    dept: text(a.dept_name || a.dept_id),
    doctor: text(a.doctor_name || a.doctor_id),
  };
  const line = t(a.doctor_id ? 'tl.appt_with' : 'tl.appt', vars);
  return el('li', { class: 'course-appt', 'data-status': text(a.status) },
    el('span', {}, line), ' ', el('span', { class: 'tag' }, codeText('tl.status', a.status)),
    a.doctor_id ? '' : el('span', { class: 'muted' }, ` (${t('tl.any_doctor')})`));
}

function visitLine(item, current) {
  const vars = { date: fmtDateTime(item.at), dept: text(item.dept_name || item.dept_id), doctor: text(item.doctor_name || item.doctor_id) };
  const head = el('p', { class: 'course-head' }, t(item.doctor_id ? 'tl.visit_by' : 'tl.visit', vars), ' ',
    el('span', { class: 'tag' }, current ? t('tl.this_visit') : codeText('tl.state', item.state)));
  const rows = [head];
  if (item.end_reason) rows.push(el('p', { class: 'muted' }, codeText('reason', item.end_reason)));
  const codes = item.diagnosis_codes || [];
  if (codes.length) rows.push(el('p', { class: 'course-codes' }, t('tl.codes', { codes: codes.join(', ') })));
  const notes = item.notes || [];
  if (notes.length) {
    for (const n of notes) rows.push(el('p', { class: 'course-note' }, t('tl.note', { text: text(n.body) })));
  } else if (!current) {
    rows.push(el('p', { class: 'muted' }, t('tl.no_note')));
  }
  return el('li', { class: 'course-visit', 'data-visit': item.visit_id }, ...rows);
}

// A consultation (consult18's rows: its state and the specialist's signed
// opinion); a referral as its date.
function otherLine(item) {
  if (item.kind !== 'consultation') {
    return el('li', { class: `course-${item.kind}` }, t('tl.referral', { date: fmtDateTime(item.at) }));
  }
  const rows = [el('p', { class: 'course-head' }, t('tl.consultation', { date: fmtDateTime(item.slot_at || item.at) }),
    ' ', el('span', { class: 'tag' }, codeText('cons.state', item.state)))];
  if (item.opinion_diagnosis_code) rows.push(el('p', { class: 'course-codes' }, t('tl.codes', { codes: item.opinion_diagnosis_code })));
  if (item.opinion && item.opinion_signed_at) rows.push(el('p', { class: 'course-note' }, t('tl.opinion', { text: text(item.opinion) })));
  return el('li', { class: 'course-consultation' }, ...rows);
}

function render(v) {
  const c = card();
  c.hidden = false;
  $('#course-h').textContent = t('tl.title');
  const body = $('#course-body');
  if (failed) {
    body.replaceChildren(el('p', { class: 'error' }, t('tl.failed')));
    return;
  }
  if (!data) {
    body.replaceChildren(el('p', { class: 'muted' }, t('tl.loading')));
    return;
  }
  const items = data.items || [];
  const now = Date.now();
  const upcoming = items.filter((i) => i.kind === 'appointment' && i.status === 'booked' &&
    Date.parse(i.window_end_at || i.slot_at) >= now);
  const past = items.filter((i) => !upcoming.includes(i)).reverse();
  const parts = [];
  if (upcoming.length) {
    parts.push(el('h3', {}, t('tl.upcoming')), el('ul', { class: 'course-list', id: 'course-upcoming' }, ...upcoming.map(apptLine)));
  }
  if (past.length) {
    parts.push(el('h3', {}, t('tl.past')), el('ul', { class: 'course-list', id: 'course-past' },
      ...past.map((i) => (i.kind === 'visit' ? visitLine(i, i.visit_id === v.visitId)
        : i.kind === 'appointment' ? apptLine(i) : otherLine(i)))));
  }
  if (!parts.length) parts.push(el('p', { class: 'muted' }, t('tl.empty')));
  body.replaceChildren(...parts);
}

function check() {
  const v = visitOnScreen();
  if (!v) {
    const c = $('#course');
    if (c) c.hidden = true;
    shownFor = '';
    return;
  }
  if (shownFor !== `${v.visitId}/${v.patientId}`) load(v);
}

if (token && document.body.dataset.page === 'doctor') {
  // doctor.js owns the visit; its header changing is the sign of a new one.
  const watch = () => {
    const head = $('#visit');
    if (!head) return;
    new MutationObserver(check).observe(head, { attributes: true, childList: true, subtree: true, characterData: true });
    check();
  };
  if (document.readyState === 'loading') document.addEventListener('DOMContentLoaded', watch);
  else watch();
  window.addEventListener('langchange', () => {
    const v = visitOnScreen();
    if (v && shownFor) render(v);
  });
  window.addEventListener('followup-booked', () => {
    const v = visitOnScreen();
    if (v) load(v);
  });
}
