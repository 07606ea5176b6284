// The dstore gateway's web UI. One search form, mirrored in the URL so that a link can be shared;
// the events come from api/v1/search, the chart and the breakdowns from api/v1/summary, and a
// query with its response from api/v1/event/{qid}. Plain DOM, no framework, no build step. Every
// value from the store is put in the page as text (never as HTML): names can hold anything.
'use strict';

const PAGE = 100;
const PRESETS = { '15m': 900, '1h': 3600, '6h': 21600, '24h': 86400, '7d': 604800, '30d': 2592000 };
const DEFAULT_RANGE = '1h';
const TOKEN_KEY = 'dstore.token';
const UTC_KEY = 'dstore.utc';
const KINDS = {
  DNSQueryType: ['Query', 'query'],
  DNSResponseType: ['Response', 'response'],
  DNSOutgoingQueryType: ['Out query', 'query out'],
  DNSIncomingResponseType: ['In response', 'response out'],
};
// Which form control an API error's `parameter` points at.
const CONTROL_OF = { q: 'q', qtype: 'qtype', rcode: 'rcode', type: 'type', from: 'from', to: 'to', last: 'range' };
const NICE_SECONDS = [1, 2, 5, 10, 15, 30, 60, 120, 300, 600, 900, 1800, 3600, 7200, 10800, 21600, 43200,
  86400, 172800, 604800, 1209600, 2592000];
const MONTHS = ['Jan', 'Feb', 'Mar', 'Apr', 'May', 'Jun', 'Jul', 'Aug', 'Sep', 'Oct', 'Nov', 'Dec'];

const $ = (id) => document.getElementById(id);
const state = {
  controller: null, conds: null, next: null, items: [], total: null, summary: null, timedOut: false, chart: null,
  detailFor: null,
};

// ---- small helpers ------------------------------------------------------------------------------

function el(tag, props, ...children) {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(props || {})) {
    if (v == null || v === false) continue;
    if (k === 'class') e.className = v;
    else if (k === 'dataset') Object.assign(e.dataset, v);
    else if (k.startsWith('on')) e.addEventListener(k.slice(2), v);
    else e.setAttribute(k, v === true ? '' : v);
  }
  for (const c of children.flat()) if (c != null && c !== false) e.append(c);
  return e;
}

function svg(tag, attrs, text) {
  const e = document.createElementNS('http://www.w3.org/2000/svg', tag);
  for (const [k, v] of Object.entries(attrs)) e.setAttribute(k, v);
  if (text != null) e.textContent = text;
  return e;
}

function stored(key, value) {
  try {
    if (value === undefined) return localStorage.getItem(key);
    if (value === null) localStorage.removeItem(key); else localStorage.setItem(key, value);
  } catch { /* storage disabled: the setting lasts for this page only */ }
  return null;
}

const count = (n) => Number(n).toLocaleString('en-US');
const events = (n) => `${count(n)} event${n === 1 ? '' : 's'}`;
const p2 = (n) => String(n).padStart(2, '0');
const nowSec = () => Math.floor(Date.now() / 1000);
let utc = stored(UTC_KEY) === '1';

// [year, month 0-11, day, hours, minutes, seconds] of a unix time, in UTC or the browser's zone.
function parts(sec) {
  const d = new Date(sec * 1000);
  return utc
    ? [d.getUTCFullYear(), d.getUTCMonth(), d.getUTCDate(), d.getUTCHours(), d.getUTCMinutes(), d.getUTCSeconds()]
    : [d.getFullYear(), d.getMonth(), d.getDate(), d.getHours(), d.getMinutes(), d.getSeconds()];
}

function fmtTime(sec, withSeconds = true) {
  const [y, mo, d, h, mi, s] = parts(sec);
  return `${y}-${p2(mo + 1)}-${p2(d)} ${p2(h)}:${p2(mi)}` + (withSeconds ? `:${p2(s)}` : '');
}

function fmtEventTime(ev) {
  const ms = String(Math.floor((ev.timeUsec || 0) / 1000)).padStart(3, '0');
  return `${fmtTime(ev.timeSec || 0)}.${ms}`;
}

// The value of a datetime-local input for a unix time, and back.
function toInput(sec) {
  const [y, mo, d, h, mi, s] = parts(sec);
  return `${y}-${p2(mo + 1)}-${p2(d)}T${p2(h)}:${p2(mi)}:${p2(s)}`;
}

