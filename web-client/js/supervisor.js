// supervisor.js - the supervisor's screen: live department tiles, alerts,
// live visits with their quality figures (overview pushes, about once a
// second), watching a live visit receive-only, and the visit records with
// a detail page (timeline, statistics, notes, chat, rating, recording).

import { t, fmtTime, fmtDateTime, fmtDuration, codeText } from './i18n.js';
import { Signaling, api } from './signaling.js';
import { MediaPeer, mediaRefusalText } from './peer.js';
import { Tiles, roleText } from './party.js';
import { $, $$, el, initPage, showView, bindConnection, announce, errText } from './common.js';
import { watchToday, todayText } from './figures_today.js';
import { Wall, WALL_MAX } from './wall.js';

const page = initPage(['supervisor', 'admin']);
const state = { hello: null, overview: null, watching: null, peer: null, departments: [], doctors: [], results: null, detail: null, recordingUrl: null };
let sig = null;
window.tm = { state, get sig() { return sig; } };

// Thresholds for the alerts the page derives from the figures.
const POOR_LOSS_PCT = 5;
const POOR_RTT_MS = 400;
const FEED_BACKLOG_AGE_S = 120;

if (page) main();

async function main() {
  // Only the one visit the supervisor opened moves the page: a wall tile's
  // watch of another server's visit is refused and left off the wall.
  sig = new Signaling({ token: page.token, followMove: (m) => !!m.visit_id && m.visit_id === state.watchAsked });
  bindConnection(sig);
  watchToday(page.token, () => { if (state.overview) renderRoster(state.overview); });
  state.wall = new Wall({ sig, grid: $('#wall-grid'), names: { doctor: doctorName, dept: deptName } });
  state.wall.addEventListener('open', (e) => watch(e.detail.visitId, { fromWall: true }));
  state.wall.addEventListener('change', renderWall);
  state.wall.addEventListener('names', () => { if (state.overview) renderOverview(); });
  sig.on('overview', (m) => { noteOfferLapses(m); state.overview = m; renderOverview(); state.wall.sync(m.visits); });
  sig.on('visit.state', (m) => {
    if (state.watching && m.visit_id === state.watching && (m.state === 'ended' || m.state === 'cancelled')) {
      stopWatching(false);
      announce(t('sup.watch_ended'));
    }
  });
  // Watchers receive the visit's chat: shown read-only beside the video.
  sig.on('chat.message', (m) => {
    if (m.visit_id === state.watching) addWatchChat(m);
  });
  // A visit of any size: the server names everyone and says which m-line
  // carries whom; from then on the watch shows named tiles.
  sig.on('visit.participants', (m) => {
    if (m.visit_id !== state.watching) return;
    state.watchPeople = m.participants || [];
    if (state.tiles) state.tiles.setParticipants(state.watchPeople);
    if (state.peer) state.peer.ensureRecv(state.watchPeople.length);
    renderWatchHead();
  });
  sig.on('media.streams', (m) => {
    if (m.visit_id !== state.watching) return;
    useTiles();
    state.tiles.setStreams(m.streams || []);
  });
  sig.on('media.speaker', (m) => {
    if (m.visit_id === state.watching && state.tiles) state.tiles.setSpeaker(m.participant_id || null);
  });
  // The visit asked for is held by another server: the page goes there
  // (signaling.js follows the move) and watches it once connected.
  sig.on('session.move', (m) => {
    if (m.visit_id && m.visit_id === state.watchAsked) state.watchAfterMove = m.visit_id;
  });
  sig.addEventListener('hello', () => {
    // Every (re)connect: subscribe again, and resume watching.
    sig.request('overview.subscribe', {}).catch(() => {});
    const moved = state.watchAfterMove;
    state.watchAfterMove = null;
    if (moved && moved !== state.watching) watch(moved);
    else if (state.watching) rewatch();
    // The overview held is the last server's, where its own visits are not
    // remote: the wall starts again from this server's, which follows.
    state.overview = null;
    state.wall.rewatch([]);
  });
  window.addEventListener('langchange', () => { if (state.watching) setWatchSound(state.watchSound); if (state.tiles) state.tiles.relabel(); state.wall.relabel(); renderOverview(); renderCompliance(); if (state.results) renderResults(); if (state.detail) renderDetail(); fillFilters(); });
  bindTabs();
  $('#unwatch').addEventListener('click', () => stopWatching(true));
  $('#wall-toggle').addEventListener('click', toggleWall);
  $('#watch-wall').addEventListener('click', async () => {
    await stopWatching(true);
    toggleWall();
  });
  $('#watch-sound').addEventListener('click', () => setWatchSound(!state.watchSound));
  $('#search-form').addEventListener('submit', (e) => { e.preventDefault(); search(); });
  $('#detail-back').addEventListener('click', closeDetail);
  try {
    state.hello = await sig.start();
    state.wall.iceServers = state.hello.ice_servers || [];
    showView('sup', { focus: false });
    loadFilters();
    loadCompliance();
    setInterval(loadCompliance, 60000);
  } catch {
    /* shown by bindConnection */
  }
}

function bindTabs() {
  const tabs = [$('#tab-live'), $('#tab-records')];
  const select = (tab) => {
    for (const x of tabs) {
      const on = x === tab;
      x.setAttribute('aria-selected', String(on));
      x.tabIndex = on ? 0 : -1;
      $(`#${x.getAttribute('aria-controls')}`).hidden = !on;
    }
    tab.focus();
    if (tab.id === 'tab-records' && !state.results) search();
  };
  for (const tab of tabs) {
    tab.addEventListener('click', () => select(tab));
    tab.addEventListener('keydown', (e) => {
      const i = tabs.indexOf(tab);
      if (e.key === 'ArrowRight') select(tabs[(i + 1) % tabs.length]);
      else if (e.key === 'ArrowLeft') select(tabs[(i + tabs.length - 1) % tabs.length]);
    });
  }
}

