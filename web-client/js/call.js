// call.js - the visit as its participants see it: the others as tiles
// (party.js: the other side large in a two-person visit, the active
// speaker large or a grid with more), one's own video small, mute and
// camera buttons, the quality indicator, chat, the "supervisor present"
// and "someone reconnecting" notices. More people join by renegotiating
// the one connection (visit.participants grows: more receive slots).
// Media is best effort: while the media path is unavailable the rest of the
// visit (chat, notes, ending) keeps working.

import { t } from './i18n.js';
import { el, announce, renderQuality, qualityNode, chatLine, errText } from './common.js';
import { MediaPeer, getCamera, mediaRefusalText } from './peer.js';
import { RemoteMediaState } from './media_quality.js';
import { Tiles, roleText } from './party.js';

function canFullscreen(video) {
  return !!(document.fullscreenEnabled || video.webkitEnterFullscreen);
}

// Full screen for the other side's video: the standard API, or iOS
// Safari's own player, which is the only full screen a WKWebView offers.
function enterFullscreen(video) {
  if (video.requestFullscreen && document.fullscreenEnabled) video.requestFullscreen().catch(() => {});
  else if (video.webkitEnterFullscreen) video.webkitEnterFullscreen();
}

// Sound to a chosen device (setSinkId: Chromium, Edge, Firefox); iOS
// Safari and WKWebView-based in-app browsers have none, and show no choice.
const CAN_PICK_SPEAKER = typeof HTMLMediaElement !== 'undefined' && 'setSinkId' in HTMLMediaElement.prototype;
const SPEAKER_KEY = 'telemed.speaker';

function storedSpeaker() {
  try { return localStorage.getItem(SPEAKER_KEY) || ''; } catch { return ''; }
}

export class Call {
  // mount: element to render into; role: 'patient' | 'doctor' | 'guest'
  // (the page); visitRole: this person's role in the visit; others: who
  // the page takes the other side to be until visit.participants says;
  // history: the chat so far as the server sent it (hello's state), or null.
  constructor({ mount, sig, hello, visitId, role, visitRole = null, others = [], stream, extraControls = [], onParticipants = null, history = null }) {
    this.onParticipants = onParticipants;
    this.sig = sig;
    this.hello = hello;
    this.visitId = visitId;
    this.role = role;
    this.visitRole = visitRole || (role === 'doctor' ? 'attending' : role);
    this.stream = stream;
    this.selfId = hello.sub;
    this.unsubs = [];
    this.seen = new Set();
    this.away = new Set();
    this.serverParticipants = false;
    this.tiles = new Tiles({ selfId: this.selfId, viewer: this.visitRole, report: (id, w, h) => this.reportView(id, w, h) });
    this.tiles.setParticipants(others);
    this.historyKey = `telemed.chat.${visitId}`;
    this.render(mount, extraControls);
    this.bind();
    // The server's history is the whole conversation; this tab's copy is
    // what a server without it leaves.
    for (const m of history || this.storedChat()) this.addChat(m);
    if (history) this.saveChat(history);
  }

  // The chat so far, kept for this tab: a reload mid-visit shows it again
  // (the patient cannot read the visit record).
  storedChat() {
    try { return JSON.parse(sessionStorage.getItem(this.historyKey) || '[]'); } catch { return []; }
  }

  storeChat(m) {
    const all = this.storedChat();
    all.push(m);
    this.saveChat(all);
  }

  saveChat(all) {
    try {
      sessionStorage.setItem(this.historyKey, JSON.stringify(all.slice(-200)));
    } catch { /* storage blocked or full: the live chat still works */ }
  }

  static forgetChat(visitId) {
    try { sessionStorage.removeItem(`telemed.chat.${visitId}`); } catch { /* storage blocked */ }
  }