function fromInput(v) {
  const ms = v ? Date.parse(utc ? `${v}Z` : v) : NaN;
  return Number.isNaN(ms) ? null : Math.floor(ms / 1000);
}

const iso = (sec) => new Date(sec * 1000).toISOString().replace('.000Z', 'Z');

// A time as the API takes it (unix seconds, RFC 3339, -2h, now) as unix seconds, or null.
function parseTime(v) {
  if (!v) return null;
  if (/^\d+(\.\d+)?$/.test(v)) return Math.floor(Number(v));
  if (v === 'now') return nowSec();
  const rel = /^-(\d+)\s*([smhdw])$/.exec(v);
  if (rel) return nowSec() - Number(rel[1]) * { s: 1, m: 60, h: 3600, d: 86400, w: 604800 }[rel[2]];
  const ms = /^\d{4}-\d\d-\d\d/.test(v) ? Date.parse(v) : NaN;
  return Number.isNaN(ms) ? null : Math.floor(ms / 1000);
}

function kindOf(ev) {
  const k = KINDS[ev.messageType];
  if (k) return { label: k[0], cls: k[1] };
  return ev.qr ? { label: 'Response', cls: 'response' } : { label: 'Query', cls: 'query' };
}

// ---- the form and the URL -----------------------------------------------------------------------

function setSelect(id, value) {
  const s = $(id);
  // A value the list does not offer (from a shared link) is added, so the form shows what is searched.
  if (![...s.options].some((o) => o.value === value)) s.append(el('option', { value }, value));
  s.value = value;
}

function setTimeInput(id, value) {
  const input = $(id);
  const sec = parseTime(value);
  input.value = sec == null ? '' : toInput(sec);
  // Kept as given when the browser cannot read it, so that the API says what is wrong with it.
  input.dataset.raw = sec == null && value ? value : '';
}

function timeInput(id) {
  const input = $(id);
  if (input.dataset.raw) return input.dataset.raw;
  const sec = fromInput(input.value);
  return sec == null ? '' : iso(sec);
}

function showCustom() {
  const custom = $('range').value === 'custom';
  for (const f of document.querySelectorAll('[data-custom]')) f.hidden = !custom;
}

function fillForm(params) {
  $('q').value = params.get('q') || '';
  const custom = params.has('from') || params.has('to');
  setSelect('range', custom ? 'custom' : params.get('range') || DEFAULT_RANGE);
  setTimeInput('from', params.get('from'));
  setTimeInput('to', params.get('to'));
  for (const id of ['qtype', 'rcode', 'type']) setSelect(id, params.get(id) || '');
  showCustom();
}

function readForm() {
  const f = { range: $('range').value, q: $('q').value.trim() };
  for (const id of ['qtype', 'rcode', 'type']) f[id] = $(id).value;
  if (f.range === 'custom') {
    f.from = timeInput('from');
    f.to = timeInput('to');
  }
  return f;
}

// The page's query string: what a shared link holds.
function pageParams(f) {
  const p = new URLSearchParams();
  if (f.q) p.set('q', f.q);
  if (f.range !== 'custom') p.set('range', f.range);
  else if (!f.from && !f.to) p.set('range', 'all');
  if (f.from) p.set('from', f.from);
  if (f.to) p.set('to', f.to);
  for (const k of ['qtype', 'rcode', 'type']) if (f[k]) p.set(k, f[k]);
  return p;
}

// The search conditions as the API takes them.
function conditions(f) {
  const p = new URLSearchParams();
  if (f.range === 'custom') {
    if (f.from) p.set('from', f.from);
    if (f.to) p.set('to', f.to);
  } else if (f.range !== 'all') {
    p.set('last', f.range);
  }
  for (const k of ['q', 'qtype', 'rcode', 'type']) if (f[k]) p.set(k, f[k]);
  return p;
}

// [from, to] in unix seconds when the form says, for the chart's axis.
function timeSpan(f) {
  if (PRESETS[f.range]) return [nowSec() - PRESETS[f.range], nowSec()];
  if (f.range !== 'custom') return null;
  const from = parseTime(f.from);
  const to = f.to ? parseTime(f.to) : nowSec();
  return from != null && to != null && to > from ? [from, to] : null;
}

const niceInterval = (span) => NICE_SECONDS.find((s) => span / s <= 90) || NICE_SECONDS.at(-1);

