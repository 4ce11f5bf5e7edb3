// patient.js - the patient page: device check, check-in, waiting room, the
// visit and the rating. The page follows the server's view of the patient
// (hello's state and visit.state pushes), so a reload or a reconnect lands
// the patient where they were.

import { t, lang, fmtTime, fmtDateTime, fmtDuration, codeText } from './i18n.js';
import { Signaling, api } from './signaling.js';
import { getCamera } from './peer.js';
import { Call } from './call.js';
import { GuestLinks } from './guest_links.js';
import { $, $$, el, initPage, showView, bindConnection, announce, errText, confirmDialog } from './common.js';

const page = initPage(['patient']);
const state = {
  hello: null,
  stream: null,
  audioOnly: false,
  visitId: null,
  visit: null,
  call: null,
  departments: [],
  deviceChecked: false,
  meterStop: null,
  rateVisitId: null,
  doctors: null,
  skewMs: 0,
  waitTimer: null,
};
window.tm = { state, get sig() { return sig; }, get call() { return state.call; } };
let sig = null;

if (page) main();

async function main() {
  sig = new Signaling({ token: page.token });
  bindConnection(sig);
  sig.addEventListener('hello', (e) => {
    if (state.hello) resync(e.detail);
    state.hello = e.detail;
    // Waits are counted on the server's clock.
    const at = Date.parse(e.detail.server_time);
    if (!Number.isNaN(at)) state.skewMs = at - Date.now();
  });
  sig.on('queue.position', onPosition);
  sig.on('visit.state', onVisitState);
  sig.on('visit.note_released', onNoteReleased);
  sig.on('visit.transferred', onTransferred);
  window.addEventListener('langchange', relabel);
  bindDevice();
  bindCheckin();
  bindWaiting();
  bindRating();
  state.guestLinks = new GuestLinks({ sig, visitId: () => state.visitId });
  try {
    const hello = await sig.start();
    state.hello = hello;
    await route(hello.state || {});
  } catch {
    /* auth failures are shown by bindConnection */
  }
}

// Where the server says we are.
async function route(st) {
  const v = st.visit;
  if (v && (v.state === 'waiting' || v.state === 'offered' || v.state === 'active')) {
    if (!state.stream && !state.deviceChecked) await quietCamera();
    state.visitId = v.visit_id;
    state.visit = v;
    if (v.state === 'active') startVisit(v, st.chat);
    else showWaiting(v, st.position ? { position: st.position } : undefined);
    return;
  }
  if (st.to_rate) {
    showEnded(st.to_rate, null);
    return;
  }
  if (state.deviceChecked) showCheckin();
  else startDevice();
}

// After a reconnect: continue if the visit is the same, else follow.
function resync(hello) {
  const st = hello.state || {};
  const v = st.visit;
  if (v && v.visit_id === state.visitId) {
    onVisitState({ ...v, type: 'visit.state' });
    // Messages sent while we were away come after every one shown.
    if (state.call && st.chat) for (const m of st.chat) state.call.addChat(m);
    if (v.state !== 'active' && st.position) onPosition({ visit_id: v.visit_id, position: st.position });
    return;
  }
  if (state.visitId && !v && state.hello && hello.node !== state.hello.node) {
    // Moved to another node that does not share this one's waiting room
    // (docs/cluster.md): check in again there.
    endCall();
    state.visitId = null;
    route(st);
    return;
  }
  if (state.visitId && !v) {
    // The visit ended while we were away.
    endCall();
    showEnded(st.to_rate || state.visitId, null);
    state.visitId = null;
    return;
  }
  route(st);
}

/* ---- device check ------------------------------------------------- */

function bindDevice() {
  $('#dev-retry').addEventListener('click', startDevice);
  $('#dev-continue').addEventListener('click', () => { stopMeter(); state.deviceChecked = true; showCheckin(); });
  $('#dev-continue-without').addEventListener('click', () => { stopMeter(); state.deviceChecked = true; showCheckin(); });
}

async function quietCamera() {
  const r = await getCamera();
  if (r.stream) {
    state.stream = r.stream;
    state.audioOnly = !!r.audioOnly;
  }
  state.deviceChecked = true;
}

