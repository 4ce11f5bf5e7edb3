// common.js - what every page shares: the token from the link, the page
// frame (language switch, connection banner, live announcements, fatal
// messages), small DOM helpers and the quality indicator.

import { t, apply, bindSwitch, fmtTime, codeText } from './i18n.js';

// The token comes in the link's fragment (#token=...), which browsers never
// send to a server or put in a Referer.
export function getToken() {
  const params = new URLSearchParams(window.location.hash.replace(/^#/, ''));
  return params.get('token');
}

// The claims of a JWT, unverified: only to greet by name and to notice an
// expired link before the server says so.
export function claims(token) {
  try {
    const part = token.split('.')[1].replace(/-/g, '+').replace(/_/g, '/');
    const json = decodeURIComponent(Array.from(atob(part), (c) => `%${c.charCodeAt(0).toString(16).padStart(2, '0')}`).join(''));
    return JSON.parse(json);
  } catch {
    return null;
  }
}

export const $ = (sel, root = document) => root.querySelector(sel);
export const $$ = (sel, root = document) => Array.from(root.querySelectorAll(sel));

// el('div', {class: 'x', onclick: fn}, 'text', child...)
export function el(tag, attrs = {}, ...children) {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v === null || v === undefined || v === false) continue;
    if (k.startsWith('on') && typeof v === 'function') e.addEventListener(k.slice(2), v);
    else if (k === 'class') e.className = v;
    else if (k === 'text') e.textContent = v;
    else if (k in e && typeof v !== 'string') e[k] = v;
    else e.setAttribute(k, v === true ? '' : v);
  }
  for (const c of children.flat()) {
    if (c === null || c === undefined || c === false) continue;
    e.append(c instanceof Node ? c : document.createTextNode(String(c)));
  }
  return e;
}

// Shows one of the page's <section data-view> blocks and moves focus to its
// heading, so keyboard and screen reader users land on the new content.
export function showView(name, { focus = true } = {}) {
  for (const s of $$('[data-view]')) s.hidden = s.dataset.view !== name;
  document.body.dataset.current = name;
  const view = $(`[data-view="${name}"]`);
  if (view && focus) {
    const h = view.querySelector('h1, h2');
    if (h) {
      h.tabIndex = -1;
      h.focus({ preventScroll: false });
    }
  }
}

// A toast or an announcement says one thing once, in the language of its
// moment: a switch of language clears them (the screen reader's live region
// too) rather than leave one in the other language.
window.addEventListener('langchange', () => {
  const box = $('#toasts');
  if (box) box.replaceChildren();
  const live = $('#announce');
  if (live) live.textContent = '';
});

// Polite announcement for screen readers (and a visible toast).
export function announce(text, { kind = 'info', timeoutMs = 5000, toast = true } = {}) {
  const live = $('#announce');
  if (live) {
    live.textContent = '';
    setTimeout(() => { live.textContent = text; }, 50);
  }
  const box = $('#toasts');
  if (!box || !toast) return;
  const node = el('div', { class: `toast toast-${kind}`, role: kind === 'error' ? 'alert' : null }, text);
  box.append(node);
  setTimeout(() => node.remove(), timeoutMs);
}

// Which page each role's link opens.
const PAGE_OF_ROLE = { patient: 'patient.html', doctor: 'doctor.html', supervisor: 'supervisor.html', admin: 'supervisor.html' };

// The page frame: language, skip link, and the token check. roles: the
// roles this page serves; a link for another role is refused here, before
// it can check in or open an empty shell, with a way to the right page.
// Tables with class "stack" become one block per row on a phone (app.css);
// each cell is labelled with its column's heading, again whenever rows or
// headings change (a new overview, a language switch).
function labelStacked(table) {
  const heads = [...table.querySelectorAll('thead th')].map((th) => th.textContent.trim());
  for (const tr of table.querySelectorAll('tbody tr')) {
    [...tr.children].forEach((cell, i) => {
      if (heads[i] && cell.dataset.label !== heads[i]) cell.dataset.label = heads[i];
    });
  }
}