// Visits are UUIDs: the first eight hex digits tell them apart on a
// screen; the whole id stays in the title and the data attributes.
function shortId(id) {
  return String(id || '').replace(/^v-/, '').slice(0, 8);
}

function visitRef(id) {
  return el('span', { class: 'mono nowrap', title: id }, shortId(id));
}

function doctorName(id) {
  const d = state.doctors.find((x) => x.id === id);
  return (d && d.name) || id || '';
}

// A person as the supervisor reads them: the name, the id under it.
function person(id, name) {
  if (!id) return t('common.none');
  return name && name !== id ? el('span', { class: 'person' }, name, el('span', { class: 'person-id mono' }, id)) : el('span', { class: 'mono nowrap' }, id);
}

function whoEnded(by, rec) {
  if (!by || by === 'system') return t('role.system');
  if (by === rec.doctor_id) return doctorName(by);
  if (by === rec.patient_id) return `${t('role.patient')} ${by}`;
  return by;
}

function deptName(id) {
  const d = state.departments.find((x) => x.id === id) || (state.overview && (state.overview.departments || []).find((x) => x.id === id));
  return (d && d.name) || id || t('common.none');
}

/* ---- live --------------------------------------------------------- */

// Summary of a peer's media figures: the worst inbound loss and RTT, the
// video resolution and frame rate, the total bitrate.
function summarize(streams) {
  if (!Array.isArray(streams)) return null;
  let kbps = 0, loss = 0, rtt = -1, video = null;
  for (const s of streams) {
    if (s.direction !== 'in') continue;
    kbps += (s.bitrate_bps || 0) / 1000;
    loss = Math.max(loss, s.loss_pct || 0);
    if (s.rtt_ms > rtt) rtt = s.rtt_ms;
    if (s.kind === 'video' && s.width) video = `${s.width}×${s.height}${s.fps ? ` ${Math.round(s.fps)} fps` : ''}`;
  }
  return { kbps, loss, rtt, video };
}

function qualityCell(v) {
  if (!v.quality) return el('span', { class: 'muted' }, t('common.none'));
  const lines = [];
  for (const [peer, streams] of Object.entries(v.quality)) {
    const s = summarize(streams);
    if (!s) continue;
    const who = peer.split(':')[0];
    const bad = s.loss > POOR_LOSS_PCT || s.rtt > POOR_RTT_MS;
    // A peer that sends sound but no picture is on voice only: said so.
    const voiceOnly = streams.some((x) => x.direction === 'in' && x.kind === 'audio') && !streams.some((x) => x.direction === 'in' && x.kind === 'video');
    lines.push(el('div', { class: bad ? 'error' : null, 'data-peer': who },
      `${t(who === 'doctor' ? 'chat.doctor' : who === 'patient' ? 'chat.patient' : who === 'guest' ? 'prole.guest' : 'sup.title')}${t('common.colon')}`,
      `${Math.round(s.kbps)} kbit/s, ${s.loss.toFixed(1)}%`, s.rtt >= 0 ? `, ${s.rtt} ms` : '', s.video ? `, ${s.video}` : '',
      voiceOnly ? ' ' : null, voiceOnly ? el('span', { class: 'tag' }, t('sup.voice_only')) : null));
  }
  return lines.length ? el('div', { class: 'q-cell' }, lines) : el('span', { class: 'muted' }, t('common.none'));
}

// The overview lists each doctor's open offer. An offer that disappears
// while its doctor turns away (the server does that when an offer times
// out) is an offer nobody took: shown for a while as an alert.
const OFFER_ALERT_MS = 10 * 60 * 1000;
function noteOfferLapses(ov) {
  const now = Date.now();
  const prev = state.doctorsSeen || new Map();
  const next = new Map();
  state.offerLapses = (state.offerLapses || []).filter((a) => now - a.at < OFFER_ALERT_MS);
  for (const d of ov.doctors || []) {
    const before = prev.get(d.id);
    if (before && before.offer && !d.offer && d.status === 'away' && before.status !== 'away') {
      state.offerLapses.push({ kind: 'offer_timeout', doctor_id: d.id, visit_id: before.offer, at: now });
    }
    next.set(d.id, { offer: d.offer, status: d.status });
  }
  state.doctorsSeen = next;
}

function derivedAlerts(ov) {
  const alerts = [...(ov.alerts || [])];
  if (!alerts.some((a) => a.kind === 'offer_timeout' || a.kind === 'offer_timeouts')) alerts.push(...(state.offerLapses || []));
  for (const v of ov.visits || []) {
    if (v.state !== 'active' || !v.quality) continue;
    for (const streams of Object.values(v.quality)) {
      const s = summarize(streams);
      if (s && (s.loss > POOR_LOSS_PCT || s.rtt > POOR_RTT_MS)) {
        alerts.push({ kind: 'poor_quality', visit_id: v.id, loss_pct: s.loss, rtt_ms: s.rtt });
        break;
      }
    }
  }
  const f = ov.feed;
  if (f && ((f.queue_depth > 0 && f.oldest_undelivered_age_s > FEED_BACKLOG_AGE_S) || f.dead > 0)) {
    alerts.push({ kind: 'feed_backlog', n: f.queue_depth + (f.dead || 0) });
  }
  return alerts;
}

// What went wrong in a poor-quality alert, from the server's fields
// (stream_kind, loss_pct, frozen) or the page's own (loss_pct, rtt_ms).
function qualityDetail(a) {
  const parts = [];
  if (a.frozen) parts.push(t('sup.q_frozen'));
  if (typeof a.loss_pct === 'number' && (a.loss_pct > 0 || !a.frozen)) {
    parts.push(t('sup.q_loss', { kind: a.stream_kind ? codeText('media', a.stream_kind) : '', loss: a.loss_pct.toFixed(1) }).trim());
  }
  if (typeof a.rtt_ms === 'number' && a.rtt_ms > POOR_RTT_MS) parts.push(t('q.detail_rtt', { rtt: Math.round(a.rtt_ms) }));
  return parts.join(t('common.list_sep')) || t('common.none');
}

