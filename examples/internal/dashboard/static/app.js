// Clickstream live dashboard: a plain ES module, no framework, no build step.
// Reads the read API of docs/API.md from this page's own origin; Chart.js is
// the vendored UMD build (window.Chart), loaded by a deferred script before us.

const POLL_MS = 3000;        // /kpis, /funnel, /anomalies, /top-products
const LIVE_POLL_MS = 1000;   // /kpis/latest and /stats when SSE is not usable
const SSE_GRACE_MS = 4000;   // SSE reconnecting this long: poll meanwhile
const SSE_RETRY_MS = 15000;  // SSE closed for good: try a new one this often
const SERIES_MINUTES = 30;
const MINUTE_MS = 60000;

const $ = (sel, root = document) => root.querySelector(sel);
const byTestId = (id, root = document) => $(`[data-testid="${id}"]`, root);

// ---------- formatting ----------

const LOCALE = 'en-GB';
const intFmt = new Intl.NumberFormat(LOCALE, { maximumFractionDigits: 0 });
const oneDecFmt = new Intl.NumberFormat(LOCALE, { minimumFractionDigits: 1, maximumFractionDigits: 1 });
const eurFmt = new Intl.NumberFormat(LOCALE, {
  style: 'currency', currency: 'EUR', minimumFractionDigits: 2, maximumFractionDigits: 2,
});
const MINUS = '\u2212';

const isNum = (v) => typeof v === 'number' && Number.isFinite(v);
const fmtInt = (v) => intFmt.format(v);
const fmtEUR = (v) => eurFmt.format(v);
const fmtPct = (v, digits = 2) => `${(v * 100).toFixed(digits)} %`;
const fmtMs = (v) => `${intFmt.format(Math.round(v))} ms`;
const withSign = (neg, s) => (neg ? MINUS : '+') + s;

function fmtDuration(ms) {
  if (!isNum(ms)) return '—';
  const s = Math.round(ms / 1000);
  if (s < 60) return `${s} s`;
  const m = Math.floor(s / 60);
  if (m < 60) return `${m} min ${s % 60} s`;
  return `${Math.floor(m / 60)} h ${m % 60} min`;
}

// API times are RFC 3339 UTC; the page shows them in UTC, too.
const minuteMs = (rec) => Date.parse(rec.minute);
const hhmm = (ms) => new Date(ms).toISOString().slice(11, 16);
const hhmmss = (ms) => new Date(ms).toISOString().slice(11, 19);

// el builds DOM nodes with textContent only: product ids and the like come
// from client events and must never be parsed as HTML.
function el(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (v === undefined || v === null) continue;
    if (k === 'class') node.className = v;
    else if (k === 'text') node.textContent = v;
    else node.setAttribute(k, String(v));
  }
  for (const c of children) node.append(c);
  return node;
}

// ---------- API ----------

