// followup.js - the attending doctor books the patient's next follow-up
// from inside the visit (issue 18): at a time or within dates, with
// themselves or any doctor of a department, through visit.followup. The
// patient is told at once by the server; the course beside the visit
// (timeline.js) reloads. Loaded by doctor.html beside doctor.js, whose
// state (window.tm) says which visit is on screen and the doctor's role.

import { t, fmtDate, fmtDateTime } from './i18n.js';
import { api } from './signaling.js';
import { $, el, getToken, errText, announce } from './common.js';

const token = getToken();
let forVisit = '';
let departments = null;

function field(id, labelKey, control) {
  return el('div', { class: 'field' }, el('label', { for: id, 'data-fu': labelKey }, t(labelKey)), control);
}

function option(value, key) {
  return el('option', { value, 'data-fu': key }, t(key));
}

function build() {
  const form = el('form', { id: 'fu-form', class: 'followup-form', novalidate: true },
    field('fu-mode', 'fu.mode', el('select', { id: 'fu-mode' }, option('slot', 'fu.mode_slot'), option('window', 'fu.mode_window'))),
    el('div', { id: 'fu-slot-row' }, field('fu-slot', 'fu.slot', el('input', { id: 'fu-slot', type: 'datetime-local' }))),
    el('div', { id: 'fu-window-row', hidden: true },
      field('fu-from', 'fu.from', el('input', { id: 'fu-from', type: 'date' })),
      field('fu-to', 'fu.to', el('input', { id: 'fu-to', type: 'date' }))),
    field('fu-dept', 'fu.dept', el('select', { id: 'fu-dept' })),
    field('fu-who', 'fu.who', el('select', { id: 'fu-who' }, option('self', 'fu.who_self'), option('any', 'fu.who_any'))),
    el('p', { id: 'fu-error', class: 'error', role: 'alert', hidden: true }),
    el('p', { id: 'fu-done', class: 'notice notice-ok', role: 'status', hidden: true }),
    el('div', { class: 'actions' }, el('button', { class: 'btn', type: 'submit', 'data-fu': 'fu.book' }, t('fu.book'))));
  const c = el('section', { id: 'followup-card', class: 'card', 'aria-labelledby': 'fu-h', hidden: true },
    el('h2', { id: 'fu-h', 'data-fu': 'fu.title' }, t('fu.title')), form);
  const note = $('#note-card');
  if (note) note.after(c);
  $('#fu-mode').addEventListener('change', syncMode);
  form.addEventListener('submit', (e) => {
    e.preventDefault();
    book();
  });
  return c;
}

// A follow-up of a chronic condition is commonly two weeks out: offered as
// the starting point, the doctor changes it.
function suggestDates() {
  const day = (offset) => {
    const d = new Date(Date.now() + offset * 86400e3);
    return `${d.getFullYear()}-${String(d.getMonth() + 1).padStart(2, '0')}-${String(d.getDate()).padStart(2, '0')}`;
  };
  $('#fu-slot').value = `${day(14)}T09:00`;
  $('#fu-from').value = day(12);
  $('#fu-to').value = day(16);
}

function syncMode() {
  const win = $('#fu-mode').value === 'window';
  $('#fu-window-row').hidden = !win;
  $('#fu-slot-row').hidden = win;
}

async function fillDepartments(dept) {
  if (!departments) {
    try {
      departments = (await api(token, '/departments')).departments || [];
    } catch {
      departments = [];
    }
  }
  const list = departments.length ? departments : [{ id: dept, name: dept }];
  $('#fu-dept').replaceChildren(...list.map((d) => el('option', { value: d.id }, d.name || d.id)));
  $('#fu-dept').value = dept;
}

// What the form asks for, or null when the times are not usable.
function request(visitId) {
  const fields = { visit_id: visitId, dept: $('#fu-dept').value || undefined, doctor: $('#fu-who').value };
  const now = Date.now();
  if ($('#fu-mode').value === 'window') {
    const from = new Date(`${$('#fu-from').value}T00:00`);
    const to = new Date(`${$('#fu-to').value}T23:59`);
    if (Number.isNaN(from.getTime()) || Number.isNaN(to.getTime()) || to <= from || to.getTime() <= now) return null;
    fields.window = { from: new Date(Math.max(from.getTime(), now + 60e3)).toISOString(), to: to.toISOString() };
  } else {
    const at = new Date($('#fu-slot').value);
    if (Number.isNaN(at.getTime()) || at.getTime() <= now) return null;
    fields.slot_at = at.toISOString();
  }
  return fields;
}

async function book() {
  const st = window.tm && window.tm.state;
  const sig = window.tm && window.tm.sig;
  const err = $('#fu-error');
  err.hidden = true;
  $('#fu-done').hidden = true;
  const fields = st && request(st.visitId);
  if (!fields) {
    err.textContent = t('fu.need_time');
    err.hidden = false;
    return;
  }
  try {
    const r = await sig.request('visit.followup', fields);
    const a = r.appointment;
    const when = a.window_end_at ? t('tl.window', { from: fmtDate(a.slot_at), to: fmtDate(a.window_end_at) }) : fmtDateTime(a.slot_at);
    const done = $('#fu-done');
    done.textContent = t('fu.booked', { when });
    done.hidden = false;
    announce(done.textContent);
    window.dispatchEvent(new CustomEvent('followup-booked', { detail: a }));
  } catch (e) {
    err.textContent = errText(e);
    err.hidden = false;
  }
}

function check() {
  const st = window.tm && window.tm.state;
  const c = $('#followup-card') || build();
  const show = !!(st && st.visitId && st.myRole === 'attending' && !$('#visit').hidden);
  c.hidden = !show;
  if (!show || forVisit === st.visitId) return;
  forVisit = st.visitId;
  $('#fu-error').hidden = true;
  $('#fu-done').hidden = true;
  $('#fu-mode').value = 'slot';
  suggestDates();
  syncMode();
  fillDepartments((st.visitInfo && st.visitInfo.dept) || '');
}

if (token && document.body.dataset.page === 'doctor') {
  const watch = () => {
    const v = $('#visit');
    if (!v) return;
    new MutationObserver(check).observe(v, { attributes: true, attributeFilter: ['hidden'] });
    new MutationObserver(check).observe($('#visit-h'), { childList: true, characterData: true, subtree: true });
    check();
  };
  if (document.readyState === 'loading') document.addEventListener('DOMContentLoaded', watch);
  else watch();
  window.addEventListener('langchange', () => {
    for (const n of document.querySelectorAll('[data-fu]')) n.textContent = t(n.dataset.fu);
  });
}