// Whose media an alert is about (media.quality alerts name a role).
function alertWho(a) {
  return a.role === 'doctor' ? t('chat.doctor') : a.role === 'patient' ? t('chat.patient') : '';
}

function alertText(a) {
  const k = `sup.alert.${a.kind}`;
  const vars = { visit: shortId(a.visit_id), wait: fmtDuration(a.waited_s), detail: qualityDetail(a), doctor: doctorName(a.doctor_id), n: a.n ?? a.queue_depth ?? a.count ?? 0, who: alertWho(a), dur: fmtDuration(a.duration_s) };
  return t(k) !== k ? t(k, vars) : t('sup.alert.other', vars);
}

function renderOverview() {
  const ov = state.overview;
  if (!ov) return;
  $('#updated').textContent = t('sup.updated', { time: new Date(ov.at || Date.now()).toLocaleTimeString(document.documentElement.lang) });
  const alerts = derivedAlerts(ov);
  const alertDepts = new Set();
  for (const a of alerts) {
    const v = (ov.visits || []).find((x) => x.id === a.visit_id);
    if (v) alertDepts.add(v.dept);
  }
  $('#tiles').replaceChildren(...(ov.departments || []).map((d) => el('article', { class: `tile${alertDepts.has(d.id) ? ' alerting' : ''}`, 'data-dept': d.id, 'aria-labelledby': `tile-${d.id}` },
    el('h3', { id: `tile-${d.id}` }, d.name || d.id),
    el('dl', {},
      el('dt', {}, t('sup.waiting')), el('dd', { 'data-k': 'waiting' }, String(d.waiting ?? 0)),
      el('dt', {}, t('sup.in_visit')), el('dd', { 'data-k': 'in_visit' }, String(d.in_visit ?? 0)),
      el('dt', {}, t('sup.doctors_on_duty')), el('dd', { 'data-k': 'doctors_on_duty' }, String(d.doctors_on_duty ?? 0)),
      el('dt', {}, t('sup.longest_wait')), el('dd', { 'data-k': 'longest_wait' }, d.longest_wait_s ? fmtDuration(d.longest_wait_s) : t('common.none'))))));
  // Alerts change rarely; rewriting them every second would make screen
  // readers repeat them.
  const alertKey = JSON.stringify(alerts.map((a) => [a.kind, a.visit_id, a.n]));
  if (alertKey !== state.alertKey || state.alertLang !== document.documentElement.lang) {
    state.alertKey = alertKey;
    state.alertLang = document.documentElement.lang;
    $('#alerts').replaceChildren(...alerts.map((a) => el('li', { 'data-kind': a.kind, 'data-visit': a.visit_id || null, title: a.visit_id || null }, alertText(a))));
  }
  $('#no-alerts').hidden = alerts.length > 0;
  renderRoster(ov);
  const f = ov.feed;
  $('#feed').textContent = f ? `${t('sup.feed')}${t('common.colon')}${t('sup.feed_state', { pending: f.queue_depth ?? 0, dead: f.dead ?? 0 })}` : '';
  // The table is rebuilt every second: keep keyboard focus on the same button.
  const active = document.activeElement;
  const focusVisit = active && active.classList.contains('watch-btn') ? active.dataset.visit : null;
  const visits = (ov.visits || []).slice().sort((a, b) => (a.state === 'active' ? 0 : 1) - (b.state === 'active' ? 0 : 1) || (b.urgent ? 1 : 0) - (a.urgent ? 1 : 0));
  $('#live-body').replaceChildren(...visits.map((v) => el('tr', { 'data-visit': v.id, 'data-state': v.state },
    el('td', {}, visitRef(v.id), v.urgent ? ' ' : null, v.urgent ? el('span', { class: 'tag tag-urgent' }, t('doc.urgent')) : null),
    el('td', {}, deptName(v.dept)),
    el('td', {}, person(v.doctor_id, doctorName(v.doctor_id)), partyLines(v.party)),
    el('td', {}, person(v.patient_id, patientName(v))),
    el('td', { class: 'nowrap' }, t(`state.${v.state}`), v.watchers ? ' ' : null, v.watchers ? el('span', { class: 'tag' }, t('sup.watchers', { n: v.watchers })) : null),
    el('td', { class: 'nowrap' }, v.state === 'active' ? fmtDuration(v.duration_s) : fmtDuration(v.waited_s)),
    el('td', {}, qualityCell(v)),
    el('td', {}, watchCell(v)))));
  if (focusVisit) $(`#live-body button[data-visit="${CSS.escape(focusVisit)}"]`)?.focus();
  if (state.watching) renderWatchHead();
  renderWall();
  $('#live-table').hidden = visits.length === 0;
  $('#no-live').hidden = visits.length > 0;
}

// How to watch a live visit. One that another server holds is watched
// there: its button says which, and watching moves this page to it (the
// server sends session.move). One whose server stopped has none until
// another server has taken it over.
function watchCell(v) {
  if (v.remote && !v.node) {
    return el('span', { class: 'tag tag-moving', 'data-node-moving': '', title: t('sup.node_moving_title') }, t('sup.node_moving'));
  }
  if (v.state !== 'active') return null;
  const where = v.remote ? t('sup.on_node_title', { node: v.node }) : null;
  const button = el('button', { class: 'btn btn-small watch-btn', type: 'button', 'data-visit': v.id, title: where, disabled: state.watching === v.id, onclick: () => watch(v.id) }, t('sup.watch'));
  if (!v.remote) return button;
  return [button, ' ', el('span', { class: 'tag node-tag', 'data-node': v.node, title: where }, t('sup.on_node', { node: v.node }))];
}

