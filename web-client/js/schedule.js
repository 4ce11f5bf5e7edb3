// schedule.js - the scheduling page (排班, issue 18): a supervisor or admin
// sees a week of shifts, doctor by day, for the departments of their
// institution (the whole alliance without one), adds and removes shifts and
// copies last week's, all through the REST API (server/api_schedule.c).
// Weeks run Monday to Sunday in the browser's time zone.

import { t, fmtTime, lang } from './i18n.js';
import { api } from './signaling.js';
import { $, el, initPage, showView, announce, confirmDialog } from './common.js';

const page = initPage(['supervisor', 'admin']);
const state = { week: mondayOf(new Date()), me: null, institutions: [], depts: [], doctors: [], shifts: [] };
window.tm = { state };

const DAY_MS = 86400e3;

if (page) main();

async function main() {
  $('#back-link').href = `supervisor.html${window.location.hash}`;
  window.addEventListener('langchange', render);
  $('#prev-week').addEventListener('click', () => goWeek(addDays(state.week, -7)));
  $('#next-week').addEventListener('click', () => goWeek(addDays(state.week, 7)));
  $('#this-week').addEventListener('click', () => goWeek(mondayOf(new Date())));
  $('#copy-week').addEventListener('click', copyLastWeek);
  $('#add-form').addEventListener('submit', (e) => { e.preventDefault(); addShift(); });
  try {
    await loadSchedule();
    showView('sched', { focus: false });
    await loadShifts();
  } catch (e) {
    announce(t('sched.err_failed'), { kind: 'error' });
  }
}

function mondayOf(d) {
  const x = new Date(d.getFullYear(), d.getMonth(), d.getDate());
  x.setDate(x.getDate() - ((x.getDay() + 6) % 7));
  return x;
}

function addDays(d, n) {
  const x = new Date(d);
  x.setDate(x.getDate() + n);
  return x;
}

const isoDate = (d) => `${d.getFullYear()}-${String(d.getMonth() + 1).padStart(2, '0')}-${String(d.getDate()).padStart(2, '0')}`;

// Who the caller acts for, and the departments and doctors of that
// institution (every one for the whole alliance).
async function loadSchedule() {
  const [me, inst, depts, docs] = await Promise.all([api(page.token, '/me'), api(page.token, '/institutions'),
    api(page.token, '/departments'), api(page.token, '/doctors')]);
  state.me = me;
  state.institutions = inst.institutions;
  const mine = (x) => !me.institution || x.institution_id === me.institution;
  state.depts = depts.departments.filter(mine);
  state.doctors = docs.doctors.filter((d) => mine(d) && d.kind === 'doctor' && d.active);
}

async function loadShifts() {
  const from = state.week.getTime();
  const to = addDays(state.week, 7).getTime();
  const { shifts } = await api(page.token, `/shifts?from=${from}&to=${to}`);
  const depts = new Set(state.depts.map((d) => d.id));
  state.shifts = shifts.filter((s) => depts.has(s.dept_id));
  render();
}

async function goWeek(monday) {
  state.week = monday;
  $('#a-date').value = '';
  try {
    await loadShifts();
  } catch {
    announce(t('sched.err_failed'), { kind: 'error' });
  }
}

function deptName(id) {
  const d = state.depts.find((x) => x.id === id);
  return d ? d.name : id;
}

function doctorName(id) {
  const d = state.doctors.find((x) => x.id === id);
  return d ? d.name : id;
}

const dayLabel = (d) => d.toLocaleDateString(lang(), { weekday: 'short', month: 'numeric', day: 'numeric' });
const shiftTime = (s) => `${fmtTime(s.start_at)}–${fmtTime(s.end_at)}`;