async function startDevice() {
  showView('device');
  const status = $('#dev-status');
  const help = $('#dev-help');
  status.className = 'dev-status';
  status.textContent = t('dev.checking');
  help.hidden = true;
  $('#dev-retry').hidden = true;
  $('#dev-continue-without').hidden = true;
  $('#dev-continue').disabled = true;
  if (state.stream) for (const tr of state.stream.getTracks()) tr.stop();
  state.stream = null;
  const r = await getCamera();
  if (r.error) {
    const key = r.error === 'failed' ? 'dev.failed' : `dev.${r.error}`;
    status.className = 'dev-status notice notice-error';
    status.textContent = t(key, { msg: r.message || '' });
    status.dataset.key = key;
    if (r.error !== 'failed' && r.error !== 'insecure') {
      help.textContent = t(`dev.${r.error}_help`);
      help.dataset.key = `dev.${r.error}_help`;
      help.hidden = false;
    }
    $('#dev-retry').hidden = false;
    $('#dev-continue-without').hidden = false;
    $('#dev-retry').focus();
    return;
  }
  state.stream = r.stream;
  state.audioOnly = !!r.audioOnly;
  $('#dev-preview').srcObject = r.stream;
  status.className = 'dev-status notice notice-ok';
  status.dataset.key = r.audioOnly ? 'dev.audio_only' : 'dev.ok';
  status.textContent = t(status.dataset.key);
  delete help.dataset.key;
  $('#dev-continue').disabled = false;
  startMeter(r.stream);
  checkNetwork();
}

// The path to the hospital, measured on the signaling connection: round
// trips of a few pings and how many got no answer. TCP hides packet loss,
// so a lost check here means a connection bad enough to stall.
const NET_CHECKS = 8;
async function checkNetwork() {
  const box = $('#dev-net');
  if (!box) return;
  box.hidden = false;
  delete box.dataset.verdict;
  state.net = null;
  box.textContent = t('dev.net_checking');
  const rtts = [];
  let lost = 0;
  for (let i = 0; i < NET_CHECKS; i++) {
    const t0 = performance.now();
    try {
      await sig.request('ping', {}, 2000);
      rtts.push(performance.now() - t0);
    } catch {
      lost++;
    }
    await new Promise((res) => setTimeout(res, 100));
  }
  rtts.sort((a, b) => a - b);
  const rtt = rtts.length ? Math.round(rtts[Math.floor(rtts.length / 2)]) : null;
  const verdict = rtt === null || lost >= 2 || rtt > 400 ? 'poor' : lost === 1 || rtt > 150 ? 'fair' : 'good';
  state.net = { verdict, rtt, lost };
  renderNetwork();
}

function renderNetwork() {
  const n = state.net;
  const box = $('#dev-net');
  // The page may have been replaced meanwhile (session taken over).
  if (!n || !box) return;
  box.dataset.verdict = n.verdict;
  box.className = `dev-net notice ${n.verdict === 'good' ? 'notice-ok' : 'notice-warn'}`;
  const line = n.rtt === null ? t('dev.net_none') : t('dev.net_result', { verdict: t(`q.${n.verdict}`), rtt: n.rtt, lost: n.lost, n: NET_CHECKS });
  box.textContent = n.verdict === 'poor' ? `${line} ${t('dev.net_poor_help')}` : line;
}

function startMeter(stream) {
  stopMeter();
  if (!stream.getAudioTracks().length || !window.AudioContext) return;
  const ctx = new AudioContext();
  const src = ctx.createMediaStreamSource(stream);
  const an = ctx.createAnalyser();
  an.fftSize = 512;
  src.connect(an);
  const buf = new Float32Array(an.fftSize);
  const meter = $('#dev-meter');
  let raf = 0;
  const loop = () => {
    an.getFloatTimeDomainData(buf);
    let sum = 0;
    for (const x of buf) sum += x * x;
    const rms = Math.sqrt(sum / buf.length);
    // Speech sits around -30 dBFS; map -60..0 dB onto the meter.
    const db = 20 * Math.log10(rms || 1e-6);
    meter.value = Math.max(0, Math.min(100, ((db + 60) / 60) * 100));
    raf = requestAnimationFrame(loop);
  };
  loop();
  state.meterStop = () => { cancelAnimationFrame(raf); ctx.close().catch(() => {}); };
}