// The others in a visit of more than two, under its doctor: staff by
// name, a guest by their role only (the overview carries no guest names).
function partyLines(party) {
  if (!Array.isArray(party) || !party.length) return null;
  return el('ul', { class: 'party-lines' }, party.map((m) => el('li', { 'data-participant': m.id, 'data-role': m.role },
    m.role === 'guest' ? roleText(m.role) : `${doctorName(m.id)} · ${roleText(m.role)}`,
    m.connected === false ? ` (${t('party.reconnecting')})` : '')));
}

// Who is on duty now: every doctor the server knows (connected, or holding
// a visit through a drop), by name, with what they are doing.
function renderRoster(ov) {
  const docs = (ov.doctors || []).slice().sort((a, b) => doctorName(a.id).localeCompare(doctorName(b.id)));
  $('#roster-body').replaceChildren(...docs.map((d) => el('tr', { 'data-doctor': d.id },
    el('td', {}, person(d.id, doctorName(d.id))),
    el('td', { class: 'nowrap' }, codeText('doc.status', d.status), d.connected ? null : ' ', d.connected ? null : el('span', { class: 'tag' }, t('doc.offline'))),
    el('td', {}, currentVisits(ov, d)),
    el('td', {}, d.offer ? visitRef(d.offer) : t('common.none')),
    el('td', { class: 'roster-today' }, todayText(d.id)))));
  $('#roster-table').hidden = docs.length === 0;
  $('#no-roster').hidden = docs.length > 0;
}

// The overview names nobody; a watch (the wall's or the page's) does.
function patientName(v) {
  const watched = v.id === state.watching && (state.watchPeople || []).find((p) => p.role === 'patient');
  return (watched && watched.name) || state.wall.patientName(v.id) || v.patient_name || v.patient_id || '';
}

// The doctor's visits now: with whom and for how long, each a way to watch it.
function currentVisits(ov, d) {
  const mine = (ov.visits || []).filter((v) => v.state === 'active' && (v.doctor_id === d.id || (v.party || []).some((m) => m.id === d.id)));
  if (!mine.length) return d.visits ? t('sup.roster_in_visit', { n: d.visits }) : t('common.none');
  return el('ul', { class: 'roster-visits' }, mine.map((v) => el('li', { 'data-visit': v.id },
    el('button', { class: 'link-btn', type: 'button', title: v.id, onclick: () => watch(v.id) },
      t('sup.roster_visit', { patient: patientName(v), dur: fmtDuration(v.duration_s) })))));
}

/* ---- watch -------------------------------------------------------- */

async function watch(visitId, { fromWall = false } = {}) {
  if (state.wall.on) await state.wall.stop(visitId);
  if (state.watching && state.watching !== visitId) await stopWatching(true);
  state.watchAsked = visitId;
  try {
    await sig.request('visit.watch', { visit_id: visitId });
  } catch (e) {
    // Held by another server, which the page is moving to: the watch
    // starts there, after its hello.
    if (state.watchAfterMove === visitId) {
      const v = ((state.overview && state.overview.visits) || []).find((x) => x.id === visitId);
      announce(t('sup.watch_moving', { node: (v && v.node) || '' }));
      return;
    }
    announce(t('sup.watch_failed', { msg: errText(e) }), { kind: 'error' });
    return;
  } finally {
    state.watchAsked = null;
  }
  state.watching = visitId;
  state.watchPeople = null;
  $('#watch').hidden = false;
  $('#watch-wall').hidden = !fromWall;
  renderWatchHead();
  $('#watch-grid').replaceChildren();
  $('#watch-chat').replaceChildren();
  state.watchChatSeen = new Set();
  setWatchSound(true);
  loadWatchChat(visitId);
  $('#watch-msg').textContent = t('visit.media_connecting');
  $('#watch-h').tabIndex = -1;
  $('#watch-h').focus();
  startPeer(visitId);
  renderOverview();
}

// One chat line of the watched visit, from a push or from the record.
function addWatchChat(m) {
  if (m.message_id !== undefined) {
    if (state.watchChatSeen.has(m.message_id)) return;
    state.watchChatSeen.add(m.message_id);
  }
  const who = m.from_role === 'doctor' ? doctorName(m.from) : `${t('chat.patient')} ${m.from || ''}`.trim();
  $('#watch-chat').append(el('li', { class: `chat-msg ${m.from_role === 'doctor' ? 'mine' : 'theirs'}`, 'data-id': m.message_id ?? null },
    el('span', { class: 'chat-meta' }, `${who} · ${fmtTime(m.at)}`),
    el('span', { class: 'chat-text' }, m.text)));
}

// What was said before the watch began comes from the visit record; the
// pushes that arrive meanwhile are kept in order by message id.
async function loadWatchChat(visitId) {
  let rec;
  try {
    rec = await api(page.token, `/visits/${encodeURIComponent(visitId)}`);
  } catch {
    return; /* the live chat still shows */
  }
  if (state.watching !== visitId) return;
  const live = $$('#watch-chat li');
  for (const c of rec.chat || []) addWatchChat({ message_id: c.id, from: c.sender_id, from_role: c.sender_role, text: c.body, at: c.sent_at });
  // Record lines went after the live ones: put the list back in id order.
  if (live.length) {
    const items = $$('#watch-chat li').sort((a, b) => Number(a.dataset.id) - Number(b.dataset.id));
    $('#watch-chat').replaceChildren(...items);
  }
}

// The watched visit's sound: on by default, one switch for both sides.
function setWatchSound(on) {
  state.watchSound = on;
  for (const a of $$('#watch-grid audio, #watch-grid .tile-video')) a.muted = !on;
  const b = $('#watch-sound');
  b.textContent = t(on ? 'sup.sound_off' : 'sup.sound_on');
  b.setAttribute('aria-pressed', String(!on));
}

