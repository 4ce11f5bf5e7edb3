// media_quality.js - the other side's media as the server sees it
// (media.quality pushes, docs/protocol.md): a video that stalled is said to
// be paused and why, over a dimmed last frame, rather than left frozen under
// a "Poor" that would blame this side's connection; a participant who sends
// no video is shown as audio only. Used by call.js for patient and doctor.

import { t } from './i18n.js';
import { el } from './common.js';

export class RemoteMediaState {
  // sig: Signaling; visitId; selfId: this user's sub (their own state is not
  // shown here); stage: the element over the other side's video; video: that
  // <video>; quality: this side's quality indicator.
  constructor({ sig, visitId, selfId, stage, video, quality }) {
    this.visitId = visitId;
    this.selfId = selfId;
    this.video = video;
    this.quality = quality;
    this.last = null;
    this.node = el('p', { class: 'media-state', role: 'status', hidden: true });
    stage.append(this.node);
    this.unsub = sig.on('media.quality', (m) => this.onPush(m));
    this.onLang = () => this.render();
    window.addEventListener('langchange', this.onLang);
  }

  onPush(m) {
    if (m.visit_id !== this.visitId || m.participant_id === this.selfId) return;
    this.last = m;
    this.render();
  }

  render() {
    const m = this.last;
    const frozen = !!m && (m.video === 'frozen' || (m.video === 'off' && m.audio !== 'ok'));
    const audioOnly = !!m && m.video === 'off' && m.audio === 'ok';
    const who = m && m.role === 'doctor' ? 'doctor' : 'patient';
    this.node.dataset.video = m ? m.video : 'ok';
    this.node.textContent = frozen ? t(`mq.frozen_${who}`) : audioOnly ? t('mq.audio_only') : '';
    this.node.hidden = !frozen && !audioOnly;
    this.video.classList.toggle('paused', frozen);
    // While the other side's network is the trouble, this side's indicator
    // (which then sees nothing arrive) would say "Poor" for the wrong party.
    if (this.quality) this.quality.hidden = frozen;
  }

  close() {
    this.unsub();
    window.removeEventListener('langchange', this.onLang);
    this.node.remove();
  }
}