  render(mount, extraControls) {
    this.self = el('video', { class: 'self-video', autoplay: true, playsinline: true, muted: true, 'data-i18n-label': 'visit.self', 'aria-label': t('visit.self') });
    this.self.muted = true;
    this.stageMsg = el('p', { class: 'stage-msg', role: 'status' }, t('visit.media_connecting'));
    // Browsers that allow sound only after a tap (iOS, in-app browsers, any
    // page just reloaded) get one big button instead of a silent picture.
    this.tapBtn = el('button', { class: 'btn btn-primary tap-play', type: 'button', hidden: true }, t('visit.tap_to_play'));
    this.quality = qualityNode();
    this.muteBtn = el('button', { class: 'btn ctl', type: 'button', 'aria-pressed': 'false' }, t('visit.mute'));
    this.camBtn = el('button', { class: 'btn ctl', type: 'button', 'aria-pressed': 'false' }, t('visit.camera_off'));
    this.camRetry = el('button', { class: 'btn ctl', type: 'button', hidden: true }, t('visit.camera_retry'));
    // On a phone the other side fills the screen; a second camera (the
    // back one) can be switched to where the device has one.
    this.fullBtn = el('button', { class: 'btn ctl', type: 'button', hidden: !canFullscreen(document.createElement('video')) }, t('visit.fullscreen'));
    this.flipBtn = el('button', { class: 'btn ctl', type: 'button', hidden: true }, t('visit.switch_camera'));
    this.speakerSel = el('select', { id: `speaker-${this.role}`, class: 'speaker-select' });
    this.speakerLabel = el('span', {}, t('visit.speaker'));
    this.speakerField = el('label', { class: 'speaker ctl', for: this.speakerSel.id, hidden: true }, this.speakerLabel, this.speakerSel);
    this.sinkId = storedSpeaker();
    this.supNotice = el('p', { class: 'notice notice-info', role: 'status', hidden: true }, t('visit.supervisor'));
    this.peerNotice = el('p', { class: 'notice notice-warn', role: 'status', hidden: true });
    this.camNotice = el('p', { class: 'notice notice-warn', role: 'alert', hidden: true }, t('visit.camera_lost'));
    this.chatList = el('ol', { class: 'chat-list', 'aria-live': 'polite', 'aria-relevant': 'additions' });
    this.chatEmpty = el('p', { class: 'muted chat-empty' }, t('chat.empty'));
    this.chatInput = el('input', { id: `chat-input-${this.role}`, class: 'chat-input', type: 'text', maxlength: 4000, autocomplete: 'off', enterkeyhint: 'send' });
    this.chatForm = el('form', { class: 'chat-form' },
      el('label', { for: this.chatInput.id, class: 'sr-only' }, t('chat.input')),
      this.chatInput,
      el('button', { class: 'btn btn-primary', type: 'submit' }, t('chat.send')));
    const controls = el('div', { class: 'controls', role: 'group', 'aria-label': t('visit.title') },
      this.muteBtn, this.camBtn, this.flipBtn, this.fullBtn, this.speakerField, this.camRetry, ...extraControls);
    mount.replaceChildren(
      el('div', { class: 'call' },
        this.stageNode = el('div', { class: 'stage' }, this.tiles.main, this.stageMsg, this.self, this.quality, this.tapBtn),
        this.tiles.thumbs,
        controls,
        this.supNotice, this.peerNotice, this.camNotice),
      el('section', { class: 'chat card', 'aria-labelledby': `chat-h-${this.role}` },
        el('h2', { id: `chat-h-${this.role}` }, t('chat.title')),
        this.chatEmpty, this.chatList, this.chatForm));
    // In a grid one's own video is a cell like the others; else it sits
    // in the corner of the large one.
    this.tiles.addEventListener('layout', (e) => {
      this.stageNode.dataset.layout = e.detail.mode;
      if (e.detail.mode === 'grid') {
        if (this.tiles.main.lastElementChild !== this.self) this.tiles.main.append(this.self);
      } else if (this.self.parentNode !== this.stageNode) {
        this.stageNode.insertBefore(this.self, this.quality);
      }
    });
    this.tiles.layout();
    if (this.stream) this.self.srcObject = this.stream;
    else this.self.hidden = true;
    this.updateButtons();
  }