function stopMeter() {
  if (state.meterStop) state.meterStop();
  state.meterStop = null;
}

/* ---- check-in ----------------------------------------------------- */

function bindCheckin() {
  for (const r of $$('input[name="ci-type"]')) r.addEventListener('change', syncCheckinType);
  $('#ci-form').addEventListener('submit', (e) => { e.preventDefault(); checkin(); });
  $('#ci-refuse').addEventListener('click', refuseRecording);
  $('#ci-consent').addEventListener('change', () => { $('#ci-refused').hidden = true; });
}

// The informed consent the server holds now (consent.get), shown in the
// page's language.
function loadConsent() {
  state.consentLoading = sig.request('consent.get', { kind: 'patient' }).then((c) => {
    state.consent = c;
  }, (e) => {
    state.consent = null;
    showCheckinError(t('checkin.failed', { msg: errText(e) }));
  }).then(renderConsent);
  return state.consentLoading;
}

function renderConsent() {
  const c = state.consent;
  const box = $('#ci-consent-text');
  if (!c) { box.textContent = ''; return; }
  const text = c.texts[lang()] || c.texts['zh-CN'] || c.texts.en || '';
  box.replaceChildren(...text.split('\n').map((line) => el('p', {}, line)));
  if (!$('#ci-refused').hidden) renderRefused();
}

// Without consent to recording there is no video visit here: say what to do instead.
function refuseRecording() {
  $('#ci-consent').checked = false;
  $('#ci-error').hidden = true;
  renderRefused();
  $('#ci-refused').hidden = false;
}

function renderRefused() {
  const phone = state.consent && state.consent.phone;
  $('#ci-refused').textContent = phone ? t('checkin.refused_phone', { phone }) : t('checkin.refused');
}

function syncCheckinType() {
  const appt = $('input[name="ci-type"]:checked').value === 'appointment';
  $('#ci-dept-field').hidden = appt;
  $('#ci-appt-field').hidden = !appt;
}

async function showCheckin() {
  showView('checkin');
  $('#ci-error').hidden = true;
  $('#ci-refused').hidden = true;
  loadConsent();
  const sel = $('#ci-dept');
  if (!state.departments.length) {
    sel.replaceChildren(el('option', { value: '' }, t('checkin.dept_loading')));
    try {
      const r = await api(page.token, '/departments');
      state.departments = r.departments || [];
    } catch (e) {
      showCheckinError(errText(e));
    }
  }
  sel.replaceChildren(...state.departments.map((d) => el('option', { value: d.id }, d.name || d.id)));
  try {
    const r = await api(page.token, '/appointments?status=booked');
    const appts = r.appointments || [];
    const deptName = (id) => (state.departments.find((d) => d.id === id) || {}).name || id;
    $('#ci-appt').replaceChildren(...appts.map((a) => el('option', { value: a.id }, t('checkin.appt_option', { dept: deptName(a.dept_id), time: fmtDateTime(a.slot_at) }))));
    $('#ci-appt-none').hidden = appts.length > 0;
    $('#ci-appt').hidden = appts.length === 0;
  } catch {
    $('#ci-appt-none').hidden = false;
    $('#ci-appt').hidden = true;
  }
}

function showCheckinError(msg) {
  const e = $('#ci-error');
  e.textContent = msg;
  e.hidden = false;
}