function readToken() {
  const frag = location.hash.replace(/^#/, '');
  return frag ? new URLSearchParams(frag).get('token') || '' : '';
}
const token = readToken();

class APIError extends Error {
  constructor(status, message) {
    super(message);
    this.status = status;
  }
}

// api answers the parsed JSON body, or null for a 404 ("no data yet").
// Relative URLs: the page works under any path prefix that ends in "/".
async function api(path) {
  const headers = { Accept: 'application/json' };
  if (token) headers.Authorization = `Bearer ${token}`;
  let res;
  try {
    res = await fetch(path, { headers, cache: 'no-store' });
  } catch (err) {
    throw new APIError(0, `network error: ${err.message}`);
  }
  let body = null;
  try {
    body = await res.json();
  } catch {
    // not JSON: keep body null
  }
  if (res.ok) return body;
  if (res.status === 404) return null;
  throw new APIError(res.status, (body && body.error) || res.statusText || `HTTP ${res.status}`);
}

// ---------- state ----------

const state = {
  records: new Map(),   // minute (ms) -> KPI record, newest wins, final never replaced by provisional
  anomalyMinutes: new Set(),
  mode: 'connecting',
  errors: new Map(),    // source -> message
  hasData: false,
  serverNow: NaN,       // the server's clock (ms) as of the newest /stats
};

function upsertRecord(rec) {
  if (!rec || typeof rec.minute !== 'string') return;
  const m = minuteMs(rec);
  if (!Number.isFinite(m)) return;
  const old = state.records.get(m);
  if (old && old.final && !rec.final) return;
  // Running values only grow while a window is open: an older answer that
  // arrives late (a poll that crossed a stream event) must not step back.
  if (old && !old.final && !rec.final && isNum(rec.events) && isNum(old.events) && rec.events < old.events) return;
  state.records.set(m, rec);
  const newest = Math.max(...state.records.keys());
  for (const k of state.records.keys()) {
    if (k <= newest - SERIES_MINUTES * MINUTE_MS) state.records.delete(k);
  }
}

function sortedMinutes() {
  return [...state.records.keys()].sort((a, b) => a - b);
}

// ---------- connection pill and notices ----------

const MODES = {
  connecting: ['connecting…', 'pill-wait'],
  live: ['live', 'pill-live'],
  polling: ['polling', 'pill-poll'],
  reconnecting: ['reconnecting…', 'pill-wait'],
  unauthorized: ['unauthorized', 'pill-error'],
  offline: ['API unreachable', 'pill-error'],
};

function setMode(mode) {
  state.mode = mode;
  const pill = byTestId('connection');
  const [text, cls] = MODES[mode];
  pill.textContent = text;
  pill.className = `pill ${cls}`;
  pill.dataset.mode = mode;
}

function reportError(source, err) {
  if (err) {
    state.errors.set(source, err);
    if (err.status === 401) setMode('unauthorized');
    else if (err.status === 0 && state.mode !== 'live') setMode('offline');
  } else {
    state.errors.delete(source);
    if (state.mode === 'unauthorized' || state.mode === 'offline') setMode(liveStream.open ? 'live' : 'polling');
  }
  renderNotice();
}

function renderNotice() {
  const notice = byTestId('notice');
  const errs = [...state.errors.values()];
  if (errs.length === 0) {
    notice.hidden = true;
    notice.textContent = '';
    return;
  }
  const unauthorized = errs.find((e) => e.status === 401);
  if (unauthorized) {
    notice.textContent = token
      ? `The API refused the token from the page URL (${unauthorized.message}).`
      : 'The API needs a token: open this page as …/#token=YOUR_TOKEN (the fragment never leaves the browser).';
  } else {
    notice.textContent = `API error: ${errs[0].message}. Retrying…`;
  }
  notice.hidden = false;
}

// The time the page shows is the server's, not the browser's: the one the
// newest minute can be compared with.
function markUpdated() {
  if (Number.isFinite(state.serverNow)) byTestId('updated').textContent = `as of ${hhmmss(state.serverNow)} UTC`;
}

// Event times may run ahead of the server's clock (up to max_future_skew): a
// minute that starts after its now is not the current one, and says so.
const isAhead = (ms) => Number.isFinite(state.serverNow) && ms > state.serverNow;
const AHEAD_TITLE = 'this minute starts after the server\'s clock: event times run ahead of processing time';
const aheadNote = () => el('span', { class: 'badge badge-ahead', 'data-testid': 'ahead', title: AHEAD_TITLE, text: 'ahead of clock' });

// ---------- KPI tiles ----------

const TILES = [
  {
    id: 'tile-sessions', key: 'sessions', up: 'good',
    fmt: fmtInt, delta: (d) => withSign(d < 0, fmtInt(Math.abs(d))),
  },
  {
    id: 'tile-conversion', key: 'conversion_rate', up: 'good',
    fmt: (v) => fmtPct(v), delta: (d) => `${withSign(d < 0, (Math.abs(d) * 100).toFixed(2))} pp`,
  },
  {
    id: 'tile-revenue', key: 'revenue', up: 'good',
    fmt: fmtEUR, delta: (d) => withSign(d < 0, fmtEUR(Math.abs(d))),
  },
  {
    id: 'tile-aov', key: 'aov', up: 'good',
    fmt: fmtEUR, delta: (d) => withSign(d < 0, fmtEUR(Math.abs(d))),
  },
  {
    id: 'tile-latency', key: 'latency_ms_p95', up: 'bad',
    fmt: fmtMs, delta: (d) => `${withSign(d < 0, intFmt.format(Math.round(Math.abs(d))))} ms`,
  },
];

function renderTiles() {
  const minutes = sortedMinutes();
  const curMinute = minutes.at(-1);
  const cur = curMinute === undefined ? null : state.records.get(curMinute);
  const prev = cur ? state.records.get(curMinute - MINUTE_MS) : undefined;

  const newest = byTestId('newest-minute');
  newest.replaceChildren(cur ? `newest minute ${hhmm(curMinute)} UTC` : 'newest minute —');
  const ahead = cur !== null && isAhead(curMinute);
  if (ahead) newest.append(' ', aheadNote());
  newest.dataset.ahead = String(ahead);
  // Revenue counts only purchases it can value: say how many it leaves out.
  const excluded = byTestId('revenue-excluded');
  const left = cur && isNum(cur.purchases) && isNum(cur.revenue_purchases) ? cur.purchases - cur.revenue_purchases : 0;
  excluded.dataset.raw = String(left);
  excluded.hidden = !(left > 0);
  excluded.textContent = left > 0 ? `leaves out ${fmtInt(left)} purchase${left === 1 ? '' : 's'} in currencies without a rate` : '';

  for (const t of TILES) {
    const tile = byTestId(t.id);
    const valueEl = byTestId('value', tile);
    const deltaEl = byTestId('delta', tile);
    const statusEl = byTestId('status', tile);
    const minuteEl = byTestId('minute', tile);
    if (!cur) {
      tile.dataset.raw = '';
      tile.dataset.final = 'false';
      valueEl.textContent = 'waiting for data…';
      deltaEl.textContent = '';
      deltaEl.className = 'delta';
      statusEl.textContent = '';
      minuteEl.textContent = '';
      continue;
    }
    const v = cur[t.key];
    tile.dataset.raw = isNum(v) ? String(v) : '';
    tile.dataset.final = cur.final ? 'true' : 'false';
    tile.dataset.minute = cur.minute;
    valueEl.textContent = isNum(v) ? t.fmt(v) : '—';
    const parts = partitionsText(cur);
    statusEl.textContent = `${cur.final ? 'final' : 'provisional'}${parts && !cur.final ? ` · ${parts}` : ''}`;
    statusEl.dataset.partitions = parts;
    statusEl.className = `badge ${cur.final ? 'badge-final' : 'badge-provisional'}`;
    statusEl.title = cur.final ? 'window closed: this value will not change'
      : `window still open: running value${parts ? ` (${parts} have passed it)` : ''}`;
    minuteEl.replaceChildren(`${hhmm(curMinute)} UTC`);
    if (ahead) minuteEl.append(' ', aheadNote());

    const p = prev ? prev[t.key] : undefined;
    if (!cur.final) { // like with like: an open minute against a whole one would show drops that are only incompleteness
      deltaEl.textContent = 'compared once final';
      deltaEl.className = 'delta';
      deltaEl.removeAttribute('data-direction');
      continue;
    }
    if (!isNum(v) || !isNum(p)) {
      deltaEl.textContent = prev ? 'no comparison' : 'no previous minute';
      deltaEl.className = 'delta';
      deltaEl.removeAttribute('data-direction');
      continue;
    }
    const d = v - p;
    const dir = d > 0 ? 'up' : d < 0 ? 'down' : 'flat';
    const arrow = { up: '▲', down: '▼', flat: '=' }[dir];
    const rel = p !== 0 ? ` (${withSign(d < 0, oneDecFmt.format(Math.abs(d / p) * 100))} %)` : '';
    deltaEl.textContent = `${arrow} ${t.delta(d)}${rel}`;
    deltaEl.dataset.direction = dir;
    deltaEl.title = `vs ${hhmm(curMinute - MINUTE_MS)} UTC${prev.final ? '' : ' (provisional)'}: ${t.fmt(p)}`;
    const good = dir === 'flat' ? '' : (dir === 'up') === (t.up === 'good') ? 'good' : 'bad';
    deltaEl.className = `delta ${good}`;
  }
}

// partitionsText says how many partitions have passed a record (SEMANTICS
// §11), '' when the record does not say.
function partitionsText(r) {
  return r && isNum(r.partitions_complete) && isNum(r.partitions_total) && r.partitions_total > 0
    ? `${r.partitions_complete}/${r.partitions_total} partitions` : '';
}

// ---------- charts ----------

const CHARTS = [
  { id: 'chart-revenue', color: '#2563eb', value: (r) => r.revenue, fmt: fmtEUR, tick: (v) => `€${intFmt.format(v)}`, zero: true },
  { id: 'chart-sessions', color: '#7c3aed', value: (r) => r.sessions, fmt: fmtInt, tick: fmtInt, zero: true },
  {
    id: 'chart-conversion', color: '#0f8a5f', value: (r) => r.conversion_rate, fmt: (v) => fmtPct(v),
    tick: (v) => `${(v * 100).toFixed(1)} %`, zero: false, anomalies: true,
  },
  { id: 'chart-latency', color: '#d97706', value: (r) => r.latency_ms_p95, fmt: fmtMs, tick: fmtInt, zero: false },
];
const charts = new Map();

function makeChart(spec) {
  const canvas = byTestId(spec.id);
  const meta = { finals: [], anomalous: [], ahead: [], partitions: [] };
  const isProvisional = (i) => meta.finals[i] === false;
  const chart = new window.Chart(canvas, {
    type: 'line',
    data: {
      labels: [],
      datasets: [{
        data: [],
        borderColor: spec.color,
        backgroundColor: `${spec.color}1f`,
        fill: true,
        tension: 0.3,
        borderWidth: 2,
        spanGaps: false,
        pointRadius: (ctx) => (meta.anomalous[ctx.dataIndex] ? 5 : isProvisional(ctx.dataIndex) ? 3.5 : 1.5),
        pointHoverRadius: 5,
        pointBackgroundColor: (ctx) => (meta.anomalous[ctx.dataIndex] ? '#c2410c' : isProvisional(ctx.dataIndex) ? '#ffffff' : spec.color),
        pointBorderColor: (ctx) => (meta.anomalous[ctx.dataIndex] ? '#c2410c' : spec.color),
        segment: { borderDash: (ctx) => (isProvisional(ctx.p1DataIndex) ? [5, 4] : undefined) },
      }],
    },
    options: {
      responsive: true,
      maintainAspectRatio: false,
      animation: false,
      interaction: { mode: 'index', intersect: false },
      plugins: {
        legend: { display: false },
        tooltip: {
          callbacks: {
            title: (items) => (items.length ? `${items[0].label} UTC${meta.ahead[items[0].dataIndex] ? ' · ahead of clock' : ''}` : ''),
            label: (ctx) => `${spec.fmt(ctx.parsed.y)}${isProvisional(ctx.dataIndex) ? ` (provisional${meta.partitions[ctx.dataIndex] ? `, ${meta.partitions[ctx.dataIndex]}` : ''})` : ''}${meta.anomalous[ctx.dataIndex] ? ' · anomaly' : ''}`,
          },
        },
      },
      scales: {
        x: { grid: { display: false }, ticks: { color: '#66728a', maxRotation: 0, autoSkip: true, maxTicksLimit: 8 } },
        y: {
          beginAtZero: spec.zero,
          grace: 0,
          grid: { color: '#eef1f6' },
          border: { display: false },
          ticks: { color: '#66728a', maxTicksLimit: 5, callback: (v) => spec.tick(v) },
        },
      },
    },
  });
  chart.$dash = meta;
  return chart;
}

function renderCharts() {
  if (!window.Chart) return;
  const minutes = sortedMinutes();
  for (const spec of CHARTS) {
    let chart = charts.get(spec.id);
    if (!chart) {
      chart = makeChart(spec);
      charts.set(spec.id, chart);
    }
    const recs = minutes.map((m) => state.records.get(m));
    chart.data.labels = minutes.map(hhmm);
    chart.data.datasets[0].data = recs.map((r) => (isNum(spec.value(r)) ? spec.value(r) : null));
    if (!spec.zero) { // zoomed on the data, never below 0: every series is a non-negative quantity
      const vs = chart.data.datasets[0].data.filter(isNum);
      const lo = vs.length ? Math.min(...vs) : 0;
      const hi = vs.length ? Math.max(...vs) : 0;
      chart.options.scales.y.min = Math.max(0, lo - Math.max((hi - lo) * 0.15, hi * 0.05));
    }
    chart.$dash.finals = recs.map((r) => Boolean(r.final));
    chart.$dash.partitions = recs.map(partitionsText);
    chart.$dash.anomalous = spec.anomalies ? minutes.map((m) => state.anomalyMinutes.has(m)) : [];
    chart.$dash.ahead = minutes.map(isAhead);
    byTestId(spec.id).dataset.points = String(recs.length);
    byTestId(spec.id).dataset.ahead = String(minutes.filter(isAhead).length);
    chart.update('none');
  }
}

// ---------- funnel ----------

// The funnel covers the sessions started in the last 30 minutes (the default
// session_gap): with fewer, a steady population's open sessions, started
// earlier, would fall out of it.
const FUNNEL_MINUTES = 30;

const STEP_NAMES = { page_view: 'Page view', add_to_cart: 'Add to cart', purchase: 'Purchase' };

function renderFunnel(f) {
  const box = byTestId('funnel');
  const summary = byTestId('funnel-summary');
  if (!f || !Array.isArray(f.steps) || !Array.isArray(f.counts)) {
    box.replaceChildren(el('p', { class: 'empty', text: 'waiting for data…' }));
    summary.textContent = '';
    return;
  }
  if (!Array.isArray(f.minutes) || f.minutes.length === 0) {
    box.replaceChildren(el('p', { class: 'empty', 'data-testid': 'funnel-empty', text: `no session started in the last ${f.minutes_back} minutes` }));
    summary.textContent = '';
    byTestId('funnel-status').hidden = true;
    renderBreakdown(null, false);
    return;
  }
  const base = Math.max(f.entered || 0, f.counts[0] || 0, 1);
  const steps = f.steps.map((name, i) => {
    const count = f.counts[i] ?? 0;
    const rate = Array.isArray(f.step_rates) && i > 0 ? f.step_rates[i - 1] : undefined; // c(i+1)/c(i)
    const bar = el('div', { class: 'funnel-bar' });
    bar.style.width = `${Math.max(0, Math.min(100, (count / base) * 100)).toFixed(2)}%`;
    const rateText = i === 0
      ? `${fmtInt(f.entered ?? count)} sessions entered`
      : `${isNum(rate) ? fmtPct(rate, 1) : '—'} of previous step · ${fmtPct(count / base, 1)} of entered`;
    return el('div', {
      class: 'funnel-step', 'data-testid': 'funnel-step', 'data-step': name, 'data-count': count,
      'data-rate': isNum(rate) ? rate : '',
    },
    el('span', { class: 'funnel-label', text: STEP_NAMES[name] || name }),
    el('div', { class: 'funnel-track' }, bar, el('span', { class: 'funnel-count', text: fmtInt(count) })),
    el('span', { class: 'funnel-rate', text: rateText }));
  });
  box.replaceChildren(...steps);
  // running values (open sessions counted) until every start minute is final
  const provisional = Number(f.provisional_minutes) || 0;
  const status = byTestId('funnel-status');
  status.hidden = false;
  status.className = `badge ${f.final ? 'badge-final' : 'badge-provisional'}`;
  status.textContent = f.final ? 'final' : 'provisional';
  const least = (f.minutes || []).filter((m) => !m.final).reduce((a, m) => (a && a.partitions_complete <= m.partitions_complete ? a : m), null);
  status.title = f.final ? 'every start minute is final'
    : `${provisional} of ${(f.minutes || []).length} start minutes not final yet: counts grow until then${least && partitionsText(least) ? ` (the least complete: ${partitionsText(least)})` : ''}`;
  box.dataset.final = String(Boolean(f.final));
  box.dataset.provisional = String(provisional);
  box.classList.toggle('provisional', !f.final);
  const mins = Array.isArray(f.minutes) ? f.minutes.map(minuteMs).filter(Number.isFinite) : [];
  const range = mins.length ? ` · session start minutes ${hhmm(Math.min(...mins))}–${hhmm(Math.max(...mins))} UTC` : '';
  renderBreakdown(f.breakdown, f.final);
  const open = f.final ? '' : ` · ${provisional} minute${provisional === 1 ? '' : 's'} still open (running values)`;
  summary.textContent = `Overall ${isNum(f.overall_rate) ? fmtPct(f.overall_rate) : '—'} · median time to convert ${fmtDuration(f.median_time_to_convert_ms)}${range}${open}`;
}

// renderBreakdown fills the table of the funnel by one event dimension: the
// top values and the others, each session under its earliest event's value.
function renderBreakdown(b, final) {
  const table = byTestId('funnel-breakdown');
  if (!b || !Array.isArray(b.values) || b.values.length === 0) {
    table.hidden = true;
    return;
  }
  table.hidden = false;
  table.dataset.dimension = b.dimension;
  table.querySelector('caption').textContent =
    `By ${b.dimension} of each session's first event (top ${b.top})${final ? '' : ' · provisional'}`;
  table.querySelector('thead th').textContent = b.dimension;
  const last = (v) => (Array.isArray(v.counts) && v.counts.length ? v.counts[v.counts.length - 1] : 0);
  table.querySelector('tbody').replaceChildren(...b.values.map((v) => el('tr', {
    'data-testid': 'breakdown-row', 'data-value': v.value, 'data-entered': v.entered, 'data-converted': last(v),
  },
  el('th', { scope: 'row', text: v.value }),
  el('td', { text: fmtInt(v.entered) }),
  el('td', { text: fmtInt(last(v)) }),
  el('td', { text: isNum(v.overall_rate) ? fmtPct(v.overall_rate, 1) : '—' }),
  el('td', { text: fmtDuration(v.median_time_to_convert_ms) }))));
}

// ---------- anomalies ----------

const METRIC_NAMES = { conversion_rate: 'Conversion rate', revenue: 'Revenue', sessions: 'Sessions', aov: 'AOV', latency_ms_p95: 'Latency p95' };

function fmtMetric(metric, v) {
  if (!isNum(v)) return '—';
  if (/rate/.test(metric)) return fmtPct(v);
  if (/revenue|aov/.test(metric)) return fmtEUR(v);
  if (/latency/.test(metric)) return fmtMs(v);
  return new Intl.NumberFormat(LOCALE, { maximumSignificantDigits: 4 }).format(v);
}

// renderAnomalies lists the anomalies; with none, it says how far scoring
// has got (answer: /anomalies), so that "none" is not claimed of minutes
// not scored yet.
function renderAnomalies(list, answer) {
  const ul = byTestId('anomalies');
  state.anomalyMinutes = new Set((list || []).map(minuteMs));
  if (!list) {
    ul.replaceChildren(el('li', { class: 'empty', text: 'waiting for data…' }));
    return;
  }
  if (list.length === 0) {
    const until = answer && typeof answer.scored_until === 'string' ? minuteMs({ minute: answer.scored_until }) : NaN;
    const finals = [...state.records.values()].filter((r) => r.final && minuteMs(r) < until).length;
    const need = answer && isNum(answer.min_points) ? answer.min_points : 0;
    let text = 'not scored yet: no final minute (anomalies are scored on final minutes only)';
    if (Number.isFinite(until) && finals > 0) {
      text = finals < need
        ? `no anomalies · ${finals} final minute${finals === 1 ? '' : 's'} so far; scoring needs ${need} as a baseline`
        : `no anomalies in final minutes up to ${hhmm(until)} UTC`;
    }
    ul.replaceChildren(el('li', { class: 'empty', 'data-testid': 'anomalies-empty', 'data-scored': String(finals), text }));
    return;
  }
  const newest = sortedMinutes().at(-1);
  const today = newest === undefined ? '' : new Date(newest).toISOString().slice(0, 10);
  const items = [...list].sort((a, b) => minuteMs(b) - minuteMs(a)).map((a) => {
    const spike = a.direction === 'spike';
    const iso = new Date(minuteMs(a)).toISOString();
    const when = iso.slice(0, 10) === today ? `${hhmm(minuteMs(a))} UTC` : `${iso.slice(5, 10)} ${hhmm(minuteMs(a))} UTC`;
    return el('li', {
      class: `anomaly ${spike ? 'spike' : 'drop'}`, 'data-testid': 'anomaly',
      'data-minute': a.minute, 'data-metric': a.metric, 'data-value': a.value, 'data-z': a.z, 'data-direction': a.direction,
    },
    el('span', { class: 'anomaly-minute', text: when }),
    el('span', {
      class: 'anomaly-detail',
      text: `${METRIC_NAMES[a.metric] || a.metric} ${fmtMetric(a.metric, a.value)} (mean ${fmtMetric(a.metric, a.mean)}) · z ${isNum(a.z) ? withSign(a.z < 0, Math.abs(a.z).toFixed(2)) : '—'}`,
    }),
    el('span', { class: 'anomaly-dir', text: `${spike ? '▲' : '▼'} ${a.direction}` }));
  });
  ul.replaceChildren(...items);
}

// ---------- top products ----------

function renderProducts(list) {
  const tbody = $('tbody', byTestId('top-products'));
  if (!list || list.length === 0) {
    tbody.replaceChildren(el('tr', { class: 'empty-row' },
      el('td', { colspan: 7, class: 'empty', text: list ? 'no products yet' : 'waiting for data…' })));
    return;
  }
  tbody.replaceChildren(...list.map((p, i) => el('tr', { 'data-testid': 'top-product-row', 'data-product': p.product_id },
    el('td', { class: 'muted', text: String(i + 1) }),
    el('td', {}, el('code', { text: p.product_id })),
    el('td', { class: 'num', text: fmtInt(p.views) }),
    el('td', { class: 'num', text: fmtInt(p.carts) }),
    el('td', { class: 'num', text: fmtInt(p.purchases) }),
    el('td', { class: 'num', text: fmtEUR(p.revenue) }),
    el('td', { class: 'num', text: p.views > 0 ? fmtPct(p.purchases / p.views, 1) : '—' }),
  )));
}

// ---------- health ----------

function setHealth(id, raw, text, warn = false) {
  const box = byTestId(id);
  box.dataset.raw = raw === null || raw === undefined ? '' : String(raw);
  byTestId('value', box).textContent = text;
  box.classList.toggle('warn', warn);
}

function renderStats(s) {
  if (!s) return;
  // A stall reads as one, not as a low rate: nothing read for stalled_s while there is lag.
  const stalled = isNum(s.stalled_s) && s.stalled_s > 0;
  setHealth('health-throughput', s.events_per_sec, stalled
    ? `stalled ${fmtInt(s.stalled_s)} s (lag ${isNum(s.lag) ? fmtInt(s.lag) : '—'})`
    : isNum(s.events_per_sec) ? `${oneDecFmt.format(s.events_per_sec)} events/s` : '—', stalled);
  const throughput = byTestId('health-throughput');
  throughput.dataset.stalled = stalled ? String(s.stalled_s) : '';
  throughput.title = stalled ? 'nothing read while events wait: the pipeline is stalled' : 'messages read per second, averaged over the last 60 s';
  setHealth('health-lag', s.lag, isNum(s.lag) ? `${fmtInt(s.lag)} events` : '—', isNum(s.lag) && s.lag > 100000);
  setHealth('health-latency', s.e2e_latency_ms_p95, isNum(s.e2e_latency_ms_p95) ? fmtMs(s.e2e_latency_ms_p95) : '—');
  setHealth('health-deadletters', s.dead_letters, isNum(s.dead_letters) ? fmtInt(s.dead_letters) : '—');
  const lf = typeof s.last_final_minute === 'string' ? s.last_final_minute : null;
  setHealth('health-last-final', lf, lf ? `${hhmm(Date.parse(lf))} UTC` : '—');
}

// ---------- data flow ----------

function onLatest(rec) {
  if (!rec) {
    if (state.records.size === 0) renderTiles();
    return;
  }
  const known = state.records.has(minuteMs(rec));
  upsertRecord(rec);
  renderTiles();
  renderCharts();
  // A new minute began: fetch the series now, so that the minute before is final sooner.
  if (!known && state.records.size > 1) pollSoon();
}

function onStats(s) {
  renderStats(s);
  const now = s && typeof s.now === 'string' ? Date.parse(s.now) : NaN;
  if (!Number.isFinite(now)) return;
  const ahead = sortedMinutes().filter(isAhead).length;
  state.serverNow = now;
  markUpdated();
  if (sortedMinutes().filter(isAhead).length !== ahead) { // a minute is current now, or ahead
    renderTiles();
    renderCharts();
  }
}

async function load(source, path, apply) {
  try {
    const body = await api(path);
    apply(body);
    reportError(source, null);
  } catch (err) {
    reportError(source, err);
  }
}

function pollLive() {
  return Promise.all([
    load('latest', 'kpis/latest', onLatest),
    load('stats', 'stats', onStats),
  ]);
}

function pollSeries() {
  return Promise.all([
    load('kpis', `kpis?minutes_back=${SERIES_MINUTES}`, (b) => {
      for (const rec of (b && b.kpis) || []) upsertRecord(rec);
      renderTiles();
      renderCharts();
    }),
    load('funnel', `funnel?minutes_back=${FUNNEL_MINUTES}`, renderFunnel),
    load('anomalies', 'anomalies?minutes_back=60', (b) => {
      renderAnomalies(b ? b.anomalies || [] : null, b);
      renderCharts();
    }),
    load('products', 'top-products?minutes_back=5', (b) => renderProducts(b ? b.top_products || [] : null)),
  ]);
}

let pollTimer = null;
let polling = false;
async function pollLoop() {
  clearTimeout(pollTimer);
  if (polling) return;
  polling = true;
  try {
    await pollSeries();
  } finally {
    polling = false;
    pollTimer = setTimeout(pollLoop, POLL_MS);
  }
}
function pollSoon() {
  clearTimeout(pollTimer);
  pollTimer = setTimeout(pollLoop, 200);
}

// Live values: SSE on /events, or polling /kpis/latest and /stats each second
// when a token is needed (EventSource cannot send headers) or SSE fails.
const liveStream = { open: false, es: null };
let livePollTimer = null;

function startLivePolling() {
  if (livePollTimer) return;
  if (state.mode !== 'unauthorized') setMode('polling');
  const tick = async () => {
    await pollLive();
    if (livePollTimer) livePollTimer = setTimeout(tick, LIVE_POLL_MS);
  };
  livePollTimer = setTimeout(tick, 0);
}

function stopLivePolling() {
  clearTimeout(livePollTimer);
  livePollTimer = null;
}

function startStream() {
  if (token || typeof EventSource === 'undefined') {
    startLivePolling();
    return;
  }
  const es = new EventSource('events');
  liveStream.es = es;
  let graceTimer = null;
  es.addEventListener('open', () => {
    liveStream.open = true;
    clearTimeout(graceTimer);
    graceTimer = null;
    stopLivePolling();
    setMode('live');
  });
  es.addEventListener('kpis', (ev) => onLatest(JSON.parse(ev.data)));
  es.addEventListener('stats', (ev) => onStats(JSON.parse(ev.data)));
  es.addEventListener('error', () => {
    liveStream.open = false;
    if (es.readyState === EventSource.CLOSED) {
      // The server refused the stream (e.g. 401): poll, and try a new stream later.
      clearTimeout(graceTimer);
      startLivePolling();
      setTimeout(() => {
        if (liveStream.es === es) startStream();
      }, SSE_RETRY_MS);
      return;
    }
    if (state.mode === 'live') setMode('reconnecting');
    if (!graceTimer) {
      graceTimer = setTimeout(() => {
        graceTimer = null;
        if (es.readyState !== EventSource.OPEN) startLivePolling();
      }, SSE_GRACE_MS);
    }
  });
}

function main() {
  renderAnomalies(null);
  if (!window.Chart) {
    for (const spec of CHARTS) {
      byTestId(spec.id).replaceWith(el('p', { class: 'empty', text: 'chart library not loaded' }));
    }
  }
  pollLive();      // fill the tiles at once, before the first event arrives
  pollLoop();
  startStream();
}

main();