  bind() {
    const on = (type, fn) => this.unsubs.push(this.sig.on(type, fn));
    this.muteBtn.addEventListener('click', () => this.toggle('audio'));
    this.camBtn.addEventListener('click', () => this.toggle('video'));
    this.camRetry.addEventListener('click', () => this.restartCamera());
    this.fullBtn.addEventListener('click', () => { if (this.remote) enterFullscreen(this.remote); });
    this.tapBtn.addEventListener('click', () => this.playRemote());
    this.flipBtn.addEventListener('click', () => this.flipCamera());
    this.offerFlip();
    this.speakerSel.addEventListener('change', () => this.useSpeaker(this.speakerSel.value));
    this.offerSpeakers();
    if (CAN_PICK_SPEAKER && navigator.mediaDevices && navigator.mediaDevices.addEventListener) {
      const onDevices = () => this.offerSpeakers();
      navigator.mediaDevices.addEventListener('devicechange', onDevices);
      this.unsubs.push(() => navigator.mediaDevices.removeEventListener('devicechange', onDevices));
    }
    this.chatForm.addEventListener('submit', (e) => { e.preventDefault(); this.sendChat(); });
    on('chat.message', (m) => {
      if (m.visit_id !== this.visitId || this.seen.has(m.message_id)) return;
      this.addChat(m);
      this.storeChat(m);
    });
    on('visit.supervisor', (m) => {
      if (m.visit_id !== this.visitId) return;
      this.supNotice.hidden = !m.present;
      if (m.present) announce(t('visit.supervisor'), { toast: false });
    });
    on('visit.participant', (m) => {
      if (m.visit_id !== this.visitId || m.id === this.selfId) return;
      if (m.connected) {
        if (!this.away.delete(m.id)) return;
        announce(t('visit.peer_back'), { kind: 'ok' });
      } else {
        this.away.add(m.id);
        this.awayGrace = m.grace_s;
      }
      this.renderAway();
    });
    on('visit.participants', (m) => {
      if (m.visit_id !== this.visitId) return;
      this.setParticipants(m.participants || [], true);
    });
    on('media.streams', (m) => {
      if (m.visit_id !== this.visitId) return;
      this.tiles.setStreams(m.streams || []);
    });
    on('media.speaker', (m) => {
      if (m.visit_id !== this.visitId) return;
      this.tiles.setSpeaker(m.participant_id || null);
      this.self.classList.toggle('speaking', !!m.participant_id && m.participant_id === this.selfId);
    });
    this.tiles.addEventListener('video', () => this.setStage(null));
    this.tiles.addEventListener('play', (e) => this.playRemote(e.detail.video));
    // Back from a dropped connection: the same visit, a new ICE path.
    const onHello = () => { if (this.peer) this.peer.restart(); };
    this.sig.addEventListener('hello', onHello);
    this.unsubs.push(() => this.sig.removeEventListener('hello', onHello));
    const onLang = () => this.relabel();
    window.addEventListener('langchange', onLang);
    this.unsubs.push(() => window.removeEventListener('langchange', onLang));
    if (this.stream) this.watchTracks(this.stream);
    const remoteState = new RemoteMediaState({ sig: this.sig, visitId: this.visitId, selfId: this.selfId, tiles: this.tiles, quality: this.quality });
    this.unsubs.push(() => remoteState.close());
    // The server knows before the page's own 5 s guess that the other side
    // has no camera: "waiting for video" gives way to "voice only" at once.
    on('media.quality', (m) => {
      if (m.visit_id !== this.visitId || m.participant_id === this.selfId) return;
      if (m.video === 'off' && m.audio !== 'silent' && this.stageText === 'visit.waiting_video') this.awaitVideoDone();
    });
  }