function watchedVisit() {
  return ((state.overview && state.overview.visits) || []).find((v) => v.id === state.watching) || { id: state.watching };
}

function renderWatchHead() {
  const v = watchedVisit();
  const n = (state.watchPeople || []).length;
  $('#watch-h').textContent = n > 2 ? t('sup.watching_party', { n }) : v.doctor_id
    ? t('sup.watching_who', { doctor: doctorName(v.doctor_id), patient: patientName(v) })
    : t('sup.watching', { visit: shortId(v.id) });
  $('#watch-h').title = v.id || '';
}

// A watched stream's tile: by the side it comes from when the server names
// it in the stream id, else numbered.
function tileLabel(streams, n) {
  const v = watchedVisit();
  const id = (streams && streams[0] && streams[0].id) || '';
  if (/^doctor\b/.test(id)) return t('sup.tile_doctor', { name: doctorName(v.doctor_id) });
  if (/^patient\b/.test(id)) return t('sup.tile_patient', { name: v.patient_name || v.patient_id || '' });
  return t('sup.tile_video', { n });
}

// From the first media.streams on, the watch is tiles named by the
// server's participants; before (or from a server that does not say), a
// figure per track labelled from the stream id.
function useTiles() {
  if (state.tiles) return;
  const tiles = new Tiles({ selfId: null, viewer: 'supervisor', watcher: true, report: (id, width, height) => {
    if (state.watching) sig.request('media.view', { visit_id: state.watching, participant_id: id, width, height }).catch(() => {});
  } });
  state.tiles = tiles;
  tiles.addEventListener('play', (e) => { e.detail.video.muted = !state.watchSound; e.detail.video.play().catch(() => {}); });
  tiles.setParticipants(state.watchPeople || fallbackPeople());
  if (state.peer) tiles.setPeer(state.peer);
  $('#watch-grid').replaceChildren(el('div', { class: 'stage watch-stage' }, tiles.main), tiles.thumbs);
  tiles.layout();
}

// The two people of a visit as the overview names them.
function fallbackPeople() {
  const v = watchedVisit();
  const list = [];
  if (v.patient_id) list.push({ id: v.patient_id, role: 'patient', name: v.patient_name || v.patient_id });
  if (v.doctor_id) list.push({ id: v.doctor_id, role: 'attending', name: doctorName(v.doctor_id) });
  return list;
}

function dropTiles() {
  if (state.tiles) state.tiles.close();
  state.tiles = null;
}

function startPeer(visitId) {
  if (state.peer) state.peer.close();
  dropTiles();
  state.peerGen = (state.peerGen || 0) + 1;
  $('#watch-grid').replaceChildren();
  // One audio and one video from each participant (two in a 1:1 visit).
  const n = Math.max(2, (state.watchPeople || []).length);
  const peer = new MediaPeer({ sig, visitId, iceServers: (state.hello && state.hello.ice_servers) || [], recv: { audio: n, video: n } });
  state.peer = peer;
  peer.addEventListener('track', (e) => {
    if (state.tiles) {
      state.tiles.assign();
      return;
    }
    const track = e.detail.track;
    const stream = new MediaStream([track]);
    let media;
    if (track.kind === 'video') {
      const label = tileLabel(e.detail.streams, $$('#watch-grid video').length + 1);
      media = el('video', { autoplay: true, playsinline: true, muted: true, 'aria-label': label });
      media.muted = true;
      $('#watch-grid').append(el('figure', { class: 'watch-fig' }, media, el('figcaption', { class: 'muted' }, label)));
    } else {
      media = el('audio', { autoplay: true });
      media.muted = !state.watchSound;
      $('#watch-grid').append(media);
    }
    media.srcObject = stream;
    media.play().catch(() => {});
  });
  peer.addEventListener('state', (e) => {
    const s = e.detail.state;
    const msg = s === 'unavailable' ? t(mediaRefusalText(e.detail.reason)) : s === 'retrying' ? t('visit.media_retrying') : s === 'failed' ? t('visit.media_failed') : s === 'connected' ? '' : t('visit.media_connecting');
    $('#watch-msg').textContent = msg;
  });
  peer.start().catch(() => {});
}

async function rewatch() {
  const id = state.watching;
  state.watchAsked = id;
  try {
    await sig.request('visit.watch', { visit_id: id });
    startPeer(id);
  } catch {
    // Another server took the visit over: the watch goes on there.
    if (state.watchAfterMove !== id) stopWatching(false);
  } finally {
    state.watchAsked = null;
  }
}

async function stopWatching(tellServer) {
  const id = state.watching;
  state.watching = null;
  state.watchPeople = null;
  if (state.peer) state.peer.close();
  state.peer = null;
  dropTiles();
  $('#watch').hidden = true;
  $('#watch-grid').replaceChildren();
  if (tellServer && id) await sig.request('visit.unwatch', { visit_id: id }).catch(() => {});
  renderOverview();
}

/* ---- the video wall ----------------------------------------------- */

// The wall's visits: this server's (another server's are watched there).
function activeVisits() {
  return ((state.overview && state.overview.visits) || []).filter((v) => v.state === 'active' && !v.remote);
}

async function toggleWall() {
  if (state.wall.on) {
    await state.wall.stop();
  } else {
    if (state.watching) await stopWatching(true);
    state.wall.start(activeVisits());
  }
  renderWall();
}

function renderWall() {
  const on = state.wall.on;
  const n = activeVisits().length;
  const b = $('#wall-toggle');
  b.textContent = on ? t('wall.hide') : t('wall.show', { n: Math.min(n, WALL_MAX) });
  b.setAttribute('aria-pressed', String(on));
  b.disabled = !on && n === 0;
  $('#wall-grid').hidden = !on;
  $('#wall-empty').hidden = !on || state.wall.size > 0 || n > 0;
}