async function checkin() {
  if (!$('#ci-consent').checked) {
    showCheckinError(t('checkin.consent_needed'));
    $('#ci-consent').focus();
    return;
  }
  if (!state.consent) await (state.consentLoading || loadConsent());
  if (!state.consent) {
    showCheckinError(t('checkin.consent_loading'));
    loadConsent();
    return;
  }
  const appt = $('input[name="ci-type"]:checked').value === 'appointment';
  const fields = { urgent: $('#ci-urgent').checked, consent: { version: state.consent.version, recording: true } };
  if (appt) {
    if (!$('#ci-appt').value) { showCheckinError(t('checkin.no_appointments')); return; }
    fields.appointment_id = $('#ci-appt').value;
  } else {
    fields.dept = $('#ci-dept').value;
    fields.kind = 'follow_up';
  }
  const btn = $('#ci-form button[type="submit"]');
  btn.disabled = true;
  try {
    const r = await sig.request('checkin', fields);
    state.visitId = r.visit_id;
    state.visit = { visit_id: r.visit_id, state: 'waiting', dept: r.dept || fields.dept, urgent: fields.urgent, checkin_at: new Date(Date.now() + state.skewMs).toISOString() };
    state.position = null;
    // The result carries what a queue.position push does: show it all at once.
    showWaiting(state.visit, r);
  } catch (e) {
    if (e.code === 'conflict' && /consent/.test(e.message)) {
      // The hospital changed the text meanwhile: show the new one to agree to.
      $('#ci-consent').checked = false;
      await loadConsent();
      showCheckinError(t('checkin.consent_changed'));
    } else if (e.code === 'node_draining') {
      showCheckinError(t('conn.moving')); // the connection moves on by itself
    } else {
      showCheckinError(e.code === 'forbidden' ? t('checkin.first_refused') : t('checkin.failed', { msg: errText(e) }));
    }
  } finally {
    btn.disabled = false;
  }
}

/* ---- waiting room ------------------------------------------------- */

function bindWaiting() {
  $('#wait-leave').addEventListener('click', async () => {
    if (!await confirmDialog(t('wait.leave_confirm'), { okText: t('wait.leave'), cancelText: t('common.cancel'), danger: true })) return;
    try {
      await sig.request('queue.leave', { visit_id: state.visitId });
      state.visitId = null;
      stopWaitTimer();
      announce(t('wait.left'));
      showCheckin();
    } catch (e) {
      announce(t('common.error', { msg: errText(e) }), { kind: 'error' });
    }
  });
}

async function loadDepartments() {
  if (state.departments.length) return;
  try { state.departments = (await api(page.token, '/departments')).departments || []; } catch { /* names are optional */ }
}

function deptName(id) {
  return (state.departments.find((d) => d.id === id) || {}).name || id || '';
}

// The hospital's doctors (any role may read them): the patient is told
// who is about to see them and who did.
async function loadDoctors() {
  if (state.doctors) return state.doctors;
  try {
    state.doctors = (await api(page.token, '/doctors')).doctors || [];
  } catch {
    return [];
  }
  return state.doctors;
}

function doctorLabel(id) {
  const d = (state.doctors || []).find((x) => x.id === id);
  if (!d) return '';
  return d.title ? t('doctor.with_title', { name: d.name, title: d.title }) : d.name;
}

async function showWaiting(v, figures) {
  if (document.body.dataset.current !== 'waiting') showView('waiting');
  if (!state.departments.length) {
    try { state.departments = (await api(page.token, '/departments')).departments || []; } catch { /* names are optional */ }
  }
  if (v.state === 'offered' && v.doctor_id) await loadDoctors();
  const prev = $('#wait-preview');
  if (state.stream && !state.audioOnly) { prev.srcObject = state.stream; prev.parentElement.hidden = false; } else prev.parentElement.hidden = true;
  startWaitTimer(v);
  if (figures) state.position = { visit_id: v.visit_id, ...figures };
  renderWaiting();
}

function onPosition(m) {
  if (m.visit_id !== state.visitId) return;
  // A push carries every figure; a hello's resume only the position.
  state.position = { ...(state.position || {}), ...m };
  renderWaiting();
}

// One place decides what the waiting room says, so its parts cannot
// contradict each other: while a doctor is being offered the estimate is
// "now"; with no free doctor the page says what to do instead of a figure.
// The doctor handed the patient on (issue 18): the connection and the
// camera stay; the waiting room says where they wait now and why it moved.
function onTransferred(m) {
  if (m.visit_id !== state.visitId) return;
  state.transfer = m;
  state.position = null;
  renderWaiting();
}

function renderTransfer() {
  const tr = state.transfer;
  const n = $('#wait-transfer');
  n.hidden = !(tr && tr.visit_id === state.visitId);
  if (n.hidden) return;
  n.textContent = tr.doctor_id
    ? t('tr.patient_named', { dept: deptName(tr.dept), doctor: doctorLabel(tr.doctor_id) || t('tr.patient_a_doctor') })
    : t('tr.patient_dept', { dept: deptName(tr.dept) });
}

