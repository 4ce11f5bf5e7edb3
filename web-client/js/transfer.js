// transfer.js - the doctor page's hand-offs (issue 18). During a visit the
// attending doctor transfers the patient to another department or a named
// doctor, with a reason (visit.transfer); during or after it they refer the
// patient up or down the alliance with a reason, a summary and, if one is
// booked, the appointment at the receiving side (POST /api/v1/referrals).
// Referrals to the doctor's department arrive as referral.received and are
// accepted or declined here; the referring doctor reads the answer.
//
// doctor.js owns the visit: this file reads its state through window.tm
// and tells it, with the 'tm:transferred' event, when the visit left this
// doctor.

import { t } from './i18n.js';
import { api } from './signaling.js';
import { $, el, getToken, claims, announce, errText } from './common.js';

// doctor.js checked the link (initPage); this file only borrows its token.
const token = getToken();
const page = token && (claims(token) || {}).role === 'doctor' ? { token } : null;
const hand = { visitId: null, departments: [], institutions: [], doctors: null, inbox: [] };

if (page) waitForDoctorPage();

// doctor.js sets window.tm once its module ran; modules run in order, but a
// slow first connection must not lose the pushes bound here.
function waitForDoctorPage() {
  if (window.tm && window.tm.sig) start();
  else setTimeout(waitForDoctorPage, 50);
}

function tm() { return window.tm.state; }

function start() {
  const sig = window.tm.sig;
  build();
  sig.on('visit.offer', showOfferTransfer);
  sig.on('referral.received', onReferralReceived);
  sig.on('referral.answered', onReferralAnswered);
  window.addEventListener('langchange', () => { fillDepts(); renderInbox(); });
  setInterval(sync, 500);
  api(page.token, '/departments').then((r) => { hand.departments = r.departments || []; fillDepts(); }).catch(() => {});
  api(page.token, '/institutions').then((r) => { hand.institutions = r.institutions || []; fillDepts(); }).catch(() => {});
}

/* ---- the card in the visit ---------------------------------------- */

function field(id, labelKey, control) {
  return el('div', { class: 'field' }, el('label', { for: id, 'data-i18n': labelKey }, t(labelKey)), control);
}

function option(value, key) {
  return el('option', { value, 'data-i18n': key }, t(key));
}

function build() {
  const trKind = el('select', { id: 'tr-kind' }, option('dept', 'tr.to_dept'), option('doctor', 'tr.to_doctor'));
  const transfer = el('details', { id: 'tr-box', class: 'handoff' },
    el('summary', { 'data-i18n': 'tr.title' }, t('tr.title')),
    el('p', { class: 'help', 'data-i18n': 'tr.help' }, t('tr.help')),
    el('form', { id: 'tr-form', novalidate: '' },
      field('tr-kind', 'tr.kind', trKind),
      field('tr-dept', 'tr.dept', el('select', { id: 'tr-dept' })),
      el('div', { class: 'field', id: 'tr-doctor-field', hidden: '' },
        el('label', { for: 'tr-doctor', 'data-i18n': 'tr.doctor' }, t('tr.doctor')), el('select', { id: 'tr-doctor' })),
      field('tr-reason', 'tr.reason', el('textarea', { id: 'tr-reason', rows: '2', maxlength: '500' })),
      el('div', { class: 'actions' }, el('button', { id: 'tr-submit', class: 'btn btn-primary', type: 'submit', 'data-i18n': 'tr.submit' }, t('tr.submit')))),
    el('p', { id: 'tr-msg', class: 'error', role: 'alert', hidden: '' }));
  const referral = el('details', { id: 'rf-box', class: 'handoff' },
    el('summary', { 'data-i18n': 'rf.title' }, t('rf.title')),
    el('form', { id: 'rf-form', novalidate: '' },
      field('rf-direction', 'rf.direction', el('select', { id: 'rf-direction' }, option('up', 'rf.up'), option('down', 'rf.down'))),
      field('rf-dept', 'rf.dept', el('select', { id: 'rf-dept' })),
      field('rf-reason', 'rf.reason', el('textarea', { id: 'rf-reason', rows: '2', maxlength: '500' })),
      field('rf-summary', 'rf.summary', el('textarea', { id: 'rf-summary', rows: '4', maxlength: '8000' })),
      field('rf-appt', 'rf.appt', el('input', { id: 'rf-appt', type: 'text', maxlength: '63', autocomplete: 'off', spellcheck: 'false' })),
      el('div', { class: 'actions' }, el('button', { id: 'rf-submit', class: 'btn btn-primary', type: 'submit', 'data-i18n': 'rf.submit' }, t('rf.submit')))),
    el('p', { id: 'rf-msg', role: 'status', hidden: '' }));
  const card = el('section', { id: 'handoff', class: 'card', hidden: '', 'aria-labelledby': 'handoff-h' },
    el('h2', { id: 'handoff-h', 'data-i18n': 'tr.card' }, t('tr.card')), transfer, referral);
  $('#note-card').before(card);
  const inbox = el('section', { id: 'rf-inbox', class: 'card', hidden: '', 'aria-labelledby': 'rf-inbox-h' },
    el('h2', { id: 'rf-inbox-h', 'data-i18n': 'rf.inbox' }, t('rf.inbox')), el('ul', { id: 'rf-list', class: 'people-list' }));
  $('.ws-side').append(inbox);
  $('#offer-desc').after(el('p', { id: 'offer-transfer', class: 'notice notice-info', hidden: '' }));
  trKind.addEventListener('change', syncKind);
  $('#tr-form').addEventListener('submit', (e) => { e.preventDefault(); transferVisit(); });
  $('#rf-form').addEventListener('submit', (e) => { e.preventDefault(); refer(); });
  $('#tr-box').addEventListener('toggle', () => { if ($('#tr-box').open) loadDoctors(); });
}

