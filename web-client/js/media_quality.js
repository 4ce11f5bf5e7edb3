// media_quality.js - the others' media as the server sees it (media.quality
// pushes, docs/protocol.md): a video that stalled is said to be paused and
// why, over its dimmed last frame, rather than left frozen under a "Poor"
// that would blame this side's connection; a participant who sends no video
// is shown as audio only, one whose microphone is muted with a muted sign. Used by call.js; one state per participant, shown
// on that participant's tile.

import { t } from './i18n.js';
import { el } from './common.js';

export class RemoteMediaState {
  // sig: Signaling; visitId; selfId: this user's sub (their own state is not
  // shown here); tiles: the visit's Tiles (party.js); quality: this side's
  // quality indicator.
  constructor({ sig, visitId, selfId, tiles, quality }) {
    this.visitId = visitId;
    this.selfId = selfId;
    this.tiles = tiles;
    this.quality = quality;
    this.last = new Map(); // participant id -> latest push
    this.nodes = new Map(); // participant id -> the words on their tile
    this.unsub = sig.on('media.quality', (m) => this.onPush(m));
    this.onLang = () => this.renderAll();
    window.addEventListener('langchange', this.onLang);
    // A tile made or rebuilt after the push still gets its words.
    this.onLayout = () => this.renderAll();
    tiles.addEventListener('layout', this.onLayout);
  }

  onPush(m) {
    if (m.visit_id !== this.visitId || m.participant_id === this.selfId) return;
    this.last.set(m.participant_id, m);
    this.render(m.participant_id);
  }

  renderAll() {
    for (const id of this.last.keys()) this.render(id);
  }

  frozenText(m) {
    if (m.role === 'doctor') return t('mq.frozen_doctor');
    if (m.role === 'patient') return t('mq.frozen_patient');
    const p = this.tiles.participants.find((x) => x.id === m.participant_id);
    return t('mq.frozen_other', { name: (p && p.name) || t('party.unnamed') });
  }

  render(id) {
    const m = this.last.get(id);
    const tile = this.tiles.tiles.get(id);
    if (!tile) return;
    let node = this.nodes.get(id);
    if (!node || !tile.node.contains(node)) {
      node = el('p', { class: 'media-state', role: 'status', hidden: true });
      tile.node.append(node);
      this.nodes.set(id, node);
    }
    const micOff = !!m && m.audio === 'off';
    const frozen = !!m && (m.video === 'frozen' || (m.video === 'off' && m.audio === 'silent'));
    const camOff = !!m && m.video === 'off' && !frozen;
    node.dataset.video = m ? m.video : 'ok';
    node.dataset.audio = m ? m.audio : 'ok';
    const words = frozen ? this.frozenText(m)
      : camOff && micOff ? t('mq.cam_mic_off')
        : camOff ? t('mq.audio_only')
          : micOff ? t('mq.mic_off') : '';
    // A muted microphone gets the sign people know from every call app.
    node.replaceChildren(...(micOff && !frozen ? [el('span', { class: 'mic-off-icon', 'aria-hidden': 'true' }, '\u{1F507}'), ' '] : []), words);
    node.hidden = !words;
    tile.video.classList.toggle('paused', frozen);
    // The last frame before a camera went off is not the person now.
    tile.video.classList.toggle('camera-off', camOff);
    // While another side's network is the trouble, this side's indicator
    // (which then sees nothing arrive) would say "Poor" for the wrong party.
    if (this.quality) this.quality.hidden = [...this.last.values()].some((x) => x.video === 'frozen');
  }

  close() {
    this.unsub();
    window.removeEventListener('langchange', this.onLang);
    this.tiles.removeEventListener('layout', this.onLayout);
    for (const node of this.nodes.values()) node.remove();
  }
}