// ---- talking to the API -------------------------------------------------------------------------

class ApiError extends Error {
  constructor(status, message, parameter) {
    super(message);
    this.status = status;
    this.parameter = parameter;
  }
}

async function api(path, params, signal) {
  const url = new URL(`api/v1/${path}`, document.baseURI);
  if (params) url.search = params.toString();
  const headers = { Accept: 'application/json' };
  const token = stored(TOKEN_KEY);
  if (token) headers.Authorization = `Bearer ${token}`;
  let res;
  try {
    res = await fetch(url, { headers, signal });
  } catch (e) {
    if (e.name === 'AbortError') throw e;
    throw new ApiError(0, `Cannot reach the gateway (${e.message}).`);
  }
  let body = null;
  try { body = await res.json(); } catch { /* not JSON: said below */ }
  if (!res.ok) {
    const why = body && body.error ? body.error : `The gateway answered ${res.status} ${res.statusText}.`;
    throw new ApiError(res.status, why, body && body.parameter);
  }
  if (!body) throw new ApiError(res.status, 'The gateway did not answer with JSON.');
  return body;
}

function clearError() {
  $('error').hidden = true;
  $('error').textContent = '';
  for (const e of document.querySelectorAll('[aria-invalid]')) e.removeAttribute('aria-invalid');
}

function showFailure(e) {
  if (e.status === 401) return askToken();
  const target = $(CONTROL_OF[e.parameter]);
  if (target) target.setAttribute('aria-invalid', 'true');
  $('error').textContent = e.message;
  $('error').hidden = false;
}

function askToken() {
  $('auth-message').textContent = stored(TOKEN_KEY)
    ? 'The gateway refused the saved token. Enter another one.'
    : 'This gateway needs a bearer token.';
  $('auth').hidden = false;
  $('token').focus();
}

// ---- searching ----------------------------------------------------------------------------------

// `how`: 'push' adds a history entry, 'replace' rewrites the current one, 'none' leaves the URL.
async function search(how) {
  const f = readForm();
  if (how !== 'none') {
    const query = pageParams(f).toString();
    const url = location.pathname + (query ? `?${query}` : '');
    if (how === 'push' && url !== location.pathname + location.search) history.pushState(null, '', url);
    else history.replaceState(null, '', url);
  }
  if (state.controller) state.controller.abort();
  const ctl = new AbortController();
  state.controller = ctl;
  state.conds = conditions(f);
  clearError();
  closeDetail();
  document.body.classList.remove('failed');
  document.body.classList.add('busy');
  $('status').textContent = 'Searching…';

  const span = timeSpan(f);
  const listing = new URLSearchParams(state.conds);
  listing.set('limit', PAGE);
  listing.set('order', 'newest');
  const summing = new URLSearchParams(state.conds);
  if (span) summing.set('interval', niceInterval(span[1] - span[0]));
  summing.set('top', 10);

  const current = () => state.controller === ctl;
  let failed = false;
  const fail = (e) => {
    if (!current() || failed || e.name === 'AbortError') return;
    failed = true;
    clearResults();
    document.body.classList.add('failed');
    showFailure(e);
  };
  const results = api('search', listing, ctl.signal)
    .then((r) => { if (current() && !failed) showResults(r, false); }, fail);
  const summary = api('summary', summing, ctl.signal).then((s) => {
    if (!current() || failed) return null;
    showSummary(s, span);
    return f.range === 'all' ? refineChart(s, ctl) : null;
  }, fail);
  await Promise.allSettled([results, summary]);
  if (!current()) return;
  document.body.classList.remove('busy');
  updateStatus(failed ? null : state.summary);
}

async function older() {
  const ctl = state.controller;
  const button = $('older');
  button.disabled = true;
  const params = new URLSearchParams(state.conds);
  params.set('limit', PAGE);
  params.set('order', 'newest');
  params.set('cursor', state.next);
  try {
    const r = await api('search', params, ctl && ctl.signal);
    if (state.controller === ctl) showResults(r, true);
  } catch (e) {
    if (e.name !== 'AbortError') showFailure(e);
  } finally {
    button.disabled = false;
  }
}

function clearResults() {
  state.items = [];
  state.next = null;
  state.total = null;
  state.summary = null;
  state.chart = null;
  $('results').tBodies[0].replaceChildren();
  $('older').hidden = true;
  $('empty').hidden = true;
  $('shown').textContent = '';
  $('total').textContent = '';
  $('chart').replaceChildren();
  for (const list of document.querySelectorAll('.toplist')) list.replaceChildren();
}

