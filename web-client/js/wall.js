// wall.js - the supervisor's video wall: every active visit (up to the
// server's nine) as a small silent tile with its people's video, to see at
// a glance which consultations are going well; a click opens one in the
// full watch view with sound.
//
// Each tile is a real watch of its visit (visit.watch, audited, its
// participants told), with its own receive-only connection and Tiles. The
// tiles are small, and their drawn size goes to the server (media.view),
// which then sends a simulcast sender's lowest layer that fits: a wall of
// nine costs about what one large watch does. The wall owns its watches; the
// page runs either the wall or one full watch, never both.

import { t, fmtDuration } from './i18n.js';
import { MediaPeer } from './peer.js';
import { Tiles } from './party.js';
import { el } from './common.js';

export const WALL_MAX = 9; // the server's limit of watches at once

export class Wall extends EventTarget {
  // sig: Signaling; grid: the element the tiles go in; iceServers from
  // hello; names: { doctor(id), dept(id) } for the captions. Events: 'open'
  // (detail: {visitId}) when a tile is chosen, 'change' after tiles come or
  // go, 'names' when a watch has named a visit's people.
  constructor({ sig, grid, iceServers = [], names }) {
    super();
    this.sig = sig;
    this.grid = grid;
    this.iceServers = iceServers;
    this.names = names;
    this.on = false;
    this.entries = new Map(); // visit id -> {visit, peer, tiles, node, caption, time}
    this.pending = new Set(); // visit.watch sent, no answer yet
    this.refused = new Set(); // visits the server would not let us watch
    this.early = new Map(); // visit id -> participants pushed before the watch's result
    this.unsubs = [
      sig.on('visit.participants', (m) => {
        if (this.pending.has(m.visit_id)) this.early.set(m.visit_id, m.participants || []);
        this.withEntry(m, (e) => this.setPeople(e, m.participants || []));
      }),
      sig.on('media.streams', (m) => this.withEntry(m, (e) => e.tiles.setStreams(m.streams || []))),
      sig.on('media.speaker', (m) => this.withEntry(m, (e) => e.tiles.setSpeaker(m.participant_id || null))),
      // The server ends the watch with the visit.
      sig.on('visit.state', (m) => {
        if (m.state === 'ended' || m.state === 'cancelled') this.drop(m.visit_id, false);
      }),
    ];
  }

  withEntry(m, fn) {
    const e = this.entries.get(m.visit_id);
    if (e) fn(e);
  }

  get size() {
    return this.entries.size;
  }

  // Turns the wall on with the overview's visits.
  start(visits) {
    this.on = true;
    this.refused.clear();
    this.sync(visits);
  }

  // Follows the overview: a tile for each active visit while there is
  // room, none for a visit that is over. Captions are refreshed each time.
  // A visit another server holds is watched on that server, one at a time
  // (watching it moves the page there): the wall shows this server's.
  sync(visits) {
    if (!this.on) return;
    const active = (visits || []).filter((v) => v.state === 'active' && !v.remote);
    const ids = new Set(active.map((v) => v.id));
    for (const id of [...this.entries.keys()]) if (!ids.has(id)) this.drop(id, false);
    for (const v of active) {
      const e = this.entries.get(v.id);
      if (e) {
        e.visit = v;
        this.caption(e);
      } else if (this.entries.size + this.pending.size < WALL_MAX && !this.pending.has(v.id) && !this.refused.has(v.id)) {
        this.add(v);
      }
    }
  }

  async add(v) {
    this.pending.add(v.id);
    try {
      await this.sig.request('visit.watch', { visit_id: v.id });
    } catch {
      this.refused.add(v.id); /* ended meanwhile, or the server is full: no tile */
      return;
    } finally {
      this.pending.delete(v.id);
    }
    const early = this.early.get(v.id);
    this.early.delete(v.id);
    if (!this.on || this.entries.has(v.id)) return;
    const e = this.makeEntry(v);
    this.entries.set(v.id, e);
    if (early) this.setPeople(e, early);
    this.place();
  }

  // Everyone in the visit by name, from the server.
  setPeople(e, list) {
    e.people = list;
    e.tiles.setParticipants(list);
    e.peer.ensureRecv(list.length);
    this.caption(e);
    this.dispatchEvent(new CustomEvent('names'));
  }

