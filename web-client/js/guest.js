// guest.js - the page a patient's family member or caregiver opens from
// the one-time link (guest.html#code=...). The code is redeemed when the
// page opens; the server then hands out a resume secret, kept for this
// tab, with which a dropped connection or a reload comes back. Before any
// media the guest reads the hospital's own notice (consent.get, kind guest)
// and accepts it through the server (consent.accept), which keeps version,
// time and session; then they join with camera and microphone.
// The visit's end, being removed or leaving ends on a screen that says so.

import { t, apply, bindSwitch, lang } from './i18n.js';
import { Signaling } from './signaling.js';
import { getCamera } from './peer.js';
import { Call } from './call.js';
import { $, el, showView, bindConnection, announce, errText, confirmDialog, fatal } from './common.js';

const state = { code: null, resume: null, hello: null, visitId: null, notice: null, call: null, stream: null, ended: null, refused: null, camError: null };
let sig = null;
window.tm = { state, get sig() { return sig; }, get call() { return state.call; } };

const REFUSALS = ['used', 'expired', 'revoked', 'unknown'];

main();

function main() {
  apply();
  bindSwitch($('#lang-switch'));
  state.code = new URLSearchParams(window.location.hash.replace(/^#/, '')).get('code');
  if (!state.code) {
    fatal('guest.no_code', 'guest.no_code_help');
    return;
  }
  state.resume = recallResume();
  window.addEventListener('langchange', relabel);
  $('#gn-form').addEventListener('submit', (e) => { e.preventDefault(); acceptNotice(); });
  connect();
}

function resumeKey() {
  return `telemed.guest.${state.code.slice(0, 16)}`;
}

function recallResume() {
  try { return sessionStorage.getItem(resumeKey()); } catch { return null; }
}

function keepResume(secret) {
  state.resume = secret;
  try {
    if (secret) sessionStorage.setItem(resumeKey(), secret);
    else sessionStorage.removeItem(resumeKey());
  } catch { /* storage blocked: a reload cannot resume, a drop still can */ }
}

async function connect() {
  showView('joining');
  sig = new Signaling({ credentials: () => (state.resume ? { guest_resume: state.resume } : { guest_code: state.code }) });
  bindConnection(sig, { onAuthFailed: refused });
  sig.addEventListener('hello', (e) => onHello(e.detail));
  sig.on('visit.state', (m) => {
    if (m.visit_id === state.visitId && (m.state === 'ended' || m.state === 'cancelled')) finish('ended');
  });
  sig.on('visit.removed', (m) => { if (m.visit_id === state.visitId) finish('removed'); });
  try {
    await sig.start();
  } catch {
    /* refused: shown by refused() */
  }
}

// The server's reason for refusing a link, from its message
// ("guest link refused: used"); never shown as it is.
function refused(d) {
  if (d && d.error !== undefined) {
    const m = /refused:\s*(\w+)/.exec(d.error || '');
    state.refused = m && REFUSALS.includes(m[1]) ? m[1] : 'unknown';
  }
  if (!state.refused) state.refused = 'unknown';
  // A resume that no longer works means the guest's place is gone: during
  // the visit it is over for them; after a reload the link says why.
  if (state.resume) {
    keepResume(null);
    if (state.visitId) finish('ended');
    else sig.retryNow();
    return;
  }
  stopAll();
  renderRefused();
  showView('refused');
}

function renderRefused() {
  $('#gr-text').textContent = t(`guest.refused.${state.refused || 'unknown'}`);
}

function visitOf(hello) {
  const st = hello.state || {};
  return st.visit || null;
}

function participantsOf(hello) {
  const st = hello.state || {};
  return st.participants || (st.visit && st.visit.participants) || [];
}

async function onHello(hello) {
  state.hello = hello;
  if (hello.resume) keepResume(hello.resume);
  const v = visitOf(hello);
  if (!v || v.state === 'ended' || v.state === 'cancelled') {
    finish('ended');
    return;
  }
  if (state.call && state.visitId === v.visit_id) return; /* the call restarts its media itself */
  state.visitId = v.visit_id;
  try {
    state.notice = await sig.request('consent.get', { kind: 'guest', visit_id: v.visit_id });
  } catch (e) {
    announce(t('common.error', { msg: errText(e) }), { kind: 'error' });
    return;
  }
  // Back in the same tab (a reload or a drop): the server has their accept.
  if (state.notice.accepted) enterVisit();
  else {
    renderNotice();
    showView('notice');
  }
}

function renderNotice() {
  const c = state.notice;
  const text = c ? c.texts[lang()] || c.texts['zh-CN'] || c.texts.en || '' : '';
  $('#gn-text').replaceChildren(...text.split('\n').map((line) => el('p', {}, line)));
}

async function acceptNotice() {
  if (!$('#gn-accept').checked) {
    $('#gn-error').textContent = t('guest.accept_needed');
    $('#gn-error').hidden = false;
    $('#gn-accept').focus();
    return;
  }
  $('#gn-join').disabled = true;
  try {
    await sig.request('consent.accept', { visit_id: state.visitId, version: state.notice.version });
  } catch (e) {
    $('#gn-error').textContent = t('common.error', { msg: errText(e) });
    $('#gn-error').hidden = false;
    return;
  } finally {
    $('#gn-join').disabled = false;
  }
  enterVisit();
}

async function enterVisit() {
  if (state.call) return;
  showView('joining');
  if (!state.stream) {
    const cam = await getCamera();
    state.stream = cam.stream || null;
    state.camError = cam.error ? (cam.error === 'failed' ? 'dev.busy' : `dev.${cam.error}`) : null;
  }
  if (state.call || state.ended) return;
  startCall(participantsOf(state.hello));
}

function startCall(participants) {
  showView('visit');
  const leave = el('button', { class: 'btn btn-danger ctl', type: 'button' }, t('guest.leave'));
  leave.addEventListener('click', leaveVisit);
  state.leaveBtn = leave;
  state.call = new Call({
    mount: $('#visit-mount'), sig, hello: state.hello, visitId: state.visitId, role: 'guest', visitRole: 'guest',
    stream: state.stream, extraControls: [leave], onParticipants: renderHead,
  });
  if (participants.length) state.call.setParticipants(participants, true);
  renderHead();
  renderNoCamera();
  state.call.startMedia();
}

function renderHead() {
  const list = state.call ? state.call.participants : [];
  const patient = list.find((p) => p.role === 'patient');
  $('#gv-h').textContent = patient && patient.name ? t('guest.with', { patient: patient.name }) : t('guest.in_visit');
  const me = list.find((p) => state.hello && p.id === state.hello.sub);
  if (me && me.name) $('#who').textContent = me.name;
}

function renderNoCamera() {
  const n = $('#gv-nocam');
  n.hidden = !state.camError;
  if (state.camError) n.textContent = t('guest.no_camera', { why: t(state.camError) });
}

async function leaveVisit() {
  if (!await confirmDialog(t('guest.leave_confirm'), { okText: t('guest.leave'), cancelText: t('common.cancel'), danger: true })) return;
  try {
    await sig.request('visit.leave', { visit_id: state.visitId });
    finish('left');
  } catch (e) {
    announce(t('common.error', { msg: errText(e) }), { kind: 'error' });
  }
}

function stopAll() {
  if (state.call) state.call.close({ stopCamera: true });
  state.call = null;
  if (sig && sig.state !== 'closed') sig.stop();
  if (state.stream) for (const tr of state.stream.getTracks()) tr.stop();
}

// The end screen: the visit ended, the doctor removed them, or they left.
function finish(why) {
  if (state.ended) return;
  state.ended = why;
  keepResume(null);
  stopAll();
  renderEnded();
  showView('ended');
}

function renderEnded() {
  const why = state.ended;
  $('#ge-h').textContent = t(why === 'removed' ? 'guest.removed_h' : 'guest.ended_h');
  $('#ge-text').textContent = t(why === 'removed' ? 'guest.removed' : why === 'left' ? 'guest.left' : 'guest.ended');
}

function relabel() {
  if (state.notice) renderNotice();
  if (state.refused) renderRefused();
  if (state.ended) renderEnded();
  if (state.call) {
    renderHead();
    renderNoCamera();
    if (state.leaveBtn) state.leaveBtn.textContent = t('guest.leave');
  }
}