function updateStatus(s) {
  if (!s) {
    $('status').textContent = '';
    return;
  }
  const timedOut = s.timedOut || state.timedOut;
  $('status').textContent = `${events(s.total)} · ${Math.round(s.msec)} ms`
    + (timedOut ? ' · stopped at the time limit: figures are partial' : '');
  $('status').classList.toggle('warn', Boolean(timedOut));
}

function updateShown() {
  const n = state.items.length;
  const of = state.total != null && state.total !== n ? ` of ${count(state.total)}` : '';
  $('shown').textContent = n ? `${count(n)}${of} shown, newest first` : '';
}

// ---- the results table --------------------------------------------------------------------------

function rcodeCell(ev) {
  if (!ev.qr) return el('span', { class: 'muted' }, '');
  const name = ev.rcodeName || String(ev.rcode);
  const cls = name === 'NOERROR' ? '' : name === 'NXDOMAIN' ? 'rc-nx' : 'rc-bad';
  return el('span', { class: cls }, name);
}

function row(ev, index) {
  const kind = kindOf(ev);
  return el('tr', { tabindex: 0, dataset: { index, qid: ev.qid || '' } },
    el('td', { class: 'mono nowrap' }, fmtEventTime(ev)),
    el('td', {}, el('span', { class: `tag ${kind.cls}` }, kind.label)),
    el('td', { class: 'mono' }, ev.requestor || '',
      // The recursor's own queries: the server it asked says more than its own address.
      /out/.test(kind.cls) && ev.responder && el('span', { class: 'muted' }, ` → ${ev.responder}`)),
    el('td', { class: 'name' }, ev.question || ''),
    el('td', {}, ev.type || ''),
    el('td', {}, rcodeCell(ev)),
    el('td', { class: 'answer', title: ev.answer || '' }, ev.answer || ''));
}

function showResults(r, append) {
  const tbody = $('results').tBodies[0];
  if (!append) {
    tbody.replaceChildren();
    state.items = [];
    state.timedOut = false;
  }
  const rows = r.items.map((ev) => row(ev, state.items.push(ev) - 1));
  tbody.append(...rows);
  state.next = r.next || null;
  state.timedOut = state.timedOut || r.timedOut;
  $('older').hidden = !state.next;
  $('empty').hidden = state.items.length > 0;
  updateShown();
}

function redrawRows() {
  $('results').tBodies[0].replaceChildren(...state.items.map(row));
}

// ---- the summary: chart and breakdowns ----------------------------------------------------------

function showSummary(s, span) {
  state.summary = s;
  state.total = s.total;
  $('total').textContent = events(s.total);
  state.chart = { histogram: s.histogram || { interval: 3600, buckets: [] }, span };
  drawChart();
  const top = s.top || {};
  for (const field of ['rcode', 'qtype', 'qname', 'requestor']) showTop(field, top[field] || [], s.total);
  updateShown();
}

// Over all time the server counts by the hour; when the matches lie within a few hours, ask again
// for that window alone, finer, so that the chart shows where they are.
async function refineChart(s, ctl) {
  const { interval, buckets } = s.histogram || {};
  const used = (buckets || []).filter((b) => b.count > 0);
  if (!used.length) return;
  const [from, to] = [used[0].time, used.at(-1).time + interval];
  const fine = niceInterval(to - from);
  if (fine >= interval) return;
  const params = new URLSearchParams(state.conds);
  params.set('from', from);
  params.set('to', to);
  params.set('interval', fine);
  params.set('top', 1);
  try {
    const r = await api('summary', params, ctl.signal);
    if (state.controller !== ctl || !r.histogram) return;
    state.chart = { histogram: r.histogram, span: [from, to] };
    drawChart();
  } catch { /* the coarser chart stays */ }
}

function showTop(field, rows, total) {
  const list = $(`top-${field}`);
  const max = Math.max(1, ...rows.map((r) => r.count));
  list.replaceChildren(...rows.map((r) => {
    const share = total ? ` (${((100 * r.count) / total).toFixed(1)}%)` : '';
    const bar = el('span', { class: 'fill' });
    bar.style.width = `${(100 * r.count) / max}%`;
    return el('li', {},
      el('button', { type: 'button', title: `${r.value}: ${count(r.count)}${share}. Click to search it.`,
        dataset: { value: r.value }, onclick: () => narrow(field, r.value) },
      bar, el('span', { class: 'label' }, r.value), el('span', { class: 'num' }, count(r.count))));
  }));
  if (!rows.length) list.append(el('li', { class: 'muted none' }, 'none'));
}