function watchStackedTables() {
  const all = () => document.querySelectorAll('table.stack').forEach(labelStacked);
  new MutationObserver(all).observe(document.body, { childList: true, subtree: true, characterData: true });
  all();
}

export function initPage(roles = null) {
  apply();
  watchStackedTables();
  const sw = $('#lang-switch');
  if (sw) bindSwitch(sw);
  const token = getToken();
  if (!token) {
    fatal('conn.no_token', 'conn.no_token_help');
    return null;
  }
  const c = claims(token);
  if (c && c.exp && c.exp * 1000 < Date.now()) {
    fatal('conn.auth_failed', 'conn.auth_failed_help');
    return null;
  }
  if (roles && c && c.role && !roles.includes(c.role)) {
    wrongRole(c.role, token);
    return null;
  }
  const who = $('#who');
  if (who && c && c.name) {
    who.textContent = c.name;
    who.title = c.name;
  }
  return { token, claims: c || {} };
}

function wrongRole(role, token) {
  const known = PAGE_OF_ROLE[role];
  const roleKey = `role.${known ? role : 'other'}`;
  const go = known ? el('a', { class: 'btn btn-primary', id: 'wrong-role-go', href: `${known}#token=${encodeURIComponent(token)}` }) : null;
  const home = el('a', { class: 'btn', id: 'wrong-role-home', href: 'index.html' });
  const render = () => {
    const r = t(roleKey);
    title.textContent = t('conn.wrong_role');
    help.textContent = t('conn.wrong_role_help', { role: r });
    if (go) go.textContent = t('conn.wrong_role_go', { role: r });
    home.textContent = t('conn.home');
  };
  const title = el('h1');
  const help = el('p');
  $('main').replaceChildren(el('section', { class: 'card fatal', role: 'alert' }, title, help, el('div', { class: 'actions' }, go, home)));
  render();
  window.addEventListener('langchange', render);
  document.body.dataset.current = 'wrong-role';
  title.tabIndex = -1;
  title.focus();
}

// Replaces the page's content with a message and a way forward.
export function fatal(titleKey, helpKey, { reload = false } = {}) {
  const main = $('main');
  main.replaceChildren(el('section', { class: 'card fatal', role: 'alert' },
    el('h1', { 'data-i18n': titleKey }, t(titleKey)),
    el('p', { 'data-i18n': helpKey }, t(helpKey)),
    reload ? el('button', { class: 'btn btn-primary', type: 'button', onclick: () => window.location.reload(), 'data-i18n': 'conn.reload' }, t('conn.reload')) : null));
  document.body.dataset.current = 'fatal';
  const h = main.querySelector('h1');
  h.tabIndex = -1;
  h.focus();
}

// The connection banner follows the signaling state; the page keeps
// working underneath while it reconnects.
// onAuthFailed(detail): the page says itself why it was refused (a guest
// link used twice) instead of the generic expired-link message.
export function bindConnection(sig, { onAuthFailed = null } = {}) {
  const banner = $('#conn');
  const text = $('#conn-text');
  const retry = $('#conn-retry');
  let countdown = null;
  let lastState = null;
  if (retry) retry.addEventListener('click', () => sig.retryNow());
  const render = (d) => {
    clearInterval(countdown);
    banner.dataset.state = d.state;
    document.body.dataset.conn = d.state;
    if (d.state === 'open') {
      banner.hidden = true;
      if (d.node) document.body.dataset.node = d.node;
      // Another server took over (docs/protocol.md, "Several nodes").
      if (d.moved) announce(t('conn.moved'), { kind: 'ok', timeoutMs: 10000 });
      else if (lastState === 'reconnecting') announce(t('conn.resumed'), { kind: 'ok' });
    } else if (d.state === 'reconnecting') {
      banner.hidden = false;
      retry.hidden = false;
      let left = Math.ceil((d.delay_ms || 0) / 1000);
      const tick = () => {
        if (d.moving) text.textContent = t('conn.moving');
        else text.textContent = left > 0 ? t('conn.reconnecting_in', { s: left }) : t('conn.reconnecting');
        left--;
      };
      tick();
      countdown = setInterval(tick, 1000);
    } else if (d.state === 'connecting') {
      banner.hidden = false;
      retry.hidden = true;
      text.textContent = t('conn.connecting');
    } else if (d.state === 'auth_failed') {
      banner.hidden = true;
      if (onAuthFailed) onAuthFailed(d);
      else fatal('conn.auth_failed', 'conn.auth_failed_help');
    } else if (d.state === 'replaced') {
      banner.hidden = true;
      fatal('conn.replaced', 'conn.replaced', { reload: true });
    }
    lastState = d.state;
  };
  sig.addEventListener('state', (e) => render(e.detail));
  window.addEventListener('langchange', () => render({ state: sig.state }));
}

