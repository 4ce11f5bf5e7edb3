// index.js - the landing page: what this is, and a box to paste a personal
// link or a bare token into (the page is picked from the token's role).
import { apply, bindSwitch } from './i18n.js';
import { $, claims } from './common.js';

apply();
bindSwitch($('#lang-switch'));
$('#open-form').addEventListener('submit', (e) => {
  e.preventDefault();
  const text = $('#open-link').value.trim();
  if (!text) return;
  const m = /#token=([^&\s]+)/.exec(text);
  const token = m ? m[1] : text;
  const role = (claims(token) || {}).role;
  const pageName = role === 'doctor' ? 'doctor.html' : role === 'supervisor' || role === 'admin' ? 'supervisor.html' : 'patient.html';
  window.location.href = `${pageName}#token=${token}`;
});
