// figures_today.js - each doctor's figures of today for the supervisor's
// roster (issue 15), from GET /api/v1/figures (issue 18): the last seven
// days per doctor and day, of which the row of today in the hospital's time
// zone (the day the answer's `to` falls on). Refreshed every few minutes,
// not per overview push: every read of the figures is audited.
import { t, lang } from './i18n.js';
import { api } from './signaling.js';

const REFRESH_MS = 5 * 60 * 1000;
const today = new Map(); // doctor id -> figures row

// A wait in ms as people read it: ms under a second, then s, min, h.
export function fmtWait(ms) {
  if (ms === null || ms === undefined) return t('common.none');
  if (ms < 1000) return t('fig.ms', { n: ms });
  const s = ms / 1000;
  if (s < 60) return t('fig.sec', { n: s.toFixed(s < 10 ? 1 : 0) });
  if (s < 3600) return t('fig.min', { n: (s / 60).toFixed(1) });
  return t('fig.hour', { n: (s / 3600).toFixed(1) });
}

// Loads now and every REFRESH_MS; onChange() after each load. A failed load
// keeps the last figures (the roster is not the place for an error).
export function watchToday(token, onChange) {
  const load = async () => {
    try {
      const f = await api(token, '/figures?by=doctor&period=day');
      const day = String(f.to).slice(0, 10);
      today.clear();
      for (const r of f.rows) if (r.period === day) today.set(r.id, r);
      onChange();
    } catch { /* keep what is shown */ }
  };
  load();
  return setInterval(load, REFRESH_MS);
}

// The doctor's day in words: visits, median wait to accept, mean rating.
export function todayText(doctorId) {
  const r = today.get(doctorId);
  if (!r) return t('fig.today_none');
  const parts = [t('fig.visits_n', { n: r.workload.visits })];
  if (r.response.accept_p50_ms !== null) parts.push(t('fig.today_wait', { wait: fmtWait(r.response.accept_p50_ms) }));
  if (r.satisfaction.rating_mean !== null) parts.push(t('fig.of_five', { n: r.satisfaction.rating_mean.toLocaleString(lang(), { minimumFractionDigits: 1, maximumFractionDigits: 2 }) }));
  return parts.join(' · ');
}