/* ---- records ------------------------------------------------------ */

/* ---- the regulator upload: each day sent, and in time? ------------- */

async function loadCompliance() {
  try {
    state.compliance = (await api(page.token, '/feed/compliance?days=7')).profiles || [];
  } catch {
    state.compliance = null;
  }
  renderCompliance();
}

function renderCompliance() {
  const profiles = state.compliance || [];
  $('#upload').hidden = profiles.length === 0;
  const missed = profiles.filter((p) => p.yesterday && p.yesterday.deadline === 'missed');
  $('#upload-alert').hidden = missed.length === 0;
  $('#upload-alert').textContent = missed.map((p) => t('sup.upload_missed', { profile: codeText('sup.profile', p.profile), day: p.yesterday.day })).join(' ');
  const head = ['sup.upload_day', 'sup.upload_visits', 'sup.upload_ratings', 'sup.upload_accepted', 'sup.upload_pending', 'sup.upload_dead', 'sup.upload_checkin', 'sup.upload_deadline'];
  $('#upload-profiles').replaceChildren(...profiles.map((p) => el('div', { class: 'table-wrap' },
    el('h3', {}, codeText('sup.profile', p.profile)),
    el('table', {},
      el('thead', {}, el('tr', {}, ...head.map((k) => el('th', { scope: 'col' }, t(k))))),
      el('tbody', {}, ...p.days.map((d) => el('tr', {},
        el('td', {}, d.day), el('td', {}, String(d.visits)), el('td', {}, String(d.ratings)),
        el('td', {}, String(d.accepted)), el('td', {}, String(d.pending)),
        el('td', { title: Object.entries(d.dead_by_reason).map(([r, n]) => `${n} × ${r}`).join('\n') }, String(d.dead)),
        el('td', {}, d.checkin_at ? fmtDateTime(d.checkin_at) : t('sup.upload_no')),
        el('td', { class: `deadline-${d.deadline}` }, codeText('sup.deadline', d.deadline)))))))));
}

async function loadFilters() {
  try { state.departments = (await api(page.token, '/departments')).departments || []; } catch { /* optional */ }
  try { state.doctors = (await api(page.token, '/doctors')).doctors || []; } catch { /* optional */ }
  fillFilters();
  // An overview that came first named doctors by id: name them now.
  if (state.overview) renderOverview();
}

function fillFilters() {
  const keep = (sel) => sel.value;
  const dept = $('#f-dept'), doc = $('#f-doctor');
  const dv = keep(dept), dd = keep(doc);
  dept.replaceChildren(el('option', { value: '' }, t('sup.any')), ...state.departments.map((d) => el('option', { value: d.id }, d.name || d.id)));
  doc.replaceChildren(el('option', { value: '' }, t('sup.any')), ...state.doctors.map((d) => el('option', { value: d.id }, d.name || d.id)));
  dept.value = dv;
  doc.value = dd;
}

async function search() {
  const q = new URLSearchParams();
  const from = $('#f-from').value, to = $('#f-to').value;
  // Dates are the supervisor's local days.
  if (from) q.set('from', new Date(`${from}T00:00:00`).toISOString());
  if (to) q.set('to', new Date(new Date(`${to}T00:00:00`).getTime() + 86400e3).toISOString());
  for (const [k, id] of [['dept', '#f-dept'], ['doctor', '#f-doctor'], ['state', '#f-state']]) if ($(id).value) q.set(k, $(id).value);
  q.set('limit', '200');
  try {
    const r = await api(page.token, `/visits?${q}`);
    state.results = r.visits || [];
    renderResults();
  } catch (e) {
    $('#results-count').textContent = t('sup.load_failed', { msg: errText(e) });
  }
}

function renderResults() {
  const list = state.results || [];
  $('#results-count').textContent = list.length ? t('sup.results', { n: list.length }) : t('sup.no_results');
  $('#results-table').hidden = list.length === 0;
  $('#results-body').replaceChildren(...list.map((v) => el('tr', { 'data-visit': v.id },
    el('td', {}, fmtDateTime(v.checkin_at)),
    el('td', {}, visitRef(v.id)),
    el('td', {}, deptName(v.dept_id)),
    el('td', {}, person(v.doctor_id, doctorName(v.doctor_id)), partyLines(v.party)),
    el('td', {}, person(v.patient_id, v.patient_name)),
    el('td', { class: 'nowrap' }, t(`state.${v.state}`)),
    el('td', {}, v.end_reason ? codeText('reason', v.end_reason) : t('common.none')),
    el('td', {}, v.rating ? `${v.rating}/5` : t('common.none')),
    el('td', {}, el('button', { class: 'btn btn-small', type: 'button', onclick: () => openDetail(v.id) }, t('sup.open'))))));
}

async function openDetail(id) {
  try {
    state.detail = await api(page.token, `/visits/${encodeURIComponent(id)}`);
  } catch (e) {
    announce(t('sup.load_failed', { msg: errText(e) }), { kind: 'error' });
    return;
  }
  $('#search-card').hidden = true;
  $('#detail').hidden = false;
  renderDetail();
  loadRecording();
  $('#detail-h').tabIndex = -1;
  $('#detail-h').focus();
}

function closeDetail() {
  if (state.recordingUrl) URL.revokeObjectURL(state.recordingUrl);
  state.recordingUrl = null;
  state.detail = null;
  $('#detail').hidden = true;
  $('#search-card').hidden = false;
  $('#results-body').querySelector('button')?.focus();
}

function roleName(r) {
  return r === 'doctor' ? t('chat.doctor') : r === 'patient' ? t('chat.patient') : codeText('role', r);
}

// Media figures name a peer "role:sub".
function peerName(peer) {
  const [role, sub] = String(peer || '').split(':');
  if (!sub) return peer;
  if (role === 'doctor') return doctorName(sub);
  return `${codeText('role', role)} ${sub}`;
}

