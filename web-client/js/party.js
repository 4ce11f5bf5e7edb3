// party.js - the people of a visit as tiles: one per other participant,
// with their name and visit role, their video and sound. The server says
// which receiving m-line carries whom (media.streams); until it does, a
// two-person visit takes the one other side from the first m-lines, as a
// 1:1 visit always did. Layouts: 'single' (two people: the other side
// large), 'speaker' (the active speaker large, the others as thumbnails;
// phones, and more than four people) and 'grid' (three or four people on
// a wide screen). Each tile's rendered size goes to the server
// (media.view) so it can send a layer that fits.

import { t, codeText } from './i18n.js';
import { el } from './common.js';

const VIEW_REPORT_MS = 400;
const GRID_MEDIA = '(min-width: 900px)';

// A visit role in words; the server's code never reaches a reader.
export function roleText(role) {
  return codeText('prole', role);
}

export class Tiles extends EventTarget {
  // selfId: this page's participant id; viewer: the visit role this page
  // has (decides who is large by default); watcher: a supervisor (no self
  // tile, sees everyone); report(participantId, w, h): media.view.
  constructor({ selfId, viewer, watcher = false, report = null }) {
    super();
    this.selfId = selfId;
    this.viewer = viewer;
    this.watcher = watcher;
    this.report = report;
    this.participants = [];
    this.tiles = new Map(); // participant id -> tile
    this.streams = null; // mid -> participant id, from media.streams
    this.peer = null;
    this.speaker = null;
    this.pinned = null;
    this.main = el('div', { class: 'tiles-main' });
    this.thumbs = el('div', { class: 'tiles-thumbs', role: 'list' });
    this.sizes = new Map();
    this.viewTimer = null;
    this.resize = typeof ResizeObserver === 'function' ? new ResizeObserver(() => this.scheduleViews()) : null;
    this.mq = window.matchMedia ? window.matchMedia(GRID_MEDIA) : null;
    this.onMq = () => this.layout();
    if (this.mq && this.mq.addEventListener) this.mq.addEventListener('change', this.onMq);
    // A hidden tab renders nothing: the server may stop sending video.
    this.onVisibility = () => this.scheduleViews();
    document.addEventListener('visibilitychange', this.onVisibility);
  }

  others() {
    return this.participants.filter((p) => p.id !== this.selfId);
  }

  // The visit's participants (visit.participants, or the page's own idea
  // of the other side before the server says).
  setParticipants(list) {
    this.participants = (list || []).slice();
    const others = this.others();
    for (const [id, tile] of this.tiles) {
      if (!others.some((p) => p.id === id)) {
        if (this.resize) this.resize.unobserve(tile.video);
        tile.node.remove();
        this.tiles.delete(id);
        this.sizes.delete(id);
        if (this.pinned === id) this.pinned = null;
      }
    }
    for (const p of others) {
      let tile = this.tiles.get(p.id);
      if (!tile) {
        tile = this.makeTile(p);
        this.tiles.set(p.id, tile);
      }
      tile.p = p;
      this.label(tile);
    }
    this.assign();
    this.layout();
  }

  makeTile(p) {
    const video = el('video', { class: 'tile-video', autoplay: true, playsinline: true });
    const name = el('span', { class: 'tile-name' });
    const role = el('span', { class: 'tile-role' });
    const away = el('span', { class: 'tile-away', hidden: true });
    const novideo = el('span', { class: 'tile-novideo', 'aria-hidden': 'true' });
    const node = el('figure', { class: 'tile-p', role: 'listitem', 'data-participant': p.id, 'data-role': p.role, 'data-video': 'off' },
      video, novideo, el('figcaption', { class: 'tile-cap' }, name, ' ', role, ' ', away));
    const tile = { node, video, name, role, away, novideo, p, audio: null, vtrack: null, stream: null };
    const showing = () => {
      const on = video.videoWidth > 0;
      node.dataset.video = on ? 'on' : 'off';
      if (on) this.dispatchEvent(new CustomEvent('video', { detail: { id: tile.p.id } }));
    };
    video.addEventListener('resize', showing);
    video.addEventListener('playing', showing);
    // A thumbnail tapped becomes the large one until tapped again.
    node.addEventListener('click', () => {
      if (this.mode !== 'speaker') return;
      this.pinned = this.pinned === tile.p.id ? null : tile.p.id;
      this.layout();
    });
    if (this.resize) this.resize.observe(video);
    return tile;
  }

  label(tile) {
    const p = tile.p;
    const name = p.name || t('party.unnamed');
    tile.name.textContent = name;
    tile.role.textContent = roleText(p.role);
    tile.node.dataset.role = p.role;
    tile.node.dataset.connected = p.connected === false ? 'false' : 'true';
    tile.away.textContent = t('party.reconnecting');
    tile.away.hidden = p.connected !== false;
    tile.novideo.textContent = Array.from(name)[0] || '';
    const label = t('party.tile_label', { name, role: roleText(p.role) });
    tile.video.setAttribute('aria-label', label);
    tile.node.title = label;
  }

  relabel() {
    for (const tile of this.tiles.values()) this.label(tile);
  }

  setPeer(peer) {
    this.peer = peer;
    this.assign();
  }

  // media.streams: which participant each receiving m-line carries now.
  setStreams(list) {
    this.streams = new Map();
    for (const s of list || []) this.streams.set(String(s.mid), s.participant_id || null);
    this.assign();
  }

  setSpeaker(id) {
    this.speaker = id;
    for (const [pid, tile] of this.tiles) tile.node.classList.toggle('speaking', pid === id);
    this.layout();
  }

