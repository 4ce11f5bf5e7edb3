// browser_peer.mjs - a minimal telemed.v1 client that runs INSIDE the test
// browser page (served by lib_browser.mjs), standing in for the real web
// client in the media tests: WebSocket signaling, one RTCPeerConnection,
// fake camera and microphone, getStats() summaries for the Node side.
// Everything here is driven from Node through page.evaluate().

const LOOPBACK = /^(127\.|::1$|\[::1\])/;

export class TmPeer {
  constructor({ loopbackOnly = true } = {}) {
    this.loopbackOnly = loopbackOnly;
    this.nextId = 1;
    this.pending = new Map();
    this.waiters = [];
    this.pushes = [];
    this.visitId = null;
    this.pc = null;
    this.remoteCands = [];
    this.answerSet = false;
    this.log = [];
  }

  note(s) {
    this.log.push(`${(performance.now() / 1000).toFixed(3)} ${s}`);
    if (this.log.length > 400) this.log.shift();
  }

  connect(url) {
    return new Promise((resolve, reject) => {
      const ws = new WebSocket(url, 'telemed.v1');
      this.ws = ws;
      ws.onopen = () => resolve();
      ws.onerror = () => reject(new Error('websocket error'));
      ws.onclose = (e) => this.note(`ws closed ${e.code}`);
      ws.onmessage = (e) => this.onMessage(JSON.parse(e.data));
    });
  }

  send(msg) {
    this.ws.send(JSON.stringify(msg));
  }

  request(msg) {
    const id = String(this.nextId++);
    return new Promise((resolve, reject) => {
      this.pending.set(id, { resolve, reject });
      this.send({ ...msg, id });
    });
  }

  // Resolves with the first push (past or future) for which pred is true.
  waitPush(pred, timeoutMs = 20000, what = 'push') {
    const hit = this.pushes.find(pred);
    if (hit) return Promise.resolve(hit);
    return new Promise((resolve, reject) => {
      const w = { pred, resolve };
      this.waiters.push(w);
      setTimeout(() => {
        const i = this.waiters.indexOf(w);
        if (i >= 0) {
          this.waiters.splice(i, 1);
          reject(new Error(`timed out waiting for ${what}`));
        }
      }, timeoutMs);
    });
  }

  onMessage(m) {
    if (m.type !== 'media.candidate') this.note(`<- ${JSON.stringify(m).slice(0, 200)}`);
    if (m.re !== undefined && (m.type === 'result' || m.type === 'error')) {
      const p = this.pending.get(m.re);
      if (!p) return;
      this.pending.delete(m.re);
      if (m.type === 'result') p.resolve(m.data);
      else p.reject(new Error(`${m.code}: ${m.message}`));
      return;
    }
    if (m.type === 'media.answer') this.onAnswer(m.sdp);
    else if (m.type === 'media.candidate') this.onRemoteCandidate(m);
    this.pushes.push(m);
    if (this.pushes.length > 500) this.pushes.shift();
    for (const w of [...this.waiters]) {
      if (w.pred(m)) {
        this.waiters.splice(this.waiters.indexOf(w), 1);
        w.resolve(m);
      }
    }
  }

  async hello(token) {
    return this.request({ type: 'hello', token, ua: 'telemed-test-browser/1.0' });
  }

  // Patient: check in and wait for the visit to become active.
  async checkin(dept, { urgent = false, timeoutMs = 30000 } = {}) {
    const r = await this.request({ type: 'checkin', dept, kind: 'follow_up', urgent });
    this.visitId = r.visit_id;
    await this.waitPush((m) => m.type === 'visit.state' && m.visit_id === this.visitId &&
      m.state === 'active', timeoutMs, 'visit active');
    return this.visitId;
  }

  // Doctor: go available, accept the first offer, wait until active.
  async doctorTakeNext({ timeoutMs = 30000 } = {}) {
    await this.request({ type: 'doctor.status', status: 'available' });
    const offer = await this.waitPush((m) => m.type === 'visit.offer', timeoutMs, 'visit.offer');
    this.visitId = offer.visit_id;
    await this.request({ type: 'visit.accept', visit_id: this.visitId });
    await this.waitPush((m) => m.type === 'visit.state' && m.visit_id === this.visitId &&
      m.state === 'active', timeoutMs, 'visit active');
    return this.visitId;
  }