function render() {
  if (!state.me) return;
  const days = [0, 1, 2, 3, 4, 5, 6].map((i) => addDays(state.week, i));
  const fmt = (d) => d.toLocaleDateString(lang(), { year: 'numeric', month: 'long', day: 'numeric' });
  $('#week-h').textContent = t('sched.week', { from: fmt(days[0]), to: fmt(days[6]) });
  const inst = state.institutions.find((i) => i.id === state.me.institution);
  $('#scope').textContent = t('sched.institution', { name: inst ? inst.name : t('sched.alliance') });
  $('#week-head').replaceChildren(el('th', { scope: 'col' }, t('sched.col_doctor')),
    ...days.map((d) => el('th', { scope: 'col' }, dayLabel(d))));
  $('#no-doctors').hidden = state.doctors.length > 0;
  $('#week-body').replaceChildren(...state.doctors.map((doc) => el('tr', { 'data-doctor': doc.id },
    el('th', { scope: 'row' }, doc.name, el('br'), el('span', { class: 'muted' }, deptName(doc.dept_id))),
    ...days.map((d) => el('td', { 'data-day': isoDate(d) }, dayShifts(doc, d))))));
  fillDoctors();
  if (!$('#a-date').value) $('#a-date').value = isoDate(days[0]);
}

function dayShifts(doc, day) {
  const start = day.getTime();
  const list = state.shifts.filter((s) => s.doctor_id === doc.id &&
    Date.parse(s.start_at) >= start && Date.parse(s.start_at) < start + DAY_MS);
  if (!list.length) return null;
  return el('ul', { class: 'shift-list' }, list.map((s) => el('li', { class: 'shift', 'data-shift': s.id },
    el('span', { class: 'shift-time' }, shiftTime(s)),
    el('span', { class: 'muted' }, ` ${t('sched.cap_n', { n: s.capacity })}`),
    s.dept_id !== doc.dept_id ? el('span', { class: 'muted' }, ` · ${deptName(s.dept_id)}`) : null,
    el('button', { class: 'btn btn-small btn-danger shift-remove', type: 'button',
      'aria-label': t('sched.remove_label', { doctor: doc.name, time: `${dayLabel(day)} ${shiftTime(s)}` }),
      onclick: () => removeShift(s, doc, day) }, t('sched.remove')))));
}

function fillDoctors() {
  const sel = $('#a-doctor');
  const keep = sel.value;
  sel.replaceChildren(...state.doctors.map((d) => el('option', { value: d.id }, `${d.name} · ${deptName(d.dept_id)}`)));
  if (keep) sel.value = keep;
}

// A refusal in words: the server's codes and English messages stay off
// the screen.
function failText(e) {
  if (e && e.code === 'forbidden') return t('sched.err_other_inst');
  if (e && e.code === 'bad_request') return t('sched.err_times');
  return t('sched.err_failed');
}

async function addShift() {
  const doc = state.doctors.find((d) => d.id === $('#a-doctor').value);
  const date = $('#a-date').value;
  const start = new Date(`${date}T${$('#a-start').value}`);
  const end = new Date(`${date}T${$('#a-end').value}`);
  if (!doc || !date || !(end > start)) {
    announce(t('sched.err_times'), { kind: 'error' });
    return;
  }
  try {
    await api(page.token, '/shifts', { method: 'POST', body: { doctor_id: doc.id, dept_id: doc.dept_id,
      start: start.toISOString(), end: end.toISOString(), capacity: Number($('#a-capacity').value) || 1 } });
    announce(t('sched.added'), { kind: 'ok' });
    await loadShifts();
  } catch (e) {
    announce(failText(e), { kind: 'error' });
  }
}

async function removeShift(s, doc, day) {
  const time = `${dayLabel(day)} ${shiftTime(s)}`;
  if (!await confirmDialog(t('sched.remove_confirm', { doctor: doc.name, time }), { okText: t('sched.remove'), danger: true })) return;
  try {
    await api(page.token, `/shifts/${encodeURIComponent(s.id)}`, { method: 'DELETE' });
    announce(t('sched.removed'), { kind: 'ok' });
    await loadShifts();
  } catch (e) {
    announce(failText(e), { kind: 'error' });
  }
}

// Last week's shifts into the week on screen; copying twice adds nothing.
async function copyLastWeek() {
  try {
    const r = await api(page.token, '/shifts/copy-week', { method: 'POST',
      body: { from: addDays(state.week, -7).toISOString() } });
    announce(r.copied || r.skipped ? t('sched.copied', { n: r.copied, skipped: r.skipped }) : t('sched.copy_none'),
      { kind: r.copied ? 'ok' : 'info' });
    await loadShifts();
  } catch (e) {
    announce(e && e.code === 'conflict' ? t('sched.copy_conflict') : failText(e), { kind: 'error' });
  }
}