  // Receiving transceivers of a kind in m-line order.
  receivers(kind) {
    const pc = this.peer && this.peer.pc;
    if (!pc) return [];
    return pc.getTransceivers().filter((tr) => tr.receiver && tr.receiver.track && tr.receiver.track.kind === kind &&
      tr.mid !== null && (tr.currentDirection === 'recvonly' || tr.currentDirection === 'sendrecv'));
  }

  // Puts each participant's tracks on their tile.
  assign() {
    const want = new Map();
    for (const id of this.tiles.keys()) want.set(id, { audio: null, video: null });
    for (const kind of ['audio', 'video']) {
      const rx = this.receivers(kind);
      if (this.streams) {
        for (const tr of rx) {
          const who = this.streams.get(String(tr.mid));
          if (who && want.has(who) && !want.get(who)[kind]) want.get(who)[kind] = tr.receiver.track;
        }
      } else if (this.tiles.size === 1 && rx.length) {
        // No word from the server (a server without media.streams, or
        // before the first): two people, the one other side.
        want.values().next().value[kind] = rx[0].receiver.track;
      }
    }
    // Without the server's word for more than two, what plays stays.
    const keep = !this.streams && this.tiles.size > 1;
    for (const [id, tile] of this.tiles) {
      const w = want.get(id);
      if (keep || (w.audio === tile.audio && w.video === tile.vtrack)) continue;
      tile.audio = w.audio;
      tile.vtrack = w.video;
      const tracks = [w.video, w.audio].filter(Boolean);
      tile.stream = new MediaStream(tracks);
      tile.video.srcObject = tile.stream;
      tile.node.dataset.video = 'off';
      if (tracks.length) this.dispatchEvent(new CustomEvent('play', { detail: { video: tile.video } }));
    }
  }

  // Who is large: the one tapped, else the active speaker, else the one
  // this viewer came to see (the doctor for the patient, the patient for
  // everyone else).
  mainId() {
    const ids = [...this.tiles.keys()];
    if (this.pinned && this.tiles.has(this.pinned)) return this.pinned;
    if (this.speaker && this.tiles.has(this.speaker)) return this.speaker;
    const prefer = this.viewer === 'patient' ? 'attending' : 'patient';
    const first = this.others().find((p) => p.role === prefer);
    return first ? first.id : ids[0] || null;
  }

  layout() {
    const n = this.tiles.size + (this.watcher ? 0 : 1);
    const wide = this.mq ? this.mq.matches : true;
    this.mode = this.tiles.size <= 1 && !this.watcher ? 'single' : (wide && n >= 3 && n <= 4) || (this.watcher && wide && n <= 4) ? 'grid' : 'speaker';
    const mainId = this.mode === 'speaker' || this.mode === 'single' ? this.mainId() : null;
    const order = this.others().map((p) => this.tiles.get(p.id)).filter(Boolean);
    const inMain = this.mode === 'grid' ? order : order.filter((x) => x.p.id === mainId);
    const inThumbs = this.mode === 'grid' ? [] : order.filter((x) => x.p.id !== mainId);
    for (const tile of order) {
      tile.node.classList.toggle('main', tile.p.id === mainId);
      tile.node.classList.toggle('pinned', tile.p.id === this.pinned);
    }
    // Moving a playing element within one task does not pause it.
    if (!sameChildren(this.main, inMain)) this.main.replaceChildren(...inMain.map((x) => x.node));
    if (!sameChildren(this.thumbs, inThumbs)) this.thumbs.replaceChildren(...inThumbs.map((x) => x.node));
    this.main.dataset.layout = this.mode;
    this.main.dataset.count = String(inMain.length);
    this.thumbs.hidden = inThumbs.length === 0;
    this.dispatchEvent(new CustomEvent('layout', { detail: { mode: this.mode } }));
    this.scheduleViews();
  }

  // The large video (the other side of a two-person visit).
  mainVideo() {
    const id = this.mainId();
    const tile = id && this.tiles.get(id);
    return tile ? tile.video : null;
  }

  scheduleViews() {
    if (!this.report || this.viewTimer) return;
    this.viewTimer = setTimeout(() => {
      this.viewTimer = null;
      this.sendViews();
    }, VIEW_REPORT_MS);
  }

  // The size each participant's video is drawn at, in device pixels; a
  // change under a tenth is not worth a message.
  sendViews() {
    const dpr = window.devicePixelRatio || 1;
    for (const [id, tile] of this.tiles) {
      const r = tile.video.getBoundingClientRect();
      const shown = tile.node.isConnected && r.width > 0 && r.height > 0 && document.visibilityState !== 'hidden';
      const w = shown ? Math.round(r.width * dpr) : 0;
      const h = shown ? Math.round(r.height * dpr) : 0;
      const prev = this.sizes.get(id);
      if (prev && Math.abs(prev.w - w) <= prev.w / 10 && Math.abs(prev.h - h) <= prev.h / 10 && (w > 0) === (prev.w > 0)) continue;
      this.sizes.set(id, { w, h });
      this.report(id, w, h);
    }
  }

  close() {
    clearTimeout(this.viewTimer);
    if (this.resize) this.resize.disconnect();
    if (this.mq && this.mq.removeEventListener) this.mq.removeEventListener('change', this.onMq);
    document.removeEventListener('visibilitychange', this.onVisibility);
  }
}

// Only the tiles count: the page may have put its own video among them.
function sameChildren(parent, tiles) {
  const kids = [...parent.children].filter((n) => n.classList.contains('tile-p'));
  if (kids.length !== tiles.length) return false;
  return tiles.every((x, i) => kids[i] === x.node);
}