function renderWaiting() {
  renderTransfer();
  const v = state.visit || {};
  const m = state.position || {};
  const offered = v.state === 'offered';
  $('#wait-dept').textContent = `${t('wait.dept', { dept: deptName(v.dept) })}${v.urgent ? ` · ${t('wait.urgent')}` : ''}`;
  $('#wait-position').textContent = m.position ?? '–';
  const est = m.estimated_wait_s;
  const estEl = $('#wait-estimate');
  let text = '–';
  if (offered) text = t('wait.estimate_offered');
  else if (est === null) text = t('wait.estimate_none');
  else if (est !== undefined) text = est < 60 ? t('wait.under_minute') : t('wait.minutes', { n: Math.ceil(est / 60) });
  estEl.textContent = text;
  estEl.classList.toggle('fig-text', !offered && est === null);
  const noDoctor = !offered && (est === null || m.doctors_on_duty === 0);
  $('#wait-nodoc').hidden = !noDoctor;
  renderNextShift(noDoctor ? m.next_shift_at : null);
  const parts = [];
  if (m.doctors_on_duty > 0 && !offered) parts.push(t('wait.doctors', { n: m.doctors_on_duty }));
  if (m.waiting !== undefined && m.waiting !== null) parts.push(t('wait.waiting_total', { n: m.waiting }));
  $('#wait-doctors').textContent = parts.join(' · ');
  $('#wait-doctors').hidden = parts.length === 0;
  const offeredBy = offered ? doctorLabel(v.doctor_id) : '';
  $('#wait-offered').hidden = !offered;
  $('#wait-offered').textContent = offeredBy ? t('wait.offered_by', { doctor: offeredBy }) : t('wait.offered');
  renderWaitElapsed();
}

// The department's hours, when nobody is on duty because no shift runs now.
function renderNextShift(at) {
  const when = at ? Date.parse(at) : NaN;
  const show = !Number.isNaN(when) && when > Date.now() + state.skewMs;
  $('#wait-hours').hidden = !show;
  $('#wait-hours').textContent = show ? t('wait.next_shift', { time: fmtDateTime(at) }) : '';
}

function startWaitTimer(v) {
  stopWaitTimer();
  state.waitSince = v.checkin_at ? Date.parse(v.checkin_at) : Date.now() + state.skewMs;
  state.waitTimer = setInterval(renderWaitElapsed, 1000);
}

function stopWaitTimer() {
  clearInterval(state.waitTimer);
  state.waitTimer = null;
}

function renderWaitElapsed() {
  if (!state.waitSince) return;
  const s = Math.max(0, Math.floor((Date.now() + state.skewMs - state.waitSince) / 1000));
  const clock = `${Math.floor(s / 60)}:${String(s % 60).padStart(2, '0')}`;
  $('#wait-elapsed').textContent = t('wait.elapsed', { t: clock });
}

/* ---- visit state -------------------------------------------------- */

function onVisitState(m) {
  if (!m.visit_id || (state.visitId && m.visit_id !== state.visitId)) return;
  state.visit = m;
  switch (m.state) {
    case 'waiting':
    case 'offered':
      state.visitId = m.visit_id;
      showWaiting(m);
      break;
    case 'active':
      state.visitId = m.visit_id;
      startVisit(m);
      break;
    case 'ended':
    case 'cancelled':
      endCall();
      stopWaitTimer();
      Call.forgetChat(m.visit_id);
      state.visitId = null;
      if (m.state === 'cancelled' && m.end_reason === 'patient_left') { showCheckin(); break; }
      showEnded(m.visit_id, m.end_reason, m.state === 'ended', m);
      break;
    default:
      break;
  }
}