const isAddress = (w) => /^[\d.]+(\/\d+)?$/.test(w) || (w.includes(':') && /^[\da-f:./]+$/i.test(w));
const isName = (w) => !isAddress(w) && /^[^~=:/]+$/.test(w) && !/^(t|pr)=/.test(w);

// A click in a breakdown narrows the search to that value; a name or an address replaces the
// words of its kind in the search box and keeps the others (a name, then one of its clients).
function narrow(field, value) {
  if (field === 'rcode' || field === 'qtype') {
    setSelect(field, value);
  } else {
    const same = field === 'qname' ? isName : isAddress;
    const words = $('q').value.split(/\s+/).filter((w) => w && !same(w));
    $('q').value = [...words, value].join(' ');
  }
  search('push');
}

function niceStep(max) {
  const raw = max / 4;
  const mag = 10 ** Math.floor(Math.log10(raw || 1));
  return [1, 2, 5, 10].map((m) => m * mag).find((s) => raw <= s);
}

const compact = (n) => (n >= 1e6 ? `${+(n / 1e6).toFixed(1)}M` : n >= 1e4 ? `${+(n / 1e3).toFixed(1)}k` : count(n));

function tickLabel(t, step, spanSecs) {
  const [, mo, d, h, mi, s] = parts(t);
  const day = `${MONTHS[mo]} ${d}`;
  if (step >= 86400) return day;
  if (step < 60) return `${p2(h)}:${p2(mi)}:${p2(s)}`;
  return h === 0 && mi === 0 && spanSecs > 86400 ? day : `${p2(h)}:${p2(mi)}`;
}

function drawChart() {
  const box = $('chart');
  const c = state.chart;
  if (!c) return box.replaceChildren();
  let interval = Math.max(1, c.histogram.interval || 3600);
  let buckets = c.histogram.buckets.filter((b) => b.count > 0);
  let [x0, x1] = c.span || (buckets.length
    ? [buckets[0].time, buckets.at(-1).time + interval] : [nowSec() - 3600, nowSec()]);
  // Far more buckets than room for bars (the server's choice over all time): merge them.
  if ((x1 - x0) / interval > 120) {
    const width = interval * Math.ceil((x1 - x0) / interval / 100);
    const merged = new Map();
    for (const b of buckets) {
      const t = Math.floor(b.time / width) * width;
      merged.set(t, (merged.get(t) || 0) + b.count);
    }
    buckets = [...merged].map(([time, n]) => ({ time, count: n }));
    interval = width;
    if (!c.span && buckets.length) [x0, x1] = [buckets[0].time, buckets.at(-1).time + interval];
  }
  if (c.span) {
    x0 = Math.floor(x0 / interval) * interval;
  } else if ((x1 - x0) / interval < 24) {
    // A few buckets of a search over all time: show them within a day's worth of slots, not as
    // one bar the width of the chart.
    const pad = 24 * interval - (x1 - x0);
    const room = Math.max(0, Math.ceil(nowSec() / interval) * interval - x1);
    const right = Math.min(room, Math.floor(pad / 2 / interval) * interval);
    x1 += right;
    x0 -= pad - right;
  }

  const W = Math.max(320, box.clientWidth);
  const H = 170;
  const m = { l: 52, r: 14, t: 10, b: 24 };
  const pw = W - m.l - m.r;
  const ph = H - m.t - m.b;
  const max = Math.max(0, ...buckets.map((b) => b.count));
  const step = niceStep(Math.max(max, 4));
  const ymax = Math.max(step, Math.ceil(max / step) * step);
  const sx = (t) => m.l + ((t - x0) / (x1 - x0)) * pw;
  const sy = (n) => m.t + ph - (n / ymax) * ph;
  const root = svg('svg', { width: W, height: H, viewBox: `0 0 ${W} ${H}`, role: 'img',
    'aria-label': `Events over time: ${events(c.histogram.buckets.reduce((a, b) => a + b.count, 0))}` });

  for (let v = 0; v <= ymax; v += step) {
    root.append(svg('line', { class: 'grid', x1: m.l, x2: W - m.r, y1: sy(v), y2: sy(v) }));
    root.append(svg('text', { class: 'axis', x: m.l - 6, y: sy(v) + 4, 'text-anchor': 'end' }, compact(v)));
  }
  const span = x1 - x0;
  const tstep = NICE_SECONDS.find((s) => span / s <= pw / 100) || NICE_SECONDS.at(-1);
  const offset = utc ? 0 : -new Date(x0 * 1000).getTimezoneOffset() * 60;
  for (let t = Math.ceil((x0 + offset) / tstep) * tstep - offset; t <= x1; t += tstep) {
    const x = sx(t);
    const anchor = x > W - m.r - 24 ? 'end' : x < m.l + 24 ? 'start' : 'middle';
    root.append(svg('line', { class: 'tick', x1: x, x2: x, y1: m.t + ph, y2: m.t + ph + 4 }));
    root.append(svg('text', { class: 'axis', x, y: H - 6, 'text-anchor': anchor }, tickLabel(t, tstep, span)));
  }
  const barWidth = Math.max(1, sx(x0 + interval) - sx(x0));
  const gap = barWidth > 5 ? 1 : 0;
  for (const b of buckets) {
    const x = Math.max(m.l, sx(b.time));
    const w = Math.max(1, Math.min(sx(b.time + interval), W - m.r) - x - gap);
    const rect = svg('rect', { class: 'bar', x, y: sy(b.count), width: w, height: Math.max(1, m.t + ph - sy(b.count)),
      'data-time': b.time, 'data-count': b.count });
    rect.append(svg('title', {},
      `${fmtTime(b.time)} – ${fmtTime(b.time + interval)}: ${events(b.count)}. Click to zoom in.`));
    rect.addEventListener('click', () => zoom(b.time, b.time + interval));
    root.append(rect);
  }
  root.append(svg('line', { class: 'baseline', x1: m.l, x2: W - m.r, y1: m.t + ph, y2: m.t + ph }));
  if (!buckets.length) {
    root.append(svg('text', { class: 'nodata', x: m.l + pw / 2, y: m.t + ph / 2, 'text-anchor': 'middle' },
      'No events in this time range'));
  }
  box.replaceChildren(root);
}

