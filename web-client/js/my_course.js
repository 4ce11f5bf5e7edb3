// my_course.js - the patient's own course on the patient page (issue 18):
// the appointments still ahead (a follow-up the doctor booked in the visit
// shows at once, pushed as visit.followup), and their visits with the
// notes the doctor released to them. Read from
// GET /api/v1/patients/{me}/timeline, which gives a patient only what is
// theirs to read. Shown on the check-in screen and at the end of a visit;
// loaded by patient.html beside patient.js.

import { t, fmtDate, fmtDateTime, codeText } from './i18n.js';
import { api } from './signaling.js';
import { $, el, getToken, claims } from './common.js';

const token = getToken();
const me = token ? (claims(token) || {}).sub : null;
const VIEWS = ['checkin', 'ended'];
let data = null;
let loading = false;
let stale = false; // asked for again while a read was in flight
let pushed = null; // the follow-up just booked, before the timeline is read again

function card() {
  let c = $('#my-course');
  if (c) return c;
  c = el('section', { id: 'my-course', class: 'card course', 'aria-labelledby': 'my-h', hidden: true },
    el('h2', { id: 'my-h' }), el('div', { id: 'my-body' }));
  const main = $('main');
  if (main) main.append(c);
  return c;
}

const text = (v) => (v === null || v === undefined ? '' : String(v));

function whenOf(a) {
  return a.window_end_at
    ? t('tl.window', { from: fmtDate(a.slot_at), to: fmtDate(a.window_end_at) })
    : fmtDateTime(a.slot_at);
}

function apptLine(a) {
  const vars = { kind: codeText('kind', a.appointment_kind || a.kind), when: whenOf(a),
    dept: text(a.dept_name || a.dept_id || a.department_id), doctor: text(a.doctor_name || a.doctor_id) };
  return el('li', { class: 'course-appt' }, t(a.doctor_id ? 'tl.appt_with' : 'tl.appt', vars));
}

function visitLine(v) {
  const rows = [el('p', { class: 'course-head' }, t(v.doctor_id ? 'tl.visit_by' : 'tl.visit',
    { date: fmtDateTime(v.at), dept: text(v.dept_name || v.dept_id), doctor: text(v.doctor_name || v.doctor_id) }))];
  for (const n of v.notes || []) {
    if (n.diagnosis_code) rows.push(el('p', { class: 'course-codes' }, t('tl.codes', { codes: n.diagnosis_code })));
    rows.push(el('p', { class: 'course-note' }, t('tl.note', { text: text(n.body) })));
  }
  return el('li', { class: 'course-visit' }, ...rows);
}

function render() {
  const c = card();
  $('#my-h').textContent = t('my.title');
  const items = (data && data.items) || [];
  const upcoming = items.filter((i) => i.kind === 'appointment');
  if (pushed && !upcoming.some((a) => a.appointment_id === pushed.id)) upcoming.unshift({ ...pushed, appointment_id: pushed.id });
  const visits = items.filter((i) => i.kind === 'visit' && i.state === 'ended').reverse().slice(0, 5);
  const parts = [el('h3', {}, t(pushed ? 'my.next' : 'my.upcoming'))];
  parts.push(upcoming.length ? el('ul', { class: 'course-list', id: 'my-upcoming' }, ...upcoming.map(apptLine))
    : el('p', { class: 'muted' }, t('my.none_upcoming')));
  parts.push(el('h3', {}, t('my.visits')));
  parts.push(visits.length ? el('ul', { class: 'course-list', id: 'my-visits' }, ...visits.map(visitLine))
    : el('p', { class: 'muted' }, t('my.none_visits')));
  $('#my-body').replaceChildren(...parts);
  c.hidden = !VIEWS.includes(document.body.dataset.current);
}

// A read asked for while one is in flight runs once more after it: the one
// in flight may predate what asked (begun on the follow-up pushed just
// before the visit ended, it misses the ended visit and its note).
async function load() {
  if (loading) {
    stale = true;
    return;
  }
  loading = true;
  do {
    stale = false;
    try {
      data = await api(token, `/patients/${encodeURIComponent(me)}/timeline`);
    } catch {
      data = null; // the card shows what it has; the check-in works without it
    }
  } while (stale);
  loading = false;
  render();
}

let lastView = '';
function onView() {
  const v = document.body.dataset.current || '';
  if (v === lastView) return;
  lastView = v;
  if (VIEWS.includes(v)) load();
  else card().hidden = true;
}

// patient.js makes its connection after the page starts: hook the push on it then.
function hookPush(tries = 0) {
  const sig = window.tm && window.tm.sig;
  if (!sig) {
    if (tries < 150) setTimeout(() => hookPush(tries + 1), 200);
    return;
  }
  sig.on('visit.followup', (m) => {
    pushed = m.appointment;
    render();
    load();
  });
}

if (token && me && document.body.dataset.page === 'patient') {
  new MutationObserver(onView).observe(document.body, { attributes: true, attributeFilter: ['data-current'] });
  window.addEventListener('langchange', () => { if (data || pushed) render(); });
  hookPush();
}