function participantName(p) {
  return p.role === 'doctor' ? doctorName(p.user_id) : p.user_id;
}

function timeline(rec) {
  const ev = [];
  const push = (at, text) => { if (at) ev.push({ at, text }); };
  push(rec.checkin_at, t('sup.ev.checkin'));
  for (const o of rec.offers || []) push(o.offered_at, t('sup.ev.offered', { doctor: doctorName(o.doctor_id), outcome: codeText('reason', o.outcome || 'open') }));
  // A visit handed on has a part per doctor, each accepted in turn (issue 18).
  const parts = rec.parts && rec.parts.length ? rec.parts : [{ started_at: rec.accepted_at, doctor_id: rec.doctor_id }];
  for (const p of parts) push(p.started_at, t('sup.ev.accepted', { doctor: doctorName(p.doctor_id) }));
  for (const tr of rec.transfers || []) {
    push(tr.transferred_at, t('sup.ev.transferred', { doctor: doctorName(tr.from_doctor_id),
      to: tr.to_doctor_id ? doctorName(tr.to_doctor_id) : deptName(tr.to_dept_id), reason: tr.reason }));
  }
  for (const p of rec.participants || []) {
    push(p.joined_at, t('sup.ev.join', { role: roleName(p.role), id: participantName(p) }));
    push(p.left_at, t('sup.ev.leave', { role: roleName(p.role), id: participantName(p), reason: codeText('reason', p.leave_reason) }));
  }
  push(rec.ended_at, t('sup.ev.ended', { reason: codeText('reason', rec.end_reason), by: whoEnded(rec.ended_by, rec) }));
  if (rec.rating) push(rec.rating.created_at, t('sup.ev.rated', { score: rec.rating.score }));
  ev.sort((a, b) => new Date(a.at) - new Date(b.at));
  return ev;
}

function renderDetail() {
  const rec = state.detail;
  if (!rec) return;
  $('#detail-h').textContent = t('sup.detail', { visit: shortId(rec.id) });
  $('#detail-h').title = rec.id;
  $('#detail-sub').textContent = [rec.dept_name || deptName(rec.dept_id), t(`kind.${rec.kind}`), t(`state.${rec.state}`), doctorName(rec.doctor_id), rec.patient_id ? `${t('role.patient')} ${rec.patient_id}` : null, rec.duration_ms ? fmtDuration(rec.duration_ms / 1000) : null].filter(Boolean).join(' · ');
  $('#d-timeline').replaceChildren(...timeline(rec).map((e) => el('li', {}, el('time', { datetime: e.at }, fmtDateTime(e.at)), e.text)));
  const notes = rec.notes || [];
  $('#d-notes').replaceChildren(...(notes.length ? notes.map((n) => el('div', { class: 'note-rec' },
    el('p', { class: 'muted' }, `${doctorName(n.doctor_id)} · ${fmtDateTime(n.updated_at || n.created_at)} · `, el('span', { class: `tag ${n.signed ? 'tag-ok' : ''}` }, n.signed ? t('sup.signed') : t('sup.draft')), n.diagnosis_code ? ` · ICD-10 ${n.diagnosis_code}` : ''),
    el('p', { class: 'pre-wrap' }, n.body))) : [el('p', { class: 'muted' }, t('sup.no_notes'))]));
  const chat = rec.chat || [];
  $('#d-chat').replaceChildren(...(chat.length ? chat.map((m) => el('li', { class: `chat-msg ${m.sender_role === 'doctor' ? 'mine' : 'theirs'}` },
    el('span', { class: 'chat-meta' }, `${m.sender_role === 'doctor' ? doctorName(m.sender_id) : `${t('chat.patient')} ${m.sender_id}`} · ${fmtTime(m.sent_at)}`),
    el('span', { class: 'chat-text' }, m.body))) : [el('li', { class: 'muted' }, t('sup.no_chat'))]));
  $('#d-rating').replaceChildren(rec.rating
    ? el('p', {}, el('strong', {}, `${rec.rating.score}/5`), rec.rating.comment ? ` — ${rec.rating.comment}` : '')
    : el('p', { class: 'muted' }, t('sup.no_rating')));
  const stats = rec.stream_stats || [];
  if (!stats.length) {
    $('#d-stats').replaceChildren(el('p', { class: 'muted' }, t('sup.no_stats')));
  } else {
    const num = (x, f = 1) => (typeof x === 'number' && x >= 0 ? String(Math.round(x * f) / f) : t('common.none'));
    const heads = ['sup.st_user', 'sup.st_dir', 'sup.st_kind', 'sup.st_avg', 'sup.st_peak', 'sup.st_loss', 'sup.st_jitter', 'sup.st_rtt', 'sup.st_packets', 'sup.st_res'];
    $('#d-stats').replaceChildren(el('table', {},
      el('thead', {}, el('tr', {}, heads.map((k) => el('th', { scope: 'col' }, t(k))))),
      el('tbody', {}, stats.map((row) => {
        const s = row.summary || {};
        const last = s.last || {};
        return el('tr', {},
          el('td', {}, peerName(row.user_id)),
          el('td', {}, t(row.direction === 'in' ? 'sup.dir_in' : 'sup.dir_out')),
          el('td', {}, codeText('media', row.kind)),
          el('td', {}, num((s.bitrate_avg_bps || 0) / 1000)),
          el('td', {}, num((s.bitrate_max_bps || 0) / 1000)),
          el('td', {}, num(s.samples ? (s.loss_max_pct ?? 0) : undefined, 10)),
          el('td', {}, num(s.jitter_max_ms, 10)),
          el('td', {}, num(s.rtt_max_ms)),
          el('td', {}, num(last.packets)),
          el('td', {}, last.width ? `${last.width}×${last.height}` : t('common.none')));
      }))));
  }
}