  // The participants as the server lists them; the page's own guess of
  // the other side is replaced by the first list. Everyone but oneself
  // needs a receive slot: more people, a renegotiation.
  setParticipants(list, fromServer = false) {
    if (fromServer) this.serverParticipants = true;
    else if (this.serverParticipants) return;
    this.tiles.setParticipants(list);
    for (const id of [...this.away]) if (!list.some((p) => p.id === id && p.connected === false)) this.away.delete(id);
    for (const p of list) if (p.id !== this.selfId && p.connected === false) this.away.add(p.id);
    this.renderAway();
    const self = list.find((p) => p.id === this.selfId);
    if (self && self.role) this.visitRole = self.role;
    if (this.peer && list.length >= 3) this.peer.ensureRecv(list.length - 1);
    if (this.onParticipants) this.onParticipants(list);
  }

  get participants() {
    return this.tiles.participants;
  }

  participant(id) {
    return this.tiles.participants.find((p) => p.id === id) || null;
  }

  // Who dropped, in words: the patient and the attending doctor as a
  // two-person visit always said it, anyone else by name and role.
  renderAway() {
    const ids = [...this.away];
    if (!ids.length) {
      this.peerNotice.hidden = true;
      return;
    }
    const lines = ids.map((id) => {
      const p = this.participant(id);
      const role = p ? p.role : null;
      if (role === 'patient' || (!p && this.role !== 'patient')) return t('visit.peer_away_patient', { s: this.awayGrace ?? '' });
      if (role === 'attending' || !p) return t('visit.peer_away_doctor');
      return t('visit.peer_away_other', { name: p.name || t('party.unnamed'), role: roleText(p.role) });
    });
    this.peerNotice.textContent = lines.join(' ');
    this.peerNotice.hidden = false;
  }

  reportView(participantId, width, height) {
    if (this.sig.state !== 'open') return;
    this.sig.request('media.view', { visit_id: this.visitId, participant_id: participantId, width, height }).catch(() => {});
  }

  // The large video: the other side of a two-person visit.
  get remote() {
    return this.tiles.mainVideo();
  }

  relabel() {
    this.tiles.relabel();
    this.renderAway();
    this.stageMsg.textContent = this.stageText ? t(this.stageText) : '';
    this.supNotice.textContent = t('visit.supervisor');
    this.camNotice.textContent = t('visit.camera_lost');
    this.camRetry.textContent = t('visit.camera_retry');
    this.fullBtn.textContent = t('visit.fullscreen');
    this.tapBtn.textContent = t('visit.tap_to_play');
    this.flipBtn.textContent = t('visit.switch_camera');
    this.speakerLabel.textContent = t('visit.speaker');
    this.offerSpeakers();
    this.chatEmpty.textContent = t('chat.empty');
    this.chatForm.querySelector('label').textContent = t('chat.input');
    this.chatForm.querySelector('button').textContent = t('chat.send');
    this.chatForm.closest('.chat').querySelector('h2').textContent = t('chat.title');
    this.updateButtons();
    if (this.peer) renderQuality(this.quality, this.peer.lastQuality);
  }

  watchTracks(stream) {
    for (const track of stream.getTracks()) {
      track.addEventListener('ended', () => {
        // The device went away or another app took it.
        this.camNotice.hidden = false;
        this.camRetry.hidden = false;
      });
    }
  }

  async restartCamera() {
    const r = await getCamera();
    if (r.error) {
      announce(t(`dev.${r.error === 'failed' ? 'busy' : r.error}`), { kind: 'error' });
      return;
    }
    for (const tr of this.stream ? this.stream.getTracks() : []) tr.stop();
    this.stream = r.stream;
    this.self.srcObject = r.stream;
    this.self.hidden = false;
    this.watchTracks(r.stream);
    if (this.peer) {
      for (const track of r.stream.getTracks()) await this.peer.replaceTrack(track.kind, track);
    }
    this.camNotice.hidden = true;
    this.camRetry.hidden = true;
    this.updateButtons();
  }

  playRemote(video = null) {
    const all = video ? [video] : [...this.tiles.tiles.values()].map((x) => x.video);
    for (const v of all) {
      if (!v.srcObject) continue;
      if (this.sinkId && v.sinkId !== this.sinkId) v.setSinkId(this.sinkId).catch(() => {});
      v.play().then(() => { this.tapBtn.hidden = true; }).catch((e) => {
        if (e && e.name === 'NotAllowedError') this.tapBtn.hidden = false;
      });
    }
  }