// The card shows while this doctor attends a visit (transfer) or wraps one
// up (referral only).
function sync() {
  const st = tm();
  const live = st.visitId && !st.ended && st.myRole === 'attending';
  const wrapUp = st.ended && st.ended.reason !== 'removed' && st.ended.reason !== 'left' && st.myRole === 'attending';
  const visitId = live ? st.visitId : wrapUp ? st.ended.visitId : null;
  $('#handoff').hidden = !visitId;
  $('#tr-box').hidden = !live;
  if (visitId !== hand.visitId) {
    hand.visitId = visitId;
    for (const id of ['tr-reason', 'rf-reason', 'rf-summary', 'rf-appt']) $(`#${id}`).value = '';
    showMsg('#tr-msg', null);
    showMsg('#rf-msg', null);
  }
}

function deptName(id) {
  return (hand.departments.find((d) => d.id === id) || {}).name || id || '';
}

// A referral goes up or down the alliance's levels: its departments name
// their institution and its level.
function referralLabel(d) {
  const inst = hand.institutions.find((i) => i.id === d.institution_id);
  if (!inst || hand.institutions.length < 2) return d.name || d.id;
  return `${d.name || d.id} · ${inst.name || inst.id}${inst.level ? ` (${inst.level})` : ''}`;
}

function fillDepts() {
  for (const sel of ['#tr-dept', '#rf-dept']) {
    const keep = $(sel).value;
    const label = sel === '#rf-dept' ? referralLabel : (d) => d.name || d.id;
    $(sel).replaceChildren(...hand.departments.map((d) => el('option', { value: d.id }, label(d))));
    if (keep) $(sel).value = keep;
  }
}

async function loadDoctors() {
  try {
    const r = await window.tm.sig.request('staff.list', { kind: 'doctor' });
    const me = (window.tm.state.hello || {}).sub;
    hand.doctors = (r.staff || []).filter((x) => x.id !== me);
  } catch {
    hand.doctors = [];
  }
  $('#tr-doctor').replaceChildren(...hand.doctors.map((x) =>
    el('option', { value: x.id }, `${x.name || x.id} · ${deptName(x.dept)} · ${t(`doc.status.${x.status}`)}`)));
}

function syncKind() {
  const toDoctor = $('#tr-kind').value === 'doctor';
  $('#tr-doctor-field').hidden = !toDoctor;
  $('#tr-dept').closest('.field').hidden = toDoctor;
  if (toDoctor && !hand.doctors) loadDoctors();
}

function showMsg(sel, text, kind = 'error') {
  const n = $(sel);
  n.hidden = !text;
  n.textContent = text || '';
  n.className = kind === 'error' ? 'error' : 'notice notice-ok';
}

// A refusal in the doctor's words: the server's stable reason when it
// gives one, else the code's general text.
function refusal(e) {
  const k = `tr.err.${e.reason}`;
  return e.reason && t(k) !== k ? t(k) : errText(e);
}

