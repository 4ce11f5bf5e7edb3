// guest_links.js - one-time links for a patient's family member or
// caregiver (guest.link_create, guest.links, guest.link_revoke in
// docs/protocol.md): make one with the name the guest is shown by, copy it,
// see every link of the visit with its state, withdraw one not used yet.
// The patient's page and the attending doctor's page both have the panel
// (the #family details element with its fam-* parts); the server decides
// who may.

import { t, fmtTime, codeText } from './i18n.js';
import { $, el, announce, errText } from './common.js';

export class GuestLinks {
  // sig: Signaling; visitId: () => the live visit's id or null.
  constructor({ sig, visitId }) {
    this.sig = sig;
    this.visitId = visitId;
    this.newLink = null;
    this.links = [];
    $('#fam-form').addEventListener('submit', (e) => { e.preventDefault(); this.create(); });
    $('#fam-copy').addEventListener('click', () => this.copy());
    $('#family').addEventListener('toggle', () => { if ($('#family').open) this.load(); });
    window.addEventListener('langchange', () => this.render());
  }

  // A new visit: the panel closed, nothing of the last visit's links left.
  reset() {
    this.newLink = null;
    this.links = [];
    $('#family').open = false;
    $('#fam-new').hidden = true;
    $('#fam-error').hidden = true;
    this.render();
  }

  open() {
    $('#family').open = true;
    $('#family').scrollIntoView({ block: 'start' });
    $('#fam-name').focus({ preventScroll: true });
  }

  async create() {
    const name = $('#fam-name').value.trim();
    const err = $('#fam-error');
    err.hidden = true;
    if (!name || Array.from(name).length > 64) {
      err.textContent = t('fam.name_needed');
      err.hidden = false;
      $('#fam-name').focus();
      return;
    }
    try {
      const r = await this.sig.request('guest.link_create', { visit_id: this.visitId(), name });
      this.newLink = { ...r, name };
      this.renderNew();
      $('#fam-name').value = '';
      $('#fam-url').focus();
      $('#fam-url').select();
      this.load();
    } catch (e) {
      err.textContent = t('fam.failed', { msg: errText(e) });
      err.hidden = false;
    }
  }

  async copy() {
    const input = $('#fam-url');
    try {
      await navigator.clipboard.writeText(input.value);
      announce(t('fam.copied'), { kind: 'ok' });
    } catch {
      input.focus();
      input.select();
      announce(t('fam.copy_failed'), { kind: 'error' });
    }
  }

  async load() {
    const visitId = this.visitId();
    if (!visitId || this.sig.state !== 'open') return;
    try {
      const r = await this.sig.request('guest.links', { visit_id: visitId });
      if (visitId !== this.visitId()) return;
      this.links = r.links || [];
    } catch {
      return; /* a server without guest links, or the visit ended: the list stays */
    }
    this.renderList();
  }

  async revoke(linkId) {
    try {
      await this.sig.request('guest.link_revoke', { link_id: linkId });
      if (this.newLink && this.newLink.link_id === linkId) {
        this.newLink = null;
        $('#fam-new').hidden = true;
      }
      announce(t('fam.revoked'), { kind: 'ok' });
    } catch (e) {
      announce(t('fam.revoke_failed', { msg: errText(e) }), { kind: 'error' });
    }
    this.load();
  }

  render() {
    this.renderNew();
    this.renderList();
  }

  renderNew() {
    const l = this.newLink;
    if (!l) return;
    $('#fam-new-text').textContent = t('fam.link_for', { name: l.name, time: fmtTime(l.expires_at) });
    $('#fam-url').value = new URL(l.url, window.location.origin).href;
    $('#fam-new').hidden = false;
  }

  renderList() {
    const links = this.links;
    $('#fam-none').hidden = links.length > 0;
    $('#fam-links').replaceChildren(...links.map((l) => el('li', { 'data-link': l.link_id, 'data-state': l.state },
      el('span', { class: 'grow' }, el('strong', {}, l.name), ' ', el('span', { class: 'muted' }, t('fam.until', { time: fmtTime(l.expires_at) }))),
      el('span', { class: `tag ${l.state === 'open' ? 'tag-ok' : ''}` }, codeText('fam.state', l.state)),
      l.state === 'open' ? el('button', { class: 'btn btn-small btn-danger', type: 'button', onclick: () => this.revoke(l.link_id) }, t('fam.revoke')) : null)));
  }
}
