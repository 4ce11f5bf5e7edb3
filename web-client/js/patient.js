// patient.js - the patient page: device check, check-in, waiting room, the
// visit and the rating. The page follows the server's view of the patient
// (hello's state and visit.state pushes), so a reload or a reconnect lands
// the patient where they were.

import { t, fmtDateTime } from './i18n.js';
import { Signaling, api } from './signaling.js';
import { getCamera } from './peer.js';
import { Call } from './call.js';
import { $, $$, el, initPage, showView, bindConnection, announce, errText, confirmDialog } from './common.js';

const page = initPage();
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
  });
  sig.on('queue.position', onPosition);
  sig.on('visit.state', onVisitState);
  window.addEventListener('langchange', relabel);
  bindDevice();
  bindCheckin();
  bindWaiting();
  bindRating();
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
    if (v.state === 'active') startVisit(v);
    else showWaiting(v, st.position);
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
    if (v.state !== 'active' && st.position) onPosition({ visit_id: v.visit_id, position: st.position });
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
}

function syncCheckinType() {
  const appt = $('input[name="ci-type"]:checked').value === 'appointment';
  $('#ci-dept-field').hidden = appt;
  $('#ci-appt-field').hidden = !appt;
}

async function showCheckin() {
  showView('checkin');
  $('#ci-error').hidden = true;
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
  const appt = $('input[name="ci-type"]:checked').value === 'appointment';
  const fields = { urgent: $('#ci-urgent').checked, consent_recording: true };
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
    state.visit = { visit_id: r.visit_id, state: 'waiting', dept: r.dept || fields.dept, urgent: fields.urgent };
    showWaiting(state.visit, r.position, r.estimated_wait_s);
  } catch (e) {
    showCheckinError(e.code === 'forbidden' ? t('checkin.first_refused') : t('checkin.failed', { msg: errText(e) }));
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
      announce(t('wait.left'));
      showCheckin();
    } catch (e) {
      announce(t('common.error', { msg: errText(e) }), { kind: 'error' });
    }
  });
}

function deptName(id) {
  return (state.departments.find((d) => d.id === id) || {}).name || id || '';
}

async function showWaiting(v, position, estimate) {
  if (document.body.dataset.current !== 'waiting') showView('waiting');
  if (!state.departments.length) {
    try { state.departments = (await api(page.token, '/departments')).departments || []; } catch { /* names are optional */ }
  }
  $('#wait-dept').textContent = `${t('wait.dept', { dept: deptName(v.dept) })}${v.urgent ? ` · ${t('wait.urgent')}` : ''}`;
  $('#wait-offered').hidden = v.state !== 'offered';
  const prev = $('#wait-preview');
  if (state.stream && !state.audioOnly) { prev.srcObject = state.stream; prev.parentElement.hidden = false; } else prev.parentElement.hidden = true;
  if (position !== undefined) onPosition({ visit_id: v.visit_id, position, estimated_wait_s: estimate });
}

function onPosition(m) {
  if (m.visit_id !== state.visitId) return;
  state.position = m;
  $('#wait-position').textContent = m.position ?? '–';
  const est = m.estimated_wait_s;
  const estEl = $('#wait-estimate');
  if (est === null) estEl.textContent = t('wait.estimate_unknown');
  else if (est !== undefined) estEl.textContent = est < 60 ? t('wait.under_minute') : t('wait.minutes', { n: Math.ceil(est / 60) });
  estEl.classList.toggle('fig-text', est === null);
  const parts = [];
  if (m.doctors_on_duty !== undefined) parts.push(t('wait.doctors', { n: m.doctors_on_duty }));
  if (m.waiting !== undefined) parts.push(t('wait.waiting_total', { n: m.waiting }));
  $('#wait-doctors').textContent = parts.join(' · ');
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
      state.visitId = null;
      if (m.state === 'cancelled' && m.end_reason === 'patient_left') { showCheckin(); break; }
      showEnded(m.visit_id, m.end_reason, m.state === 'ended');
      break;
    default:
      break;
  }
}

function startVisit(v) {
  if (state.call && state.call.visitId === v.visit_id) return;
  endCall();
  showView('visit');
  const leave = el('button', { class: 'btn btn-danger ctl', type: 'button' }, t('visit.leave'));
  leave.addEventListener('click', async () => {
    if (!await confirmDialog(t('visit.leave_confirm'), { okText: t('visit.leave'), cancelText: t('common.cancel'), danger: true })) return;
    sig.request('visit.end', { visit_id: v.visit_id, reason: 'patient_left' }).catch((e) => announce(t('common.error', { msg: errText(e) }), { kind: 'error' }));
  });
  state.leaveBtn = leave;
  state.call = new Call({ mount: $('#visit-mount'), sig, hello: state.hello, visitId: v.visit_id, role: 'patient', stream: state.stream, extraControls: [leave] });
  state.call.startMedia();
}

function endCall() {
  if (state.call) state.call.close();
  state.call = null;
}

/* ---- end and rating ----------------------------------------------- */

function showEnded(visitId, reason, rate = true) {
  state.rateVisitId = visitId;
  state.endReason = reason;
  showView('ended');
  $('#end-reason').textContent = t(reason && t(`end.reason.${reason}`) !== `end.reason.${reason}` ? `end.reason.${reason}` : 'end.reason.other');
  $('#rate-form').hidden = !rate;
  $('#rate-thanks').hidden = true;
  $('#rate-again').hidden = rate;
  $('#rate-error').hidden = true;
  for (const r of $$('input[name="score"]')) r.checked = false;
  $('#rate-comment').value = '';
}

function bindRating() {
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
  if (state.visit && document.body.dataset.current === 'waiting') showWaiting(state.visit);
  if (state.position) onPosition(state.position);
  if (document.body.dataset.current === 'ended') {
    const r = state.endReason;
    $('#end-reason').textContent = t(r && t(`end.reason.${r}`) !== `end.reason.${r}` ? `end.reason.${r}` : 'end.reason.other');
  }
  if (state.leaveBtn) state.leaveBtn.textContent = t('visit.leave');
  if (state.departments.length && document.body.dataset.current === 'checkin') {
    /* department names come from the hospital, in its language */
  }
}