// history: the chat so far from the server (hello's state), when it sent it.
function startVisit(v, history) {
  if (state.call && state.call.visitId === v.visit_id) {
    // Back from a transfer: the call and its media went on; the next doctor joined.
    if (state.transfer) {
      state.transfer = null;
      stopWaitTimer();
      showView('visit');
      state.visitDoctor = v.doctor_id;
      renderVisitDoctor();
      loadDoctors().then(renderVisitDoctor);
      announce(t('tr.patient_joined'));
    }
    return;
  }
  endCall();
  stopWaitTimer();
  showView('visit');
  state.visitDoctor = v.doctor_id;
  renderVisitDoctor();
  loadDoctors().then(renderVisitDoctor);
  const leave = el('button', { class: 'btn btn-danger ctl', type: 'button' }, t('visit.leave'));
  leave.addEventListener('click', async () => {
    if (!await confirmDialog(t('visit.leave_confirm'), { okText: t('visit.leave'), cancelText: t('common.cancel'), danger: true })) return;
    sig.request('visit.end', { visit_id: v.visit_id, reason: 'patient_left' }).catch((e) => announce(t('common.error', { msg: errText(e) }), { kind: 'error' }));
  });
  state.leaveBtn = leave;
  // On a phone the family panel is below the chat: this button opens it.
  const family = el('button', { class: 'btn ctl', type: 'button', id: 'fam-open' }, t('fam.button'));
  family.addEventListener('click', () => state.guestLinks.open());
  state.familyBtn = family;
  state.call = new Call({
    mount: $('#visit-mount'), sig, hello: state.hello, visitId: v.visit_id, role: 'patient', stream: state.stream, extraControls: [family, leave],
    others: attendingGuess(), onParticipants: () => state.guestLinks.load(), history,
  });
  state.call.startMedia();
  state.guestLinks.reset();
  state.guestLinks.load();
}

// Until the server lists the visit's people, the other side is the doctor
// who accepted.
function attendingGuess() {
  const id = state.visitDoctor;
  return id ? [{ id, role: 'attending', name: doctorLabel(id), connected: true }] : [];
}

function renderVisitDoctor() {
  const who = doctorLabel(state.visitDoctor);
  $('#visit-with').textContent = who ? t('visit.with', { doctor: who }) : '';
  $('#visit-with').hidden = !who;
  if (state.call && who) state.call.setParticipants(attendingGuess());
}

function endCall() {
  if (state.call) state.call.close();
  state.call = null;
}

/* ---- end and rating ----------------------------------------------- */

function showEnded(visitId, reason, rate = true, visit = null) {
  state.rateVisitId = visitId;
  state.endReason = reason;
  state.endedVisit = visit;
  showView('ended');
  $('#end-reason').textContent = t(reason && t(`end.reason.${reason}`) !== `end.reason.${reason}` ? `end.reason.${reason}` : 'end.reason.other');
  // Terminate and refer: the doctor's own words on where to go and why.
  const advice = visit && visit.referral_advice;
  $('#end-advice').hidden = !advice;
  $('#end-advice-text').textContent = advice || '';
  renderSummary();
  state.notes = [];
  renderNotes();
  loadNotes(visitId);
  state.nextAppt = null;
  if (visit && visit.doctor_id) Promise.all([loadDoctors(), loadDepartments(), loadNextAppointment()]).then(renderSummary);
  $('#rate-form').hidden = !rate;
  $('#rate-thanks').hidden = true;
  $('#rate-again').hidden = rate;
  $('#rate-error').hidden = true;
  for (const r of $$('input[name="score"]')) r.checked = false;
  $('#rate-comment').value = '';
}

// A follow-up the hospital has booked for the patient (the earliest to come).
async function loadNextAppointment() {
  try {
    const r = await api(page.token, `/appointments?status=booked&from=${encodeURIComponent(new Date().toISOString())}`);
    state.nextAppt = (r.appointments || [])[0] || null;
  } catch {
    state.nextAppt = null;
  }
}

// What the patient takes away: who saw them, for how long, what next.
function renderSummary() {
  const v = state.endedVisit;
  const box = $('#end-summary');
  if (!v || !v.accepted_at) {
    box.hidden = true;
    return;
  }
  const rows = [];
  const doctor = doctorLabel(v.doctor_id);
  if (doctor) rows.push(['end.sum_doctor', doctor]);
  if (v.dept) rows.push(['end.sum_dept', deptName(v.dept)]);
  if (v.ended_at) rows.push(['end.sum_duration', fmtDuration((Date.parse(v.ended_at) - Date.parse(v.accepted_at)) / 1000)]);
  const next = `end.next.${v.end_reason}`;
  rows.push(['end.sum_next', t(t(next) !== next ? next : 'end.next.other')]);
  if (state.nextAppt) rows.push(['end.sum_booked', t('checkin.appt_option', { dept: deptName(state.nextAppt.dept_id), time: fmtDateTime(state.nextAppt.slot_at) })]);
  $('#end-summary-list').replaceChildren(...rows.flatMap(([k, val]) => [el('dt', {}, t(k)), el('dd', {}, val)]));
  box.hidden = false;
}

