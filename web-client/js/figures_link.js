// figures_link.js - the supervisor page's link to the figures page
// (figures.html), carrying the page's own token link along.

import { getToken } from './common.js';

const token = getToken();
const link = document.getElementById('figures-link');
if (link && token) link.href = `figures.html#token=${encodeURIComponent(token)}`;