  async offerFlip() {
    if (!this.stream || !this.stream.getVideoTracks().length || !navigator.mediaDevices.enumerateDevices) return;
    const cams = (await navigator.mediaDevices.enumerateDevices()).filter((d) => d.kind === 'videoinput');
    this.cameras = cams;
    this.flipBtn.hidden = cams.length < 2;
  }

  // The speakers to choose from: shown where the browser can pick one and
  // the device has more than one (labels come with the camera permission).
  async offerSpeakers() {
    if (!CAN_PICK_SPEAKER || !navigator.mediaDevices || !navigator.mediaDevices.enumerateDevices) return;
    const outs = (await navigator.mediaDevices.enumerateDevices()).filter((d) => d.kind === 'audiooutput');
    this.speakerField.hidden = outs.length < 2;
    if (!this.sinkId || !outs.some((d) => d.deviceId === this.sinkId)) this.sinkId = '';
    this.speakerSel.replaceChildren(...outs.map((d, i) => el('option', { value: d.deviceId === 'default' ? '' : d.deviceId, selected: (d.deviceId === 'default' ? '' : d.deviceId) === this.sinkId },
      d.deviceId === 'default' ? t('visit.speaker_default') : d.label || t('visit.speaker_n', { n: i + 1 }))));
  }

  // Every voice of the visit to the chosen device ('' = the system's).
  async useSpeaker(id) {
    this.sinkId = id;
    try { localStorage.setItem(SPEAKER_KEY, id); } catch { /* storage blocked: this visit only */ }
    for (const tile of this.tiles.tiles.values()) {
      try {
        await tile.video.setSinkId(id);
      } catch (e) {
        announce(t('visit.speaker_failed', { msg: errText(e) }), { kind: 'error' });
        return;
      }
    }
  }

  // The next camera in the device's list, swapped into the call in place.
  async flipCamera() {
    const cur = this.stream && this.stream.getVideoTracks()[0];
    if (!cur || !this.cameras || this.cameras.length < 2) return;
    const id = cur.getSettings().deviceId;
    const i = this.cameras.findIndex((c) => c.deviceId === id);
    const next = this.cameras[(i + 1) % this.cameras.length];
    let fresh;
    try {
      fresh = (await navigator.mediaDevices.getUserMedia({ video: { deviceId: { exact: next.deviceId } } })).getVideoTracks()[0];
    } catch (e) {
      announce(t('dev.failed', { msg: errText(e) }), { kind: 'error' });
      return;
    }
    fresh.enabled = cur.enabled;
    this.stream.removeTrack(cur);
    cur.stop();
    this.stream.addTrack(fresh);
    this.self.srcObject = this.stream;
    this.watchTracks(new MediaStream([fresh]));
    // A camera that is off stays off: the switch takes effect when it is on again.
    if (this.peer && fresh.enabled) await this.peer.replaceTrack('video', fresh);
  }

  // A camera turned off or a microphone muted sends nothing rather than
  // black frames or silence, so the server sees the stream stop while the
  // connection lives and tells the others "audio only" or "microphone off"
  // (media.quality), not a frozen picture over a poor connection.
  toggle(kind) {
    if (!this.stream) return;
    for (const tr of this.stream.getTracks()) {
      if (tr.kind !== kind) continue;
      tr.enabled = !tr.enabled;
      if (this.peer) this.peer.replaceTrack(kind, tr.enabled ? tr : null).catch(() => {});
    }
    this.updateButtons();
  }

  updateButtons() {
    const a = this.stream ? this.stream.getAudioTracks()[0] : null;
    const v = this.stream ? this.stream.getVideoTracks()[0] : null;
    const muted = !a || !a.enabled;
    const camOff = !v || !v.enabled;
    // A device that is not there is said so, not offered as a switch.
    this.muteBtn.textContent = !a ? t('visit.no_mic') : muted ? t('visit.unmute') : t('visit.mute');
    if (a) this.muteBtn.setAttribute('aria-pressed', String(muted));
    else this.muteBtn.removeAttribute('aria-pressed');
    this.muteBtn.disabled = !a;
    this.camBtn.textContent = !v ? t('visit.no_camera') : camOff ? t('visit.camera_on') : t('visit.camera_off');
    if (v) this.camBtn.setAttribute('aria-pressed', String(camOff));
    else this.camBtn.removeAttribute('aria-pressed');
    this.camBtn.disabled = !v;
    this.self.classList.toggle('off', camOff);
  }