async function playReview(rec, box, r) {
  box.replaceChildren(el('p', { class: 'muted' }, t('common.loading')));
  const meta = recordingMeta(r, 'webm');
  const evidence = el('button', { class: 'btn btn-small', id: 'd-evidence-play', type: 'button', 'data-i18n': 'sup.play_evidence', onclick: () => loadRecording({ evidence: true }) }, t('sup.play_evidence'));
  try {
    const res = await fetch(`/api/v1/renditions/${encodeURIComponent(r.id)}`, { headers: { authorization: `Bearer ${page.token}` } });
    if (!res.ok) throw new Error(`HTTP ${res.status}`);
    const video = el('video', { controls: true, preload: 'metadata', id: 'd-review', 'aria-label': t('sup.review_copy') });
    const blob = new Blob([await res.arrayBuffer()], { type: 'video/webm' });
    if (state.recordingUrl) URL.revokeObjectURL(state.recordingUrl);
    state.recordingUrl = URL.createObjectURL(blob);
    video.src = state.recordingUrl;
    box.replaceChildren(video, el('p', { class: 'muted' }, t('sup.review_copy')), meta, evidence);
  } catch (e) {
    box.replaceChildren(el('p', { class: 'error' }, t('sup.recording_failed', { msg: errText(e) })), evidence);
  }
}

function fmtBytes(n) {
  if (!n) return '0 B';
  const u = ['B', 'KB', 'MB', 'GB'];
  let i = 0;
  while (n >= 1024 && i < u.length - 1) { n /= 1024; i++; }
  return `${n.toFixed(i ? 1 : 0)} ${u[i]}`;
}

// The recording is fetched with the bearer token (a <video src> cannot send
// it) and played from a blob URL. The review copy (every participant in a
// grid, every voice mixed) plays by default once it is made; the recording
// itself, whose first tracks are all a browser plays, stays one click away.
// A recording's format, size, length and hash, in the page's language now
// and after a switch (the box is filled once, not on every render).
function recordingMeta(r, format) {
  const vars = { format, size: fmtBytes(r.size_bytes), duration: fmtDuration((r.duration_ms || 0) / 1000), sha: r.sha256 ? r.sha256.slice(0, 16) : t('common.none') };
  const p = el('p', { class: 'muted mono' }, t('sup.recording_meta', vars));
  const relabel = () => { if (!p.isConnected) window.removeEventListener('langchange', relabel); else p.textContent = t('sup.recording_meta', { ...vars, sha: r.sha256 ? vars.sha : t('common.none') }); };
  window.addEventListener('langchange', relabel);
  return p;
}

async function loadRecording({ evidence = false } = {}) {
  const rec = state.detail;
  const box = $('#d-recording');
  const review = (rec.renditions || []).filter((x) => x.state === 'complete').pop();
  const pending = (rec.renditions || []).some((x) => x.state === 'queued' || x.state === 'rendering');
  if (review && !evidence) {
    await playReview(rec, box, review);
    return;
  }
  const all = rec.recordings || [];
  if (!all.length) {
    box.replaceChildren(el('p', { class: 'muted', 'data-i18n': 'sup.no_recording' }, t('sup.no_recording')));
    return;
  }
  const playable = all.filter((r) => !r.deleted_at && (r.state === 'complete' || r.state === 'incomplete' || !r.state));
  const r = playable[playable.length - 1] || all[all.length - 1];
  const meta = recordingMeta(r, r.format || '');
  const stateKey = `sup.rec_state.${r.deleted_at ? 'deleted' : r.state}`;
  // The failure text is the server's (English, for the logs): a tooltip.
  const stateLine = t(stateKey) !== stateKey ? el('p', { class: r.state === 'complete' ? 'muted' : 'notice notice-warn', title: r.failure || null, 'data-i18n': stateKey }, t(stateKey)) : null;
  if (!playable.length) {
    box.replaceChildren(stateLine || el('p', { class: 'muted', 'data-i18n': 'sup.no_recording' }, t('sup.no_recording')), meta);
    return;
  }
  box.replaceChildren(el('p', { class: 'muted' }, t('common.loading')));
  try {
    const res = await fetch(`/api/v1/recordings/${encodeURIComponent(r.id)}`, { headers: { authorization: `Bearer ${page.token}` } });
    if (!res.ok) throw new Error(`HTTP ${res.status}`);
    const video = el('video', { controls: true, preload: 'metadata', 'aria-label': t('sup.recording') });
    // Matroska with VP8/Opus plays as WebM; say so when the server's type
    // is one the browser does not claim.
    let type = (res.headers.get('content-type') || '').split(';')[0];
    if (!type || !video.canPlayType(type)) type = 'video/webm';
    const blob = new Blob([await res.arrayBuffer()], { type });
    if (state.recordingUrl) URL.revokeObjectURL(state.recordingUrl);
    state.recordingUrl = URL.createObjectURL(blob);
    video.src = state.recordingUrl;
    // The same bytes, already fetched (and audited) once: saved as a file.
    const save = el('a', { class: 'btn btn-small', id: 'd-recording-save', href: state.recordingUrl, download: `${rec.id}.mkv`, 'data-i18n': 'sup.recording_save' }, t('sup.recording_save'));
    const back = review ? el('button', { class: 'btn btn-small', id: 'd-review-play', type: 'button', 'data-i18n': 'sup.play_review', onclick: () => loadRecording() }, t('sup.play_review')) : '';
    const note = pending && !review ? el('p', { class: 'muted', 'data-i18n': 'sup.review_pending' }, t('sup.review_pending')) : '';
    box.replaceChildren(video, stateLine || '', note, meta, save, back);
  } catch (e) {
    box.replaceChildren(el('p', { class: 'error' }, t('sup.recording_failed', { msg: errText(e) })), stateLine || '', meta);
  }
}