  makeEntry(v) {
    const tiles = new Tiles({ selfId: null, viewer: 'supervisor', watcher: true, report: (id, width, height) => {
      this.sig.request('media.view', { visit_id: v.id, participant_id: id, width, height }).catch(() => {});
    } });
    // The wall is silent: sound belongs to the one visit opened.
    tiles.addEventListener('play', (ev) => {
      ev.detail.video.muted = true;
      ev.detail.video.play().catch(() => {});
    });
    const people = [];
    if (v.patient_id) people.push({ id: v.patient_id, role: 'patient', name: v.patient_id });
    if (v.doctor_id) people.push({ id: v.doctor_id, role: 'attending', name: this.names.doctor(v.doctor_id) });
    tiles.setParticipants(people);
    const peer = new MediaPeer({ sig: this.sig, visitId: v.id, iceServers: this.iceServers, recv: { audio: 2, video: 2 } });
    tiles.setPeer(peer);
    peer.addEventListener('track', () => tiles.assign());
    const title = el('span', { class: 'wall-who' });
    const time = el('span', { class: 'wall-time mono' });
    const state = el('span', { class: 'wall-state muted', role: 'status' });
    // The caption is the tile's button (keyboard, screen readers); a click
    // anywhere on the tile does the same.
    const open = el('button', { class: 'wall-open', type: 'button' }, title, ' ', time);
    const node = el('article', { class: 'wall-tile', 'data-visit': v.id },
      el('div', { class: 'wall-stage' }, tiles.main, tiles.thumbs), el('div', { class: 'wall-cap' }, open, state));
    node.addEventListener('click', () => this.dispatchEvent(new CustomEvent('open', { detail: { visitId: v.id } })));
    peer.addEventListener('state', (ev) => {
      const s = ev.detail.state;
      state.textContent = s === 'connected' ? '' : s === 'failed' || s === 'unavailable' ? t('visit.media_failed') : t('visit.media_connecting');
    });
    const e = { visit: v, people: [], peer, tiles, node, open, title, time, state };
    this.caption(e);
    tiles.layout();
    peer.start().catch(() => {});
    return e;
  }

  // The patient's name: the overview carries ids only, a watch names
  // everyone (visit.participants).
  patientName(visitId) {
    const e = this.entries.get(visitId);
    const p = e && e.people.find((x) => x.role === 'patient');
    return (p && p.name) || null;
  }

  caption(e) {
    const v = e.visit;
    const doctor = this.names.doctor(v.doctor_id);
    const patient = this.patientName(v.id) || v.patient_id || '';
    e.title.textContent = t('wall.who', { doctor, patient, dept: this.names.dept(v.dept) });
    e.time.textContent = fmtDuration(v.duration_s);
    e.open.title = t('wall.open', { doctor, patient });
  }

  relabel() {
    for (const e of this.entries.values()) {
      e.tiles.relabel();
      this.caption(e);
    }
  }

  // Tiles in the order of the overview's visits: the longest first.
  place() {
    const list = [...this.entries.values()].sort((a, b) => (b.visit.duration_s || 0) - (a.visit.duration_s || 0));
    this.grid.replaceChildren(...list.map((e) => e.node));
    this.grid.dataset.count = String(list.length);
    this.dispatchEvent(new CustomEvent('change'));
  }

  // Closes a tile; tellServer: unwatch it too (false when the server
  // already ended the watch, or when the page keeps watching it).
  drop(visitId, tellServer) {
    const e = this.entries.get(visitId);
    if (!e) return;
    this.entries.delete(visitId);
    e.peer.close();
    e.tiles.close();
    e.node.remove();
    if (tellServer) this.sig.request('visit.unwatch', { visit_id: visitId }).catch(() => {});
    this.place();
  }

  // Turns the wall off; keep: a visit whose watch the page goes on with.
  async stop(keep = null) {
    this.on = false;
    const ids = [...this.entries.keys()];
    for (const id of ids) this.drop(id, false);
    await Promise.all(ids.filter((id) => id !== keep).map((id) => this.sig.request('visit.unwatch', { visit_id: id }).catch(() => {})));
  }

  // After a reconnect the server holds no watch: start again.
  rewatch(visits) {
    if (!this.on) return;
    for (const id of [...this.entries.keys()]) this.drop(id, false);
    this.start(visits);
  }

  close() {
    for (const u of this.unsubs) u();
    this.stop();
  }
}