// The doctor's signed notes are the patient's to read: asked for at the end,
// and pushed when the doctor signs later.
async function loadNotes(visitId) {
  try {
    const r = await sig.request('visit.notes', { visit_id: visitId });
    if (visitId === state.rateVisitId) mergeNotes(r.notes || []);
  } catch { /* the end screen stands without them */ }
}

function onNoteReleased(m) {
  if (m.visit_id === state.rateVisitId || m.visit_id === state.visitId) mergeNotes([m]);
}

function mergeNotes(notes) {
  state.notes = state.notes || [];
  for (const n of notes) {
    if (!state.notes.some((x) => x.doctor_id === n.doctor_id)) state.notes.push(n);
  }
  renderNotes();
}

function renderNotes() {
  const notes = document.body.dataset.current === 'ended' ? state.notes || [] : [];
  $('#end-note').hidden = notes.length === 0;
  $('#end-note-list').replaceChildren(...notes.flatMap((n) => [
    el('p', { class: 'pre-wrap' }, n.text),
    ...(n.diagnosis_code ? [el('p', { class: 'muted' }, t('end.note_diagnosis', { code: n.diagnosis_code }))] : []),
    el('p', { class: 'muted' }, `${doctorLabel(n.doctor_id) || ''} ${fmtDateTime(n.signed_at)}`.trim()),
  ]));
}

function bindRating() {
  $('#rate-skip').addEventListener('click', () => {
    $('#rate-form').hidden = true;
    $('#rate-again').hidden = false;
    $('#rate-again').focus();
  });
  $('#rate-form').addEventListener('submit', async (e) => {
    e.preventDefault();
    const picked = $('input[name="score"]:checked');
    const err = $('#rate-error');
    if (!picked) {
      err.textContent = t('rate.pick');
      err.hidden = false;
      $('input[name="score"]').focus();
      return;
    }
    try {
      await sig.request('visit.rate', { visit_id: state.rateVisitId, score: Number(picked.value), comment: $('#rate-comment').value.trim() });
      $('#rate-form').hidden = true;
      $('#rate-thanks').hidden = false;
      $('#rate-again').hidden = false;
      $('#rate-thanks').focus?.();
    } catch (ex) {
      err.textContent = t('rate.failed', { msg: errText(ex) });
      err.hidden = false;
    }
  });
  $('#rate-again').addEventListener('click', () => showCheckin());
}

function relabel() {
  const st = $('#dev-status');
  if (st && st.dataset.key) st.textContent = t(st.dataset.key, { msg: '' });
  const help = $('#dev-help');
  if (help && help.dataset.key) help.textContent = t(help.dataset.key);
  if (state.net) renderNetwork();
  else if ($('#dev-net') && !$('#dev-net').hidden) $('#dev-net').textContent = t('dev.net_checking');
  if (state.visit && document.body.dataset.current === 'waiting') renderWaiting();
  if (document.body.dataset.current === 'ended') {
    const r = state.endReason;
    $('#end-reason').textContent = t(r && t(`end.reason.${r}`) !== `end.reason.${r}` ? `end.reason.${r}` : 'end.reason.other');
    renderSummary();
    renderNotes();
  }
  if (document.body.dataset.current === 'visit') {
    renderVisitDoctor();
  }
  if (state.leaveBtn) state.leaveBtn.textContent = t('visit.leave');
  if (document.body.dataset.current === 'checkin') renderConsent();
  if (state.familyBtn) state.familyBtn.textContent = t('fam.button');
  if (state.departments.length && document.body.dataset.current === 'checkin') {
    /* department names come from the hospital, in its language */
  }
}