// The connection-quality indicator: bars plus a text for screen readers.
export function renderQuality(node, q) {
  const level = q ? q.level : 'unknown';
  node.dataset.level = level;
  const label = node.querySelector('.q-text');
  const detail = q && q.kbps !== null && q.kbps !== undefined
    ? t('q.detail', { kbps: Math.round(q.kbps), loss: (q.lossPct ?? 0).toFixed(1), rtt: q.rtt === null ? '?' : Math.round(q.rtt) })
    : '';
  label.textContent = `${t(`q.${level}`)}`;
  node.title = detail;
  node.setAttribute('aria-label', `${t('q.label')}: ${t(`q.${level}`)}${detail ? `, ${detail}` : ''}`);
}

export function qualityNode() {
  return el('div', { class: 'quality', role: 'img', 'data-level': 'unknown' },
    el('span', { class: 'bars', 'aria-hidden': 'true' }, el('i'), el('i'), el('i')),
    el('span', { class: 'q-text' }, t('q.unknown')));
}

// sender: the participant who wrote it, named with their visit role in a
// visit of more than two.
export function chatLine(m, selfId, sender = null) {
  const mine = m.from === selfId;
  const who = mine ? t('chat.you') : sender ? t('party.tile_label', { name: sender.name || t('party.unnamed'), role: codeText('prole', sender.role) })
    : t(m.from_role === 'doctor' ? 'chat.doctor' : m.from_role === 'guest' ? 'prole.guest' : 'chat.patient');
  return el('li', { class: `chat-msg ${mine ? 'mine' : 'theirs'}` },
    el('span', { class: 'chat-meta' }, `${who} · ${fmtTime(m.at)}`),
    el('span', { class: 'chat-text' }, m.text));
}

export function errText(e) {
  return (e && (e.message || e.code)) || String(e);
}

// A modal confirmation (native <dialog>: focus stays inside, Esc cancels).
// Resolves true when confirmed.
export function confirmDialog(text, { okText, cancelText, danger = false } = {}) {
  return new Promise((resolve) => {
    const ok = el('button', { class: `btn confirm-ok ${danger ? 'btn-danger' : 'btn-primary'}`, type: 'button', value: 'ok' }, okText || 'OK');
    const cancel = el('button', { class: 'btn', type: 'button', value: 'cancel' }, cancelText || t('common.close'));
    const msg = el('p', { id: 'confirm-text' }, text);
    const dlg = el('dialog', { class: 'confirm', 'aria-labelledby': 'confirm-text' }, msg, el('div', { class: 'actions' }, cancel, ok));
    const done = (v) => { dlg.close(); dlg.remove(); resolve(v); };
    ok.addEventListener('click', () => done(true));
    cancel.addEventListener('click', () => done(false));
    dlg.addEventListener('cancel', (e) => { e.preventDefault(); done(false); });
    document.body.append(dlg);
    dlg.showModal();
    cancel.focus();
  });
}