  async watch(visitId) {
    this.visitId = visitId;
    return this.request({ type: 'visit.watch', visit_id: visitId });
  }

  // Sends media.offer; the answer and candidates arrive as pushes.
  // recvOnly: {audio: n, video: n} receive-only transceivers, no devices.
  // videoCodec 'H264': offer only H.264 constrained baseline (packetization
  // mode 1), as Safari may, so the server must choose its second codec.
  // simulcast: capture 1280x720 and send VP8 in three layers by rid (q 320x180,
  // h 640x360, f 1280x720), as a conference page would.
  async startMedia({ recvOnly = null, width = 320, iceServers = [], videoCodec = null, simulcast = false } = {}) {
    const pc = new RTCPeerConnection({ bundlePolicy: 'max-bundle', rtcpMuxPolicy: 'require', iceServers });
    this.pc = pc;
    pc.onicecandidate = (e) => {
      const c = e.candidate;
      if (c && c.candidate && this.loopbackOnly) {
        const parts = c.candidate.split(' ');
        if (parts.length > 5 && !LOOPBACK.test(parts[4])) return; // stay on loopback
      }
      this.send({
        type: 'media.candidate', id: String(this.nextId++), visit_id: this.visitId,
        candidate: c ? c.candidate : '', sdpMid: c ? c.sdpMid : '0',
        sdpMLineIndex: c ? c.sdpMLineIndex : 0,
      });
    };
    pc.onconnectionstatechange = () => this.note(`pc ${pc.connectionState}`);
    if (recvOnly) {
      for (let i = 0; i < (recvOnly.audio || 0); i++) pc.addTransceiver('audio', { direction: 'recvonly' });
      for (let i = 0; i < (recvOnly.video || 0); i++) pc.addTransceiver('video', { direction: 'recvonly' });
    } else if (simulcast) {
      const stream = await navigator.mediaDevices.getUserMedia({
        audio: true, video: { width: { exact: 1280 }, height: { exact: 720 }, frameRate: { ideal: 15 } },
      });
      this.localStream = stream;
      pc.addTrack(stream.getAudioTracks()[0], stream);
      const track = stream.getVideoTracks()[0];
      track.contentHint = 'detail';
      const t = pc.addTransceiver(track, {
        direction: 'sendrecv', streams: [stream],
        sendEncodings: [{ rid: 'q', scaleResolutionDownBy: 4 }, { rid: 'h', scaleResolutionDownBy: 2 }, { rid: 'f' }],
      });
      const p = t.sender.getParameters();
      p.degradationPreference = 'maintain-resolution';
      await t.sender.setParameters(p).catch((e) => this.note(`setParameters: ${e}`));
    } else {
      // Every page of a browser shares the one fake camera, so all capture
      // at 640x360 and a smaller send size comes from the encoder's scaling.
      const stream = await navigator.mediaDevices.getUserMedia({
        audio: true, video: { width: { ideal: 640 }, height: { ideal: 360 }, frameRate: { ideal: 30 } },
      });
      this.localStream = stream;
      for (const t of stream.getTracks()) {
        const sender = pc.addTrack(t, stream);
        if (t.kind === 'video') {
          // The far side checks the decoded size: do not let CPU or
          // bandwidth adaptation shrink it.
          t.contentHint = 'detail';
          try {
            const p = sender.getParameters();
            p.degradationPreference = 'maintain-resolution';
            const cap = t.getSettings();
            if (p.encodings && p.encodings[0] && cap.width && width < cap.width)
              p.encodings[0].scaleResolutionDownBy = cap.width / width;
            await sender.setParameters(p);
          } catch (e) { this.note(`setParameters: ${e}`); }
        }
      }
    }
    if (videoCodec === 'H264') {
      const caps = RTCRtpReceiver.getCapabilities('video').codecs.filter((c) =>
        (c.mimeType === 'video/H264' && /profile-level-id=42e01f/.test(c.sdpFmtpLine || '') &&
          /packetization-mode=1/.test(c.sdpFmtpLine || '')) || c.mimeType === 'video/rtx');
      for (const t of pc.getTransceivers())
        if (t.receiver.track.kind === 'video') t.setCodecPreferences(caps);
    }
    this.tOffer = performance.now();
    await this.sendOffer();
  }

