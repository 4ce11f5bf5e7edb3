// sup_scope.js - what the supervisor oversees (issue 18): one institution of
// the alliance (the token's `inst`, checked by the server at hello) or the
// whole alliance, named in the page's language above the tabs.

import { getToken, claims } from './common.js';
import { t } from './i18n.js';
import { api } from './signaling.js';

const token = getToken();
const scope = (claims(token) || {}).inst || null;
let name = null;

function render() {
  const n = document.getElementById('sup-scope');
  if (!n) return;
  n.textContent = scope ? t('sup.scope_one', { name: name || scope }) : t('sup.scope_all');
  n.hidden = !token;
}

async function load() {
  render();
  if (!scope || !token) return;
  try {
    const { institutions } = await api(token, '/institutions');
    name = ((institutions || []).find((i) => i.id === scope) || {}).name || null;
  } catch { /* the id stands in */ }
  render();
}

window.addEventListener('langchange', render);
load();