function zoom(from, to) {
  setSelect('range', 'custom');
  setTimeInput('from', String(from));
  setTimeInput('to', String(to));
  showCustom();
  search('push');
}

// ---- the detail panel ---------------------------------------------------------------------------

function rrTable(rrs) {
  const keys = [...new Set(rrs.flatMap((r) => Object.keys(r)))];
  return el('table', { class: 'rrs' },
    el('thead', {}, el('tr', {}, keys.map((k) => el('th', {}, k)))),
    el('tbody', {}, rrs.map((r) => el('tr', {}, keys.map((k) => el('td', {}, r[k] == null ? '' : String(r[k])))))));
}

function valueCell(key, v) {
  if (v == null || v === '' || (Array.isArray(v) && !v.length)) return el('span', { class: 'muted' }, '—');
  if (key === 'rrs' && Array.isArray(v)) return rrTable(v);
  if (Array.isArray(v) && v.every((x) => typeof x !== 'object')) return v.join(', ');
  if (typeof v === 'object') return el('pre', {}, JSON.stringify(v, null, 2));
  return String(v);
}

function eventSection(ev, current) {
  const kind = kindOf(ev);
  const latency = ev.latencyUsec != null ? ` · ${(ev.latencyUsec / 1000).toFixed(1)} ms` : '';
  return el('section', { class: `event${current ? ' current' : ''}`, dataset: { messageType: ev.messageType || '' } },
    el('h3', {}, el('span', { class: `tag ${kind.cls}` }, kind.label), ` ${fmtEventTime(ev)}${latency}`),
    el('table', { class: 'kv' }, el('tbody', {},
      Object.entries(ev).map(([k, v]) => el('tr', { dataset: { key: k } }, el('th', {}, k), el('td', {}, valueCell(k, v)))))),
    el('details', {}, el('summary', {}, 'JSON'), el('pre', {}, JSON.stringify(ev, null, 2))));
}

const sameEvent = (a, b) => a.messageType === b.messageType && a.timeSec === b.timeSec && a.timeUsec === b.timeUsec;