  async sendOffer(opts = {}) {
    const offer = await this.pc.createOffer(opts);
    this.answerSet = false;
    this.send({ type: 'media.offer', id: String(this.nextId++), visit_id: this.visitId, sdp: offer.sdp });
    await this.pc.setLocalDescription(offer);
  }

  async onAnswer(sdp) {
    try {
      await this.pc.setRemoteDescription({ type: 'answer', sdp });
      this.answerSet = true;
      this.note('answer applied');
      const q = this.remoteCands;
      this.remoteCands = [];
      for (const c of q) await this.addRemote(c);
    } catch (e) {
      this.note(`setRemoteDescription failed: ${e}`);
      this.answerError = String(e);
    }
  }

  async addRemote(m) {
    if (!m.candidate) return; // end of candidates
    try {
      await this.pc.addIceCandidate({ candidate: m.candidate, sdpMid: m.sdpMid, sdpMLineIndex: m.sdpMLineIndex });
    } catch (e) {
      this.note(`addIceCandidate failed: ${e}`);
    }
  }

  onRemoteCandidate(m) {
    if (this.answerSet) this.addRemote(m);
    else this.remoteCands.push(m);
  }

  // Reconnect after a cut: new WebSocket and hello (the session resumes
  // inside the grace period), a new RTCPeerConnection and offer for the
  // same visit. The old pc must already be closed.
  async reconnect(url, token, { width = 320, height = 240 } = {}) {
    const visitId = this.visitId;
    this.pending.clear();
    this.pushes = [];
    await this.connect(url);
    this.helloResult = await this.hello(token);
    this.visitId = visitId;
    this.remoteCands = [];
    await this.startMedia({ width, height });
    return this.helloResult;
  }

  // Cuts this side hard: the media transport and the WebSocket go away
  // without a goodbye.
  cut() {
    if (this.pc) this.pc.close();
    if (this.localStream) for (const t of this.localStream.getTracks()) t.stop();
    this.ws.onclose = null;
    this.ws.close();
  }

  // media.view: the size this page shows a participant's video at.
  async view(participantId, width, height) {
    return this.request({ type: 'media.view', visit_id: this.visitId, participant_id: participantId, width, height });
  }

  // ICE restart: new ufrag/pwd in a new offer for the same visit.
  async restartIce() {
    this.pc.restartIce();
    await this.sendOffer({ iceRestart: true });
  }

  async stats() {
    const out = { inbound: [], outbound: [], pc: this.pc ? this.pc.connectionState : 'none', t: performance.now() };
    if (!this.pc) return out;
    const r = await this.pc.getStats();
    const codec = (id) => (id && r.get(id) ? r.get(id).mimeType : undefined);
    r.forEach((s) => {
      if (s.type === 'inbound-rtp') {
        out.inbound.push({
          codec: codec(s.codecId),
          kind: s.kind, ssrc: s.ssrc, mid: s.mid, packetsReceived: s.packetsReceived, packetsLost: s.packetsLost,
          bytesReceived: s.bytesReceived, framesDecoded: s.framesDecoded || 0, keyFramesDecoded: s.keyFramesDecoded || 0,
          frameWidth: s.frameWidth || 0, frameHeight: s.frameHeight || 0, nackCount: s.nackCount || 0,
          pliCount: s.pliCount || 0, totalSamplesReceived: s.totalSamplesReceived || 0,
          audioLevel: s.audioLevel, retransmittedPacketsReceived: s.retransmittedPacketsReceived,
        });
      } else if (s.type === 'outbound-rtp') {
        out.outbound.push({
          codec: codec(s.codecId), kind: s.kind, ssrc: s.ssrc, packetsSent: s.packetsSent, framesEncoded: s.framesEncoded || 0,
          nackCount: s.nackCount || 0, pliCount: s.pliCount || 0, keyFramesEncoded: s.keyFramesEncoded || 0,
          retransmittedPacketsSent: s.retransmittedPacketsSent || 0, frameWidth: s.frameWidth || 0, frameHeight: s.frameHeight || 0,
          rid: s.rid, bytesSent: s.bytesSent || 0,
        });
      }
    });
    return out;
  }
}