  setStage(key) {
    this.stageText = key;
    this.stageMsg.textContent = key ? t(key) : '';
    this.stageMsg.hidden = !key;
  }

  // Starts media; the visit goes on without it if the server cannot.
  async startMedia() {
    this.peer = new MediaPeer({ sig: this.sig, visitId: this.visitId, iceServers: this.hello.ice_servers || [], stream: this.stream });
    const n = this.tiles.participants.length;
    if (n >= 3) this.peer.extraRecv = n - 1;
    this.tiles.setPeer(this.peer);
    this.peer.addEventListener('track', (e) => {
      const track = e.detail.track;
      if (track.kind === 'video') track.addEventListener('unmute', () => { if (this.anyVideo()) this.setStage(null); });
      this.tiles.assign();
      this.playRemote();
    });
    this.peer.addEventListener('state', (e) => {
      const s = e.detail.state;
      document.body.dataset.media = s;
      if (s === 'unavailable') this.setStage(mediaRefusalText(e.detail.reason));
      else if (s === 'retrying') this.setStage('visit.media_retrying');
      else if (s === 'failed') this.setStage('visit.media_failed');
      else if (s === 'connecting') this.setStage('visit.media_connecting');
      else if (s === 'connected' && !this.anyVideo()) this.awaitVideo();
      if (s === 'connected') this.tiles.assign();
    });
    this.peer.addEventListener('quality', (e) => renderQuality(this.quality, e.detail));
    try {
      await this.peer.start();
    } catch (e) {
      if (this.peer.state !== 'unavailable') this.setStage('visit.media_unavailable');
      console.info('telemed: media not started:', errText(e));
    }
  }

  // Connected with no picture: after a few seconds that is not "waiting"
  // any more but a side without a camera; say so, and that voice works.
  awaitVideo() {
    this.setStage('visit.waiting_video');
    clearTimeout(this.videoTimer);
    this.videoTimer = setTimeout(() => this.awaitVideoDone(), 5000);
  }

  awaitVideoDone() {
    clearTimeout(this.videoTimer);
    if (this.peer && this.peer.state === 'connected' && !this.anyVideo()) {
      this.setStage(this.tiles.tiles.size > 1 ? 'visit.audio_only_all' : this.role === 'patient' ? 'visit.audio_only_doctor' : 'visit.audio_only_patient');
    }
  }

  anyVideo() {
    return [...this.tiles.tiles.values()].some((x) => x.video.videoWidth > 0);
  }

  async sendChat() {
    const text = this.chatInput.value.trim();
    if (!text) return;
    try {
      await this.sig.request('chat.send', { visit_id: this.visitId, text });
      this.chatInput.value = '';
    } catch (e) {
      announce(t('chat.failed', { msg: errText(e) }), { kind: 'error' });
    }
    this.chatInput.focus();
  }

  addChat(m) {
    if (m.message_id !== undefined) {
      if (this.seen.has(m.message_id)) return;
      this.seen.add(m.message_id);
    }
    this.chatEmpty.hidden = true;
    this.chatList.append(chatLine(m, this.selfId, this.tiles.participants.length > 2 ? this.participant(m.from) : null));
    this.chatList.scrollTop = this.chatList.scrollHeight;
  }

  close({ stopCamera = false } = {}) {
    for (const u of this.unsubs) u();
    this.unsubs = [];
    clearTimeout(this.videoTimer);
    this.tiles.close();
    if (this.peer) this.peer.close();
    this.peer = null;
    if (stopCamera && this.stream) for (const tr of this.stream.getTracks()) tr.stop();
  }
}