async function transferVisit() {
  const visitId = tm().visitId;
  const reason = $('#tr-reason').value.trim();
  if (!reason) { showMsg('#tr-msg', t('tr.need_reason')); $('#tr-reason').focus(); return; }
  const toDoctor = $('#tr-kind').value === 'doctor';
  const target = toDoctor ? { doctor_id: $('#tr-doctor').value } : { dept: $('#tr-dept').value };
  if (!target.doctor_id && !target.dept) { showMsg('#tr-msg', t('tr.need_target')); return; }
  $('#tr-submit').disabled = true;
  try {
    const r = await window.tm.sig.request('visit.transfer', { visit_id: visitId, reason, ...target });
    const to = r.doctor_id ? t('tr.to_named', { doctor: r.doctor_id, dept: deptName(r.dept) }) : deptName(r.dept);
    announce(t('tr.done', { to }));
    showMsg('#tr-msg', null);
    window.dispatchEvent(new CustomEvent('tm:transferred', { detail: { visit_id: visitId, to } }));
    sync();
  } catch (e) {
    showMsg('#tr-msg', refusal(e));
  } finally {
    $('#tr-submit').disabled = false;
  }
}

async function refer() {
  const visitId = hand.visitId;
  const body = {
    visit_id: visitId,
    direction: $('#rf-direction').value,
    to_dept_id: $('#rf-dept').value,
    reason: $('#rf-reason').value.trim(),
    summary: $('#rf-summary').value.trim(),
  };
  const appt = $('#rf-appt').value.trim();
  if (appt) body.appointment_id = appt;
  if (!body.reason || !body.summary) { showMsg('#rf-msg', t('rf.need_text')); return; }
  $('#rf-submit').disabled = true;
  try {
    const r = await api(page.token, '/referrals', { method: 'POST', body });
    showMsg('#rf-msg', t('rf.sent', { dept: deptName(r.to_dept_id) }), 'ok');
  } catch (e) {
    const k = `rf.err.${e.reason}`;
    showMsg('#rf-msg', e.reason && t(k) !== k ? t(k) : errText(e));
  } finally {
    $('#rf-submit').disabled = false;
  }
}

/* ---- an offer of a transferred patient ----------------------------- */

function showOfferTransfer(m) {
  const n = $('#offer-transfer');
  n.hidden = !m.transfer;
  n.textContent = m.transfer ? t('tr.offer', { doctor: m.transfer.from_doctor_id, reason: m.transfer.reason }) : '';
}

/* ---- referrals to my department ------------------------------------ */

async function onReferralReceived(m) {
  announce(t('rf.received', { dept: deptName(m.to_dept_id) }));
  try {
    const r = await api(page.token, `/referrals/${encodeURIComponent(m.referral_id)}`);
    hand.inbox = hand.inbox.filter((x) => x.id !== r.id).concat([r]);
  } catch { /* not readable: nothing to show */ }
  renderInbox();
}

function onReferralAnswered(m) {
  const text = m.state === 'accepted' ? t('rf.answer_accepted') : t('rf.answer_declined', { reason: m.decline_reason || '' });
  announce(text, m.state === 'accepted' ? {} : { kind: 'error' });
}

function renderInbox() {
  const open = hand.inbox.filter((r) => r.state === 'requested');
  $('#rf-inbox').hidden = !open.length;
  $('#rf-list').replaceChildren(...open.map((r) => {
    const reason = el('input', { type: 'text', maxlength: '500', 'aria-label': t('rf.decline_reason'), placeholder: t('rf.decline_reason') });
    const yes = el('button', { class: 'btn btn-small btn-primary', type: 'button' }, t('rf.accept'));
    const no = el('button', { class: 'btn btn-small', type: 'button' }, t('rf.decline'));
    yes.addEventListener('click', () => answer(r, true, ''));
    no.addEventListener('click', () => {
      if (!reason.value.trim()) { reason.focus(); announce(t('rf.need_decline_reason'), { kind: 'error' }); return; }
      answer(r, false, reason.value.trim());
    });
    return el('li', {},
      el('p', {}, el('strong', {}, t(r.direction === 'up' ? 'rf.up' : 'rf.down')), ' · ', r.reason),
      el('p', { class: 'muted' }, r.summary || ''),
      el('div', { class: 'actions' }, yes, reason, no));
  }));
}

async function answer(r, accept, reason) {
  try {
    const done = await api(page.token, `/referrals/${encodeURIComponent(r.id)}/${accept ? 'accept' : 'decline'}`,
      { method: 'POST', body: accept ? {} : { reason } });
    hand.inbox = hand.inbox.map((x) => (x.id === done.id ? done : x));
    announce(t(accept ? 'rf.accepted' : 'rf.declined'));
  } catch (e) {
    announce(t('common.error', { msg: errText(e) }), { kind: 'error' });
  }
  renderInbox();
}