async function openDetail(index) {
  const ev = state.items[index];
  if (!ev) return;
  state.detailFor = ev;
  for (const tr of document.querySelectorAll('#results tr.selected')) tr.classList.remove('selected');
  const tr = document.querySelector(`#results tbody tr[data-index="${index}"]`);
  if (tr) tr.classList.add('selected');
  $('detail-title').textContent = `${ev.question || '(no name)'} ${ev.type || ''}`;
  $('detail-qid').textContent = ev.qid || '(none)';
  $('detail-link').hidden = !ev.qid;
  $('detail-link').href = `?${new URLSearchParams({ q: `=${ev.qid}`, range: 'all' })}`;
  $('detail-body').replaceChildren(el('p', { class: 'muted' }, 'Loading…'));
  $('detail').hidden = false;
  document.body.classList.add('detail-open');

  let items = [ev];
  let note = null;
  if (ev.qid) {
    try {
      items = (await api(`event/${encodeURIComponent(ev.qid)}`)).items;
    } catch (e) {
      if (e.status === 401) askToken();
      note = `Could not load the rest of this exchange: ${e.message}`;
    }
  }
  if (state.detailFor !== ev) return;
  items = [...items].sort((a, b) => a.timeSec - b.timeSec || a.timeUsec - b.timeUsec || a.qr - b.qr);
  $('detail-body').replaceChildren(...[
    note && el('p', { class: 'error' }, note),
    items.length === 1 && el('p', { class: 'muted' }, 'No other event shares this messageId.'),
    ...items.map((item) => eventSection(item, sameEvent(item, ev))),
  ].filter(Boolean));
}

function closeDetail() {
  state.detailFor = null;
  $('detail').hidden = true;
  document.body.classList.remove('detail-open');
  for (const tr of document.querySelectorAll('#results tr.selected')) tr.classList.remove('selected');
}

// ---- wiring -------------------------------------------------------------------------------------

function start() {
  $('utc').checked = utc;
  $('search-form').addEventListener('submit', (e) => {
    e.preventDefault();
    search('push');
  });
  for (const id of ['qtype', 'rcode', 'type']) $(id).addEventListener('change', () => search('push'));
  $('range').addEventListener('change', () => {
    showCustom();
    if ($('range').value !== 'custom') return search('push');
    // Start the custom range from what was shown, to adjust rather than type from scratch.
    const span = state.chart && state.chart.span;
    if (!$('from').value && !$('from').dataset.raw) $('from').value = toInput(span ? span[0] : nowSec() - 3600);
    $('from').focus();
  });
  for (const id of ['from', 'to']) $(id).addEventListener('input', () => { $(id).dataset.raw = ''; });
  $('utc').addEventListener('change', () => {
    const from = fromInput($('from').value);
    const to = fromInput($('to').value);
    utc = $('utc').checked;
    stored(UTC_KEY, utc ? '1' : null);
    if (from != null) $('from').value = toInput(from);
    if (to != null) $('to').value = toInput(to);
    redrawRows();
    drawChart();
    closeDetail();
  });
  $('auth').addEventListener('submit', (e) => {
    e.preventDefault();
    stored(TOKEN_KEY, $('token').value.trim() || null);
    $('token').value = '';
    $('auth').hidden = true;
    search('replace');
  });
  $('older').addEventListener('click', older);
  const tbody = $('results').tBodies[0];
  tbody.addEventListener('click', (e) => {
    const tr = e.target.closest('tr');
    if (tr) openDetail(Number(tr.dataset.index));
  });
  tbody.addEventListener('keydown', (e) => {
    const tr = e.target.closest('tr');
    if (tr && e.key === 'Enter') openDetail(Number(tr.dataset.index));
  });
  $('detail-close').addEventListener('click', closeDetail);
  document.addEventListener('keydown', (e) => {
    if (e.key === 'Escape' && !$('detail').hidden) closeDetail();
    if (e.key === '/' && !/^(INPUT|SELECT|TEXTAREA)$/.test(document.activeElement.tagName)) {
      e.preventDefault();
      $('q').focus();
    }
  });
  window.addEventListener('popstate', () => {
    fillForm(new URLSearchParams(location.search));
    search('none');
  });
  let pending = 0;
  new ResizeObserver(() => {
    cancelAnimationFrame(pending);
    pending = requestAnimationFrame(drawChart);
  }).observe($('chart'));

  fillForm(new URLSearchParams(location.search));
  search('replace');
}

start();
