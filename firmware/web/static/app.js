// pafw dashboard: plain ES2020 module, no dependencies. Everything that comes from the
// appliance goes into the DOM through textContent (never innerHTML) and every number may
// be null, so each access goes through num()/str()/arr()/obj().

const API = '/api/v1';
const TOKEN_KEY = 'pafw.token';
const HEALTH_STATES = ['ok', 'alarm', 'acknowledged', 'stale', 'fault'];
const MAX_EVENTS = 50;
const TREND_POINTS = 600;
const STREAM_SILENCE_MS = 15000; // status events arrive ~1/s; this long without one: reconnect
const FALLBACK_POLL_MS = 5000;
const SPECTRUM_POLL_MS = 1000;
const TREND_DRAW_MIN_MS = 250; // ≤ 4 Hz

// ---------------------------------------------------------------- small helpers

const $ = (sel, root = document) => root.querySelector(sel);
const num = (x) => (typeof x === 'number' && Number.isFinite(x) ? x : null);
const str = (x) => (x === null || x === undefined ? '' : String(x));
const arr = (x) => (Array.isArray(x) ? x : []);
const obj = (x) => (x !== null && typeof x === 'object' && !Array.isArray(x) ? x : null);
const enc = encodeURIComponent;
const pad2 = (n) => String(n).padStart(2, '0');
const DASH = '—';

function setText(el, text) {
  if (!el) return;
  const t = str(text);
  if (el.textContent !== t) el.textContent = t;
}

function setAttr(el, name, value) {
  if (!el) return;
  const v = str(value);
  if (el.getAttribute(name) !== v) el.setAttribute(name, v);
}

function el(tag, className, text) {
  const e = document.createElement(tag);
  if (className) e.className = className;
  if (text !== undefined && text !== null) e.textContent = str(text);
  return e;
}

function safe(fn) {
  return (...args) => {
    try {
      return fn(...args);
    } catch (err) {
      console.warn('pafw dashboard:', err);
      return undefined;
    }
  };
}

function fmtFixed(x, digits = 1) {
  const v = num(x);
  return v === null ? DASH : v.toFixed(digits);
}

/** A measured value: enough digits to be useful, never locale separators (tests parse it). */
function fmtValue(x) {
  const v = num(x);
  if (v === null) return DASH;
  const a = Math.abs(v);
  if (a >= 10000) return v.toFixed(0);
  if (a >= 1 || a === 0) return v.toFixed(1);
  return v.toFixed(3);
}

/** A configured number (threshold): no needless trailing zeros. */
function fmtCompact(x) {
  const v = num(x);
  if (v === null) return DASH;
  return String(Number(v.toPrecision(6)));
}

function fmtInt(x) {
  const v = num(x);
  return v === null ? DASH : String(Math.round(v));
}

function fmtDuration(s) {
  const v = num(s);
  if (v === null || v < 0) return DASH;
  const d = Math.floor(v / 86400);
  const h = Math.floor((v % 86400) / 3600);
  const m = Math.floor((v % 3600) / 60);
  const sec = Math.floor(v % 60);
  if (d > 0) return `${d} d ${h} h ${pad2(m)} m`;
  if (h > 0) return `${h} h ${pad2(m)} m`;
  if (m > 0) return `${m} m ${pad2(sec)} s`;
  return `${v < 10 ? v.toFixed(1) : sec} s`;
}

function fmtAge(s) {
  const v = num(s);
  if (v === null) return DASH;
  if (v < 0.05) return 'now';
  if (v < 60) return `${v.toFixed(v < 10 ? 1 : 0)} s`;
  return fmtDuration(v);
}

function hhmm(t) {
  const d = new Date(t * 1000);
  return `${pad2(d.getHours())}:${pad2(d.getMinutes())}`;
}

function hhmmss(t) {
  const v = num(t);
  if (v === null) return DASH;
  const d = new Date(v * 1000);
  return `${pad2(d.getHours())}:${pad2(d.getMinutes())}:${pad2(d.getSeconds())}`;
}

function basename(path) {
  const parts = str(path).split(/[\\/]/);
  return parts[parts.length - 1] || '';
}

/** "Type: message (file.py:12)"; empty string when there is no error. */
function formatError(e) {
  const err = obj(e);
  if (!err) return '';
  const type = str(err.type);
  const message = str(err.message);
  let text = type ? `${type}: ${message}` : message;
  const file = basename(err.file);
  const line = num(err.line);
  // a SyntaxError's message already ends with "(file.py, line 2)": say the place once
  if (file && line !== null && message.endsWith(`(${file}, line ${line})`)) return text;
  if (file && line !== null) text += ` (${file}:${line})`;
  else if (file) text += ` (${file})`;
  else if (line !== null) text += ` (line ${line})`;
  return text;
}

// ------------------------------------------------------------- server clock

// The appliance may not have a real-time clock in sync with the browser's; charts and ages
// are drawn in the appliance's time (offset estimated from the newest timestamp seen).
const clock = { offset: null };

function noteServerTime(ts) {
  const t = num(ts);
  if (t === null) return;
  const offset = t - Date.now() / 1000;
  // follow jumps quickly, smooth jitter otherwise
  if (clock.offset === null || Math.abs(offset - clock.offset) > 2) clock.offset = offset;
  else clock.offset += (offset - clock.offset) * 0.2;
}

function serverNow() {
  return Date.now() / 1000 + (clock.offset ?? 0);
}

// ----------------------------------------------------------------- fetching

function getToken() {
  try {
    return localStorage.getItem(TOKEN_KEY) || '';
  } catch {
    return '';
  }
}

function setToken(token) {
  try {
    if (token) localStorage.setItem(TOKEN_KEY, token);
    else localStorage.removeItem(TOKEN_KEY);
    return true;
  } catch {
    return false;
  }
}

/**
 * One request. Resolves {ok, status, data, message}; rejects only when aborted.
 * `message` is the error body's message (or a generic one) when !ok.
 */
async function api(path, { method = 'GET', body, signal, auth = false } = {}) {
  const headers = { Accept: 'application/json' };
  const init = { method, headers, signal, cache: 'no-store', credentials: 'same-origin' };
  if (method !== 'GET') {
    headers['Content-Type'] = 'application/json';
    init.body = JSON.stringify(body ?? {});
  }
  if (auth) {
    const token = getToken();
    if (token) headers.Authorization = `Bearer ${token}`;
  }
  let resp;
  try {
    resp = await fetch(path, init);
  } catch (err) {
    if (err && err.name === 'AbortError') throw err;
    return { ok: false, status: 0, data: null, message: 'Appliance not reachable' };
  }
  let data = null;
  let text = '';
  try {
    text = await resp.text();
  } catch (err) {
    if (err && err.name === 'AbortError') throw err;
  }
  if (text) {
    try {
      data = JSON.parse(text);
    } catch {
      data = null;
    }
  }
  let message = '';
  if (!resp.ok) {
    const e = obj(obj(data)?.error);
    message = e && e.message ? str(e.message) : `HTTP ${resp.status}${resp.statusText ? ` ${resp.statusText}` : ''}`;
  }
  return { ok: resp.ok, status: resp.status, data, message };
}

const isVisible = () => document.visibilityState !== 'hidden';

/**
 * Polls with one request in flight at most, pauses while the page is hidden or `when()` is
 * false, and backs off exponentially on failure. run() returns true/false (success) or a
 * number (success, next delay in ms).
 */
class Poller {
  constructor({ name, interval, run, when = () => true, maxBackoff = 30000 }) {
    this.name = name;
    this.interval = interval;
    this.run = run;
    this.when = when;
    this.maxBackoff = maxBackoff;
    this.timer = null;
    this.inFlight = false;
    this.failures = 0;
  }

  active() {
    return isVisible() && this.when();
  }

  kick(delay = 0) {
    clearTimeout(this.timer);
    this.timer = null;
    if (!this.active()) return;
    this.timer = setTimeout(() => this.tick(), delay);
  }

  stop() {
    clearTimeout(this.timer);
    this.timer = null;
  }

  async tick() {
    this.timer = null;
    if (this.inFlight || !this.active()) return;
    this.inFlight = true;
    let ok = false;
    let next = null;
    try {
      const r = await this.run();
      if (typeof r === 'number') {
        ok = true;
        next = r;
      } else {
        ok = r !== false;
      }
    } catch (err) {
      if (!(err && err.name === 'AbortError')) console.warn(`pafw dashboard: ${this.name}:`, err);
    }
    this.inFlight = false;
    this.failures = ok ? 0 : this.failures + 1;
    const delay = ok
      ? next ?? this.interval
      : Math.min(this.maxBackoff, Math.max(this.interval, 1000) * 2 ** Math.min(this.failures, 5));
    if (this.timer === null) this.kick(delay);
  }
}

// -------------------------------------------------------------------- toast

let toastTimer = null;

function toast(message, kind = 'info') {
  const t = $('#toast');
  if (!t) return;
  clearTimeout(toastTimer);
  t.dataset.kind = kind;
  t.textContent = str(message);
  toastTimer = setTimeout(() => {
    t.textContent = '';
    delete t.dataset.kind;
  }, kind === 'error' ? 8000 : 4000);
}

// --------------------------------------------------------- header & health

const app = {
  results: {},
  lastResultsAt: 0,
  status: null,
  streamUp: false,
  gas: '',
  writesEnabled: null, // null until the first status says whether a token is configured
};

function renderDevice(device) {
  const d = obj(device);
  if (!d) return;
  const name = str(d.name) || 'Photoacoustic analyzer';
  const id = str(d.id);
  const gas = str(d.gas);
  setText($('#device-name'), name);
  setText($('#device-id'), gas ? `${id} · ${gas}` : id);
  if (gas !== app.gas) {
    app.gas = gas;
    renderCurrent();
  }
  const title = id ? `${name} · ${id}` : name;
  if (document.title !== title) document.title = title;
}

function setHealthState(state) {
  const st = HEALTH_STATES.includes(state) ? state : 'stale';
  if (document.body.dataset.health !== st) document.body.dataset.health = st;
  for (const sel of ['#current-status', '#health-pill']) {
    const e = $(sel);
    setText(e, st);
    if (e && e.dataset.state !== st) e.dataset.state = st;
  }
}

function renderHealthState(health) {
  const h = obj(health);
  setHealthState(h ? h.state : 'stale');
  const list = $('#current-alarms');
  if (list) {
    const alarms = arr(h?.alarms).map(obj).filter(Boolean);
    const key = JSON.stringify(alarms.map((a) => [a.action, a.trigger, !!a.acknowledged]));
    if (list.dataset.key !== key) {
      list.dataset.key = key;
      list.replaceChildren(
        ...alarms.map((a) => {
          const li = el('li', a.acknowledged ? 'acknowledged' : 'active');
          li.append(el('span', '', `${str(a.trigger) || '?'} · ${str(a.action)}`));
          li.append(el('span', 'muted', a.acknowledged ? 'acknowledged' : 'ALARM'));
          return li;
        }),
      );
    }
  }
  setText($('#current-fault'), h && h.fault ? `Fault: ${str(h.fault)}` : '');
  const ackAll = $('#btn-ack-all');
  if (ackAll) ackAll.hidden = !arr(h?.alarms).some((a) => obj(a) && !a.acknowledged);
}

function renderHealthPanel(s) {
  const set = (id, text, cls = '') => {
    const e = document.getElementById(id);
    if (!e) return;
    setText(e, text);
    if (e.className !== cls) e.className = cls;
  };
  set('health-uptime', fmtDuration(s.uptime_s));
  set('health-source', str(s.source) || DASH);
  const src = $('#health-source');
  if (src) {
    const ss = obj(s.source_status);
    let title = '';
    try {
      title = ss ? JSON.stringify(ss) : '';
    } catch {
      title = '';
    }
    setAttr(src, 'title', title.slice(0, 500));
  }
  const sr = num(s.sample_rate);
  const fs = num(s.frame_size);
  set('health-sample-rate', sr === null ? DASH : `${sr} Hz${fs !== null ? ` · ${fs}` : ''}`);
  set('health-fps', fmtFixed(s.frames_per_s, 1));
  const rtf = num(s.realtime_factor);
  set('health-rtf', rtf === null ? DASH : `${rtf.toFixed(2)}×`, rtf !== null && rtf < 0.95 ? 'warn' : '');
  const ov = num(s.overruns);
  set('health-overruns', fmtInt(ov), ov ? 'bad' : '');
  const dsp = num(s.dsp_cpu_percent);
  set('health-dsp-cpu', dsp === null ? DASH : `${dsp.toFixed(1)} %`, dsp !== null && dsp > 70 ? 'warn' : '');
  const proc = obj(s.process) || {};
  const cpu = num(proc.cpu_percent);
  set('health-cpu', cpu === null ? DASH : `${cpu.toFixed(1)} %`);
  const rss = num(proc.rss_bytes);
  set('health-rss', rss === null ? DASH : `${(rss / 1e6).toFixed(1)} MB`);
  set('health-ver', str(s.version) || DASH);
  setText($('#health-version'), s.version ? `v${str(s.version)}` : '');
  set('health-release', str(s.release) || DASH);
  const mq = obj(s.mqtt);
  if (!mq) set('health-mqtt', DASH);
  else if (!mq.enabled) set('health-mqtt', 'disabled');
  else {
    const pending = num(mq.outbox_pending);
    const dropped = num(mq.outbox_dropped);
    let text = mq.connected ? 'connected' : 'disconnected';
    if (pending !== null) text += ` · ${pending} pending`;
    if (dropped) text += ` · ${dropped} dropped`;
    set('health-mqtt', text, mq.connected ? '' : 'warn');
  }
  const web = obj(s.web);
  if (!web) set('health-web', DASH);
  else {
    const streams = num(web.streams);
    const conns = num(web.connections);
    let text = streams === null ? DASH : `${streams}`;
    if (conns !== null) text += ` · ${conns} conn`;
    set('health-web', text);
  }
}

function handleStatus(s) {
  const status = obj(s);
  if (!status) return;
  app.status = status;
  noteServerTime(status.timestamp);
  renderDevice(status.device);
  if (typeof status.writes_enabled === 'boolean' && status.writes_enabled !== app.writesEnabled) {
    app.writesEnabled = status.writes_enabled;
    applyWriteAccess();
  }
  renderHealthState(status.health);
  renderHealthPanel(status);
  if (Array.isArray(status.actions)) renderActions(status.actions);
  if (obj(status.outputs)) renderOutputs(status.outputs);
  renderCycle();
}

// -------------------------------------------------------- measurement cycle

/** The cycle's phase (and inlet) with the time left in it, and the newest average. */
function renderCycle() {
  const c = obj(app.status?.cycle);
  const on = Boolean(c && c.enabled === true);
  for (const sel of ['#current-cycle', '#current-cycle-average']) {
    const e = $(sel);
    if (e && e.hidden === on) e.hidden = !on;
  }
  if (!on) return;
  const phase = str(c.phase) || str(c.state) || DASH;
  const inlet = str(c.inlet);
  setText($('#current-phase'), inlet ? `${phase} · ${inlet}` : phase);
  const ends = num(c.phase_ends);
  let left = '';
  if (ends !== null && str(c.state) === 'running') left = `${fmtDuration(Math.max(0, ends - serverNow()))} left`;
  else if (c.reason) left = str(c.reason);
  setText($('#current-phase-left'), left);
  const averages = Object.values(obj(c.averages) || {}).filter((r) => obj(r));
  averages.sort((a, b) => (num(b.timestamp) ?? 0) - (num(a.timestamp) ?? 0));
  const newest = averages[0];
  if (!newest) {
    setText($('#current-average'), DASH);
    return;
  }
  const stats = obj(newest.average) || {};
  const conc = newest.concentration_ppm !== null && newest.concentration_ppm !== undefined;
  const mean = conc ? newest.concentration_ppm : newest.amplitude;
  const std = conc ? stats.concentration_std : stats.amplitude_std;
  const unit = conc ? ' ppm' : '';
  const where = str(stats.inlet) ? ` · ${str(stats.inlet)}` : '';
  const spread = num(std) === null ? '' : ` ± ${fmtValue(std)}`;
  setText($('#current-average'), `${fmtValue(mean)}${spread}${unit} (n ${fmtInt(stats.n)})${where}`);
}

// ----------------------------------------------------------- current value

function currentSource() {
  const results = app.results;
  let node = trend.node && obj(results[trend.node]) ? trend.node : null;
  if (!node) {
    const ids = Object.keys(results);
    node = ids.find((id) => obj(results[id])?.kind === 'concentration') || ids[0] || null;
  }
  if (!node) return null;
  const result = obj(results[node]);
  if (!result) return null;
  let field = node === trend.node && trend.field ? trend.field : null;
  let unit = node === trend.node && trend.unit !== null ? trend.unit : null;
  if (!field) {
    if (result.kind === 'concentration') field = 'concentration_ppm';
    else field = 'amplitude';
  }
  if (unit === null) unit = field === 'concentration_ppm' ? 'ppm' : field === 'amplitude_db' ? 'dB' : '';
  return { node, result, field, unit };
}

function renderCurrent() {
  const src = currentSource();
  if (!src) {
    setText($('#current-value'), DASH);
    return;
  }
  const { node, result, field, unit } = src;
  setText($('#current-value'), fmtValue(result[field]));
  setText($('#current-unit'), unit);
  const gas = app.gas ? `${app.gas} ` : '';
  setText($('#current-title'), field === 'concentration_ppm' ? `${gas}concentration` : field.replace(/_/g, ' '));
  setText($('#current-node'), node);
  // frequency / SNR: the result's own, else its source node's (the peak finder)
  const upstream = obj(app.results[str(result.source_node_id)]);
  const freq = num(result.frequency_hz) ?? num(upstream?.frequency_hz);
  const snr = num(result.snr_db) ?? num(upstream?.snr_db);
  setText($('#current-frequency'), freq === null ? DASH : `${freq.toFixed(1)} Hz`);
  setText($('#current-snr'), snr === null ? DASH : `${snr.toFixed(1)} dB`);
  renderAge();
  const flags = [];
  if (result.clamped === true) flags.push(['clamped to calibration range', 'warn']);
  if (result.detected === false) flags.push(['no peak detected', 'warn']);
  const box = $('#current-flags');
  if (box) {
    const key = flags.map((f) => f[0]).join('|');
    if (box.dataset.key !== key) {
      box.dataset.key = key;
      box.replaceChildren(...flags.map(([text, cls]) => el('span', `flag ${cls}`, text)));
    }
  }
}

function renderAge() {
  const src = currentSource();
  const ts = num(src?.result?.timestamp);
  setText($('#current-age'), ts === null ? DASH : fmtAge(Math.max(0, serverNow() - ts)));
}

function handleResults(msg) {
  const m = obj(msg);
  const results = obj(m?.results);
  if (!results) return;
  noteServerTime(m.timestamp);
  for (const [id, r] of Object.entries(results)) {
    if (obj(r)) app.results[id] = r;
  }
  app.lastResultsAt = Date.now();
  renderCurrent();
  appendTrend(results);
}

// ------------------------------------------------------------------ canvases

const COLORS = {
  grid: 'rgba(139, 150, 165, 0.16)',
  axis: 'rgba(139, 150, 165, 0.45)',
  label: '#8793a2',
  text: '#d3dae3',
  line: '#2dd4bf',
  band: 'rgba(45, 212, 191, 0.16)',
  spectrum: '#9f8cff',
  spectrumFill: 'rgba(159, 140, 255, 0.10)',
  searchBand: 'rgba(45, 212, 191, 0.07)',
  searchEdge: 'rgba(45, 212, 191, 0.7)',
  above: '#ff5c57',
  below: '#58a6ff',
  peak: '#ffd166',
  plate: 'rgba(13, 17, 23, 0.82)',
};
const FONT = '12px system-ui, -apple-system, "Segoe UI", Roboto, sans-serif';

/** Sizes the backing store to the element × devicePixelRatio; returns a CSS-pixel context. */
function setupCanvas(canvas) {
  if (!canvas) return null;
  const rect = canvas.getBoundingClientRect();
  const w = rect.width;
  const h = rect.height;
  if (w < 4 || h < 4) return null;
  const dpr = window.devicePixelRatio || 1;
  const W = Math.round(w * dpr);
  const H = Math.round(h * dpr);
  if (canvas.width !== W || canvas.height !== H) {
    canvas.width = W;
    canvas.height = H;
  }
  const ctx = canvas.getContext('2d');
  if (!ctx) return null;
  ctx.setTransform(dpr, 0, 0, dpr, 0, 0);
  ctx.clearRect(0, 0, w, h);
  ctx.font = FONT;
  ctx.lineJoin = 'round';
  ctx.lineCap = 'round';
  return { ctx, w, h };
}

function niceStep(span, count) {
  const raw = span / Math.max(1, count);
  if (!(raw > 0) || !Number.isFinite(raw)) return 1;
  const mag = 10 ** Math.floor(Math.log10(raw));
  const f = raw / mag;
  const nf = f <= 1 ? 1 : f <= 2 ? 2 : f <= 2.5 ? 2.5 : f <= 5 ? 5 : 10;
  return nf * mag;
}

function decimalsFor(step) {
  for (let d = 0; d < 8; d += 1) {
    const s = step * 10 ** d;
    if (Math.abs(Math.round(s) - s) < 1e-6 * Math.max(1, s)) return d;
  }
  return 8;
}

/** Expands [lo, hi] to whole steps and lists the ticks. */
function niceScale(lo, hi, count) {
  if (!(hi > lo)) {
    const c = Number.isFinite(lo) ? lo : 0;
    const d = Math.max(Math.abs(c) * 0.05, 1);
    lo = c - d;
    hi = c + d;
  }
  const step = niceStep(hi - lo, count);
  const min = Math.floor(lo / step + 1e-9) * step;
  const max = Math.ceil(hi / step - 1e-9) * step;
  const ticks = [];
  for (let i = 0, v = min; v <= max + step * 1e-6 && i < 100; i += 1, v = min + i * step) ticks.push(v);
  return { min, max, step, ticks, decimals: decimalsFor(step) };
}

function drawMessage(ctx, cx, cy, text) {
  ctx.save();
  ctx.fillStyle = COLORS.label;
  ctx.font = '14px system-ui, sans-serif';
  ctx.textAlign = 'center';
  ctx.textBaseline = 'middle';
  ctx.fillText(text, cx, cy);
  ctx.restore();
}

function drawPlate(ctx, text, x, y, color, align = 'left') {
  const m = ctx.measureText(text);
  const pw = m.width + 8;
  const ph = 16;
  const px = align === 'right' ? x - pw : align === 'center' ? x - pw / 2 : x;
  ctx.fillStyle = COLORS.plate;
  ctx.fillRect(px, y - ph / 2, pw, ph);
  ctx.fillStyle = color;
  ctx.textAlign = 'left';
  ctx.textBaseline = 'middle';
  ctx.fillText(text, px + 4, y + 0.5);
}

function yAxis(ctx, scale, yOf, left, right, unit) {
  ctx.textAlign = 'right';
  ctx.textBaseline = 'middle';
  for (const v of scale.ticks) {
    const y = Math.round(yOf(v)) + 0.5;
    ctx.strokeStyle = COLORS.grid;
    ctx.lineWidth = 1;
    ctx.beginPath();
    ctx.moveTo(left, y);
    ctx.lineTo(right, y);
    ctx.stroke();
    ctx.fillStyle = COLORS.label;
    ctx.fillText(v.toFixed(scale.decimals), left - 6, y);
  }
  if (unit) {
    ctx.fillStyle = COLORS.label;
    ctx.textAlign = 'right';
    ctx.textBaseline = 'top';
    ctx.fillText(unit, left - 6, 2);
  }
}

function attachHover(canvas, target, redraw) {
  if (!canvas) return;
  const move = (ev) => {
    const r = canvas.getBoundingClientRect();
    target.hover = { x: ev.clientX - r.left, y: ev.clientY - r.top };
    redraw();
  };
  canvas.addEventListener('pointermove', safe(move));
  canvas.addEventListener('pointerdown', safe(move));
  canvas.addEventListener('pointerleave', safe(() => {
    target.hover = null;
    redraw();
  }));
}

/** Calls fn at most once per minMs, on an animation frame. */
function throttledDraw(fn, minMs) {
  let last = 0;
  let timer = null;
  let frame = 0;
  const run = safe(fn);
  return () => {
    if (timer !== null || frame) return;
    const wait = Math.max(0, last + minMs - performance.now());
    timer = setTimeout(() => {
      timer = null;
      const go = () => {
        frame = 0;
        last = performance.now();
        run();
      };
      if (isVisible()) frame = requestAnimationFrame(go);
      else go();
    }, wait);
  };
}

// --------------------------------------------------------------------- trend

const trend = {
  range: 600,
  node: null,
  field: null,
  unit: null,
  bucket: 1,
  points: [], // [t, mean, min, max]
  counts: [], // samples merged into live points (server points count as 1)
  thresholds: [],
  lastSampleT: null,
  loaded: false,
  loading: false,
  error: '',
  ctrl: null,
  retryTimer: null,
  retryDelay: 2000,
  hover: null,
};

const KIND_FIELD = { concentration: 'concentration_ppm', amplitude: 'amplitude', amplitude_db: 'amplitude_db' };

function cleanThresholds(list, field) {
  // one line per side and value: triggers of several actions at the same level share it
  // (and its label, with the names joined) instead of drawing labels over each other
  const byLevel = new Map();
  for (const item of arr(list)) {
    const t = obj(item);
    if (!t) continue;
    if (field && KIND_FIELD[t.kind] && KIND_FIELD[t.kind] !== field) continue;
    for (const side of ['above', 'below']) {
      const v = num(t[side]);
      if (v === null) continue;
      const key = `${side}|${v}`;
      const name = str(t.trigger) || str(t.action);
      const level = byLevel.get(key);
      if (!level) byLevel.set(key, { side, value: v, names: [name], action: str(t.action) });
      else if (!level.names.includes(name)) level.names.push(name);
    }
  }
  return [...byLevel.values()].map((l) => ({ side: l.side, value: l.value, trigger: l.names.join(', '), action: l.action }));
}

async function loadTrend() {
  clearTimeout(trend.retryTimer);
  trend.retryTimer = null;
  if (trend.ctrl) trend.ctrl.abort();
  const ctrl = new AbortController();
  trend.ctrl = ctrl;
  trend.loading = true;
  const range = trend.range;
  let r;
  try {
    r = await api(`${API}/trend?seconds=${range}&points=${TREND_POINTS}`, { signal: ctrl.signal });
  } catch {
    return; // aborted: a newer request owns the state
  }
  if (trend.ctrl !== ctrl) return;
  trend.ctrl = null;
  trend.loading = false;
  const d = obj(r.data);
  if (!r.ok || !d) {
    trend.error = r.message || 'Trend unavailable';
    scheduleTrendDraw();
    if (app.streamUp || r.status !== 0) {
      trend.retryTimer = setTimeout(safe(loadTrend), trend.retryDelay);
      trend.retryDelay = Math.min(trend.retryDelay * 2, 30000);
    }
    return;
  }
  trend.retryDelay = 2000;
  trend.error = '';
  trend.loaded = true;
  trend.node = str(d.node) || null;
  trend.field = str(d.field) || 'concentration_ppm';
  trend.unit = d.unit === null || d.unit === undefined ? '' : str(d.unit);
  const bucket = num(d.bucket_s);
  trend.bucket = bucket !== null && bucket > 0 ? bucket : range / TREND_POINTS;
  const points = [];
  for (const p of arr(d.points)) {
    const t = num(arr(p)[0]);
    if (t === null) continue;
    points.push([t, num(p[1]), num(p[2]), num(p[3])]);
  }
  points.sort((a, b) => a[0] - b[0]);
  trend.points = points;
  trend.counts = points.map(() => 1);
  trend.lastSampleT = points.length ? points[points.length - 1][0] : null;
  trend.thresholds = cleanThresholds(d.thresholds, trend.field);
  renderTrendMeta();
  renderCurrent();
  scheduleTrendDraw();
}

function renderTrendMeta() {
  const meta = $('#trend-meta');
  if (!meta) return;
  if (trend.error) {
    setText(meta, trend.error);
    return;
  }
  if (!trend.node) {
    setText(meta, trend.loading ? 'Loading…' : '');
    return;
  }
  const parts = [`${trend.node}.${trend.field}`];
  if (trend.bucket) parts.push(`${trend.bucket >= 10 ? trend.bucket.toFixed(0) : trend.bucket.toFixed(1)} s buckets`);
  if (trend.thresholds.length) parts.push(trend.thresholds.map((t) => `${t.trigger} ${t.side === 'above' ? '>' : '<'} ${fmtCompact(t.value)}`).join(', '));
  setText(meta, parts.join(' · '));
}

function trimTrend(now) {
  const cutoff = now - trend.range;
  let i = 0;
  while (i < trend.points.length && trend.points[i][0] < cutoff) i += 1;
  if (i > 0) {
    trend.points.splice(0, i);
    trend.counts.splice(0, i);
  }
}

function appendTrend(results) {
  if (!trend.loaded || !trend.node || !trend.field) return;
  const r = obj(results[trend.node]);
  if (!r) return;
  const t = num(r.timestamp);
  if (t === null) return;
  if (trend.lastSampleT !== null && t <= trend.lastSampleT) return; // seen already
  trend.lastSampleT = t;
  const v = num(r[trend.field]);
  const pts = trend.points;
  const last = pts[pts.length - 1];
  if (last && t - last[0] < trend.bucket) {
    if (v !== null) {
      const i = pts.length - 1;
      const n = trend.counts[i] || 0;
      last[1] = last[1] === null || n === 0 ? v : (last[1] * n + v) / (n + 1);
      last[2] = last[2] === null ? v : Math.min(last[2], v);
      last[3] = last[3] === null ? v : Math.max(last[3], v);
      trend.counts[i] = n + 1;
    }
  } else {
    pts.push([t, v, v, v]);
    trend.counts.push(v === null ? 0 : 1);
  }
  trimTrend(Math.max(t, serverNow()));
  scheduleTrendDraw();
}

function timeStep(span, width) {
  const target = span / Math.max(2, width / 95);
  const steps = [10, 15, 30, 60, 120, 300, 600, 900, 1800, 3600, 7200, 10800, 14400, 21600, 43200, 86400];
  return steps.find((s) => s >= target) || 86400;
}

/** The plotting rectangle of a chart canvas (room for the y labels and time/frequency
 * labels), or null when the canvas is too small to draw in. */
function plotArea(w, h) {
  const left = w < 420 ? 46 : 56;
  const right = w - 12;
  const top = 20;
  const bottom = h - 24;
  const pw = right - left;
  const ph = bottom - top;
  return pw < 20 || ph < 20 ? null : { left, right, top, bottom, pw, ph };
}

function drawTrend() {
  renderTrendMeta();
  const canvas = $('#trend-canvas');
  const c = setupCanvas(canvas);
  if (!c) return;
  const { ctx, w, h } = c;
  const area = plotArea(w, h);
  if (!area) return;
  const { left, right, top, bottom, pw, ph } = area;

  const pts = trend.points;
  const lastT = pts.length ? pts[pts.length - 1][0] : null;
  const x1 = Math.max(serverNow(), lastT ?? -Infinity);
  const x0 = x1 - trend.range;
  const xOf = (t) => left + ((t - x0) / (x1 - x0)) * pw;

  let lo = Infinity;
  let hi = -Infinity;
  let first = pts.length;
  for (let i = pts.length - 1; i >= 0; i -= 1) {
    const p = pts[i];
    if (p[0] < x0) break;
    first = i;
    for (let k = 1; k <= 3; k += 1) {
      const v = p[k];
      if (v !== null) {
        if (v < lo) lo = v;
        if (v > hi) hi = v;
      }
    }
  }
  const hasData = lo <= hi;
  renderRangeStats(first);

  // time axis
  ctx.strokeStyle = COLORS.axis;
  ctx.lineWidth = 1;
  ctx.beginPath();
  ctx.moveTo(left, Math.round(bottom) + 0.5);
  ctx.lineTo(right, Math.round(bottom) + 0.5);
  ctx.stroke();
  const step = timeStep(trend.range, pw);
  const tz = -new Date(x1 * 1000).getTimezoneOffset() * 60;
  ctx.textAlign = 'center';
  ctx.textBaseline = 'top';
  for (let t = Math.ceil((x0 + tz) / step) * step - tz; t <= x1; t += step) {
    const x = Math.round(xOf(t)) + 0.5;
    ctx.strokeStyle = COLORS.grid;
    ctx.beginPath();
    ctx.moveTo(x, top);
    ctx.lineTo(x, bottom);
    ctx.stroke();
    const label = step < 60 ? hhmmss(t) : hhmm(t);
    const lw = ctx.measureText(label).width;
    if (x - lw / 2 < left - 2 || x + lw / 2 > w - 2) continue;
    ctx.fillStyle = COLORS.label;
    ctx.fillText(label, x, bottom + 6);
  }

  if (!hasData) {
    ctx.fillStyle = COLORS.label;
    ctx.textAlign = 'right';
    ctx.textBaseline = 'top';
    if (trend.unit) ctx.fillText(trend.unit, left - 6, 2);
    drawMessage(ctx, left + pw / 2, top + ph / 2, trend.error || (trend.loaded ? 'No data in this range yet' : 'Loading trend…'));
    return;
  }

  // y range: the data, plus thresholds that are near enough to be meaningful
  const span = Math.max(hi - lo, Math.abs(hi) * 0.1, 1e-6);
  const inView = [];
  const outView = [];
  for (const th of trend.thresholds) {
    if (th.value >= lo - 2 * span && th.value <= hi + 2 * span) inView.push(th);
    else outView.push(th);
  }
  let ylo = lo;
  let yhi = hi;
  for (const th of inView) {
    ylo = Math.min(ylo, th.value);
    yhi = Math.max(yhi, th.value);
  }
  const margin = (yhi - ylo) * 0.08;
  const scale = niceScale(ylo - margin, yhi + margin, Math.max(4, Math.floor(ph / 40)));
  const yOf = (v) => bottom - ((v - scale.min) / (scale.max - scale.min)) * ph;
  yAxis(ctx, scale, yOf, left, right, trend.unit);

  ctx.save();
  ctx.beginPath();
  ctx.rect(left, top - 1, pw, ph + 2);
  ctx.clip();

  const gap = Math.max(trend.bucket * 3.5, 3);
  // min–max band, one polygon per run of points without gaps
  ctx.fillStyle = COLORS.band;
  let run = [];
  const flushBand = () => {
    if (run.length > 1) {
      ctx.beginPath();
      run.forEach((p, i) => (i ? ctx.lineTo(xOf(p[0]), yOf(p[3])) : ctx.moveTo(xOf(p[0]), yOf(p[3]))));
      for (let i = run.length - 1; i >= 0; i -= 1) ctx.lineTo(xOf(run[i][0]), yOf(run[i][2]));
      ctx.closePath();
      ctx.fill();
    }
    run = [];
  };
  for (let i = first; i < pts.length; i += 1) {
    const p = pts[i];
    if (p[2] === null || p[3] === null) {
      flushBand();
      continue;
    }
    if (run.length && p[0] - run[run.length - 1][0] > gap) flushBand();
    run.push(p);
  }
  flushBand();

  // mean line
  ctx.strokeStyle = COLORS.line;
  ctx.fillStyle = COLORS.line;
  ctx.lineWidth = 2;
  ctx.beginPath();
  let prev = null;
  let lastDrawn = null;
  for (let i = first; i < pts.length; i += 1) {
    const p = pts[i];
    if (p[1] === null) {
      prev = null;
      continue;
    }
    const x = xOf(p[0]);
    const y = yOf(p[1]);
    if (prev && p[0] - prev[0] <= gap) ctx.lineTo(x, y);
    else {
      const next = pts[i + 1];
      const isolated = !next || next[1] === null || next[0] - p[0] > gap;
      if (isolated) ctx.moveTo(x - 1.5, y), ctx.lineTo(x + 1.5, y); // lone point: a short tick
      ctx.moveTo(x, y);
    }
    prev = p;
    lastDrawn = [x, y];
  }
  ctx.stroke();
  if (lastDrawn) {
    ctx.beginPath();
    ctx.arc(lastDrawn[0], lastDrawn[1], 3.5, 0, Math.PI * 2);
    ctx.fill();
  }
  ctx.restore();

  // thresholds
  ctx.save();
  ctx.lineWidth = 1.25;
  ctx.setLineDash([6, 5]);
  for (const th of inView) {
    const y = Math.round(yOf(th.value)) + 0.5;
    ctx.strokeStyle = th.side === 'above' ? COLORS.above : COLORS.below;
    ctx.beginPath();
    ctx.moveTo(left, y);
    ctx.lineTo(right, y);
    ctx.stroke();
  }
  ctx.setLineDash([]);
  for (const th of inView) {
    const y = yOf(th.value);
    const color = th.side === 'above' ? COLORS.above : COLORS.below;
    const ly = th.side === 'above' ? y - 9 : y + 9;
    drawPlate(ctx, th.trigger || fmtCompact(th.value), right - 2, Math.min(bottom - 8, Math.max(top + 8, ly)), color, 'right');
  }
  // thresholds far outside the data: a marker at the edge instead of squashing the data
  let upperSlot = 0;
  let lowerSlot = 0;
  for (const th of outView) {
    const color = th.side === 'above' ? COLORS.above : COLORS.below;
    const up = th.value > hi;
    const text = `${up ? '▲' : '▼'} ${th.trigger} ${fmtCompact(th.value)}`;
    const y = up ? top + 8 + 18 * upperSlot++ : bottom - 8 - 18 * lowerSlot++;
    drawPlate(ctx, text, right - 2, y, color, 'right');
  }
  ctx.restore();

  // hover readout
  const hv = trend.hover;
  if (hv && hv.x >= left && hv.x <= right && first < pts.length) {
    const tt = x0 + ((hv.x - left) / pw) * (x1 - x0);
    let best = null;
    for (let i = first; i < pts.length; i += 1) {
      if (pts[i][1] === null) continue;
      if (!best || Math.abs(pts[i][0] - tt) < Math.abs(best[0] - tt)) best = pts[i];
    }
    if (best) {
      const x = xOf(best[0]);
      const y = yOf(best[1]);
      ctx.strokeStyle = COLORS.axis;
      ctx.lineWidth = 1;
      ctx.beginPath();
      ctx.moveTo(Math.round(x) + 0.5, top);
      ctx.lineTo(Math.round(x) + 0.5, bottom);
      ctx.stroke();
      ctx.fillStyle = COLORS.text;
      ctx.beginPath();
      ctx.arc(x, y, 4, 0, Math.PI * 2);
      ctx.fill();
      let text = `${hhmmss(best[0])}  ${fmtValue(best[1])} ${trend.unit || ''}`;
      if (best[2] !== null && best[3] !== null && best[3] > best[2]) text += `  (${fmtValue(best[2])}–${fmtValue(best[3])})`;
      ctx.font = FONT;
      const tw = ctx.measureText(text).width + 8;
      const tx = Math.min(Math.max(left, x - tw / 2), right - tw);
      drawPlate(ctx, text, tx, top + 2, COLORS.text, 'left');
    }
  }
}

const RANGE_LABELS = { 600: '10 min', 3600: '1 h', 21600: '6 h', 86400: '24 h' };

function renderRangeStats(first) {
  let min = null;
  let max = null;
  let sum = 0;
  let n = 0;
  for (let i = first; i < trend.points.length; i += 1) {
    const p = trend.points[i];
    if (p[1] !== null) {
      sum += p[1];
      n += 1;
    }
    const lo = p[2] ?? p[1];
    const hi = p[3] ?? p[1];
    if (lo !== null && (min === null || lo < min)) min = lo;
    if (hi !== null && (max === null || hi > max)) max = hi;
  }
  setText($('#range-min'), fmtValue(min));
  setText($('#range-mean'), n ? fmtValue(sum / n) : DASH);
  setText($('#range-max'), fmtValue(max));
  const label = RANGE_LABELS[trend.range] || `${trend.range} s`;
  for (const e of document.querySelectorAll('.range-label')) setText(e, label);
}

const scheduleTrendDraw = throttledDraw(drawTrend, TREND_DRAW_MIN_MS);

function setRange(range) {
  if (![600, 3600, 21600, 86400].includes(range)) return;
  for (const b of document.querySelectorAll('[data-range]')) {
    b.setAttribute('aria-pressed', String(Number(b.dataset.range) === range));
  }
  if (trend.range === range && (trend.loaded || trend.loading)) return;
  trend.range = range;
  trimTrend(serverNow());
  scheduleTrendDraw();
  loadTrend();
}

// ------------------------------------------------------------------ spectrum

const spectrum = { data: null, error: '', stale: '', zoom: 'band', hover: null };

async function pollSpectrum() {
  const r = await api(`${API}/spectrum`);
  if (r.ok && obj(r.data)) {
    spectrum.data = r.data;
    spectrum.error = '';
    spectrum.stale = '';
    noteServerTime(r.data.timestamp);
    scheduleSpectrumDraw();
    return true;
  }
  if (r.status === 404 || r.status === 503) {
    spectrum.data = null;
    spectrum.error = r.message || (r.status === 404 ? 'No spectrum available' : 'Waiting for the first frame');
    scheduleSpectrumDraw();
    return r.status === 404 ? 5000 : 2000;
  }
  // keep showing the last spectrum, marked as not updating
  if (spectrum.data) spectrum.stale = r.message || 'Spectrum unavailable';
  else spectrum.error = r.message || 'Spectrum unavailable';
  scheduleSpectrumDraw();
  return false;
}

function spectrumSeries(d) {
  const f = arr(d.frequencies_hz);
  const a = arr(d.amplitude_db);
  const n = Math.min(f.length, a.length);
  const out = [];
  for (let i = 0; i < n; i += 1) {
    const x = num(f[i]);
    if (x !== null) out.push([x, num(a[i])]);
  }
  return out;
}

function renderSpectrumMeta(d, series) {
  const meta = $('#spectrum-meta');
  if (!meta) return;
  if (!d) {
    setText(meta, spectrum.error);
    return;
  }
  const peak = obj(d.peak);
  const parts = [];
  const pf = num(peak?.frequency_hz);
  if (peak && peak.detected && pf !== null) {
    const pdb = num(peak.amplitude_db);
    parts.push(`Peak ${pf.toFixed(1)} Hz${pdb !== null ? ` · ${pdb.toFixed(1)} dB` : ''}`);
  } else parts.push('No peak detected');
  const bin = num(d.bin_hz);
  if (bin !== null) parts.push(`bin ${bin.toFixed(2)} Hz`);
  if (d.node) parts.push(str(d.node));
  if (num(d.sequence) !== null) parts.push(`#${d.sequence}`);
  if (!series.length) parts.push('empty');
  if (spectrum.stale) parts.push(`not updating: ${spectrum.stale}`);
  setText(meta, parts.join(' · '));
  meta.classList.toggle('stale', !!spectrum.stale);
}

function fmtHz(v, step) {
  if (step >= 1000 && Math.abs(v) >= 1000) return `${(v / 1000).toFixed(decimalsFor(step / 1000))}k`;
  return v.toFixed(decimalsFor(step));
}

function drawSpectrum() {
  const canvas = $('#spectrum-canvas');
  const c = setupCanvas(canvas);
  if (!c) return;
  const { ctx, w, h } = c;
  const d = obj(spectrum.data);
  const series = d ? spectrumSeries(d) : [];
  renderSpectrumMeta(d, series);
  const area = plotArea(w, h);
  if (!area) return;
  const { left, right, top, bottom, pw, ph } = area;
  if (!d || series.length < 2) {
    drawMessage(ctx, w / 2, h / 2, spectrum.error || (d ? 'Empty spectrum' : 'Waiting for spectrum…'));
    return;
  }
  let fmin = Infinity;
  let fmax = -Infinity;
  for (const [f] of series) {
    if (f < fmin) fmin = f;
    if (f > fmax) fmax = f;
  }
  const sh = arr(d.search_hz).map(num);
  const band = sh.length >= 2 && sh[0] !== null && sh[1] !== null && sh[1] > sh[0] ? [sh[0], sh[1]] : null;
  let x0 = fmin;
  let x1 = fmax;
  if (spectrum.zoom === 'band' && band) {
    const bw = band[1] - band[0];
    x0 = Math.max(fmin, band[0] - bw * 0.5);
    x1 = Math.min(fmax, band[1] + bw * 0.5);
    if (!(x1 > x0)) {
      x0 = fmin;
      x1 = fmax;
    }
  }
  if (!(x1 > x0)) x1 = x0 + 1;
  const xOf = (f) => left + ((f - x0) / (x1 - x0)) * pw;

  let hi = -Infinity;
  let lo = Infinity;
  for (const [f, a] of series) {
    if (a === null || f < x0 || f > x1) continue;
    if (a > hi) hi = a;
    if (a < lo) lo = a;
  }
  const peak = obj(d.peak);
  const pdb = num(peak?.amplitude_db);
  if (pdb !== null && peak?.detected) hi = Math.max(hi, pdb);
  if (!(hi >= lo)) {
    drawMessage(ctx, w / 2, h / 2, 'No amplitude values in view');
    return;
  }
  lo = Math.max(lo, hi - 100); // don't let an empty bin at -300 dB flatten the plot
  const scale = niceScale(lo - 2, hi + (hi - lo) * 0.12 + 1, Math.max(3, Math.floor(ph / 45)));
  const yOf = (v) => bottom - ((Math.max(v, scale.min) - scale.min) / (scale.max - scale.min)) * ph;
  yAxis(ctx, scale, yOf, left, right, 'dB');

  // frequency axis
  ctx.strokeStyle = COLORS.axis;
  ctx.lineWidth = 1;
  ctx.beginPath();
  ctx.moveTo(left, Math.round(bottom) + 0.5);
  ctx.lineTo(right, Math.round(bottom) + 0.5);
  ctx.stroke();
  const xstep = niceStep(x1 - x0, Math.max(2, Math.floor(pw / 80)));
  const unitW = ctx.measureText('Hz').width;
  ctx.textAlign = 'center';
  ctx.textBaseline = 'top';
  for (let f = Math.ceil(x0 / xstep) * xstep; f <= x1 + 1e-9; f += xstep) {
    const x = Math.round(xOf(f)) + 0.5;
    ctx.strokeStyle = COLORS.grid;
    ctx.beginPath();
    ctx.moveTo(x, top);
    ctx.lineTo(x, bottom);
    ctx.stroke();
    const label = fmtHz(f, xstep);
    const lw = ctx.measureText(label).width;
    if (x - lw / 2 < left - 2 || x + lw / 2 > right - unitW - 6) continue;
    ctx.fillStyle = COLORS.label;
    ctx.fillText(label, x, bottom + 6);
  }
  ctx.textAlign = 'right';
  ctx.fillStyle = COLORS.label;
  ctx.fillText('Hz', right, bottom + 6);

  ctx.save();
  ctx.beginPath();
  ctx.rect(left, top - 1, pw, ph + 2);
  ctx.clip();

  // search band
  if (band) {
    const bx0 = xOf(band[0]);
    const bx1 = xOf(band[1]);
    ctx.fillStyle = COLORS.searchBand;
    ctx.fillRect(bx0, top, bx1 - bx0, ph);
    ctx.strokeStyle = COLORS.searchEdge;
    ctx.lineWidth = 1;
    ctx.setLineDash([4, 4]);
    for (const x of [bx0, bx1]) {
      ctx.beginPath();
      ctx.moveTo(Math.round(x) + 0.5, top);
      ctx.lineTo(Math.round(x) + 0.5, bottom);
      ctx.stroke();
    }
    ctx.setLineDash([]);
  }

  // the spectrum, null amplitudes are gaps
  const path = new Path2D();
  const fill = new Path2D();
  let open = false;
  let runStart = null;
  let lastX = null;
  const closeFill = () => {
    if (open && runStart !== null && lastX !== null) {
      fill.lineTo(lastX, bottom);
      fill.lineTo(runStart, bottom);
      fill.closePath();
    }
  };
  for (let i = 0; i < series.length; i += 1) {
    const [f, a] = series[i];
    const inRange = f >= x0 && f <= x1;
    const nextIn = i + 1 < series.length && series[i + 1][0] >= x0;
    const prevIn = i > 0 && series[i - 1][0] <= x1;
    if (a === null || (!inRange && !(f < x0 && nextIn) && !(f > x1 && prevIn))) {
      closeFill();
      open = false;
      continue;
    }
    const x = xOf(f);
    const y = yOf(a);
    if (open) {
      path.lineTo(x, y);
      fill.lineTo(x, y);
    } else {
      path.moveTo(x, y);
      fill.moveTo(x, bottom);
      fill.lineTo(x, y);
      runStart = x;
      open = true;
    }
    lastX = x;
  }
  closeFill();
  ctx.fillStyle = COLORS.spectrumFill;
  ctx.fill(fill);
  ctx.strokeStyle = COLORS.spectrum;
  ctx.lineWidth = 1.5;
  ctx.stroke(path);
  ctx.restore();

  if (band) {
    ctx.font = '11px system-ui, sans-serif';
    ctx.fillStyle = COLORS.searchEdge;
    ctx.textBaseline = 'bottom';
    const bx0 = xOf(band[0]);
    const bx1 = xOf(band[1]);
    const l0 = band[0].toFixed(0);
    const l1 = band[1].toFixed(0);
    if (bx1 - bx0 < ctx.measureText(`${l0} ${l1}`).width + 12) {
      // narrow band (full view): one label over the middle
      const text = `${l0}–${l1} Hz`;
      const tw = ctx.measureText(text).width;
      ctx.textAlign = 'left';
      ctx.fillText(text, Math.min(Math.max(left, (bx0 + bx1) / 2 - tw / 2), right - tw), top - 3);
    } else {
      if (bx0 >= left && bx0 <= right) {
        ctx.textAlign = 'left';
        ctx.fillText(l0, bx0 + 3, top - 3);
      }
      if (bx1 >= left && bx1 <= right) {
        ctx.textAlign = 'right';
        ctx.fillText(l1, bx1 - 3, top - 3);
      }
    }
    ctx.font = FONT;
  }

  // detected peak
  const pf = num(peak?.frequency_hz);
  if (peak && peak.detected && pf !== null && pf >= x0 && pf <= x1) {
    let py = pdb;
    if (py === null) {
      let best = null;
      for (const [f, a] of series) if (a !== null && (!best || Math.abs(f - pf) < Math.abs(best[0] - pf))) best = [f, a];
      py = best ? best[1] : null;
    }
    if (py !== null) {
      const x = xOf(pf);
      const y = yOf(py);
      ctx.fillStyle = COLORS.peak;
      ctx.strokeStyle = '#0d1117';
      ctx.lineWidth = 2;
      ctx.beginPath();
      ctx.arc(x, y, 5, 0, Math.PI * 2);
      ctx.fill();
      ctx.stroke();
      const label = `${pf.toFixed(1)} Hz`;
      const lw = ctx.measureText(label).width + 8;
      const toLeft = x + 10 + lw > right;
      drawPlate(ctx, label, toLeft ? x - 10 : x + 10, Math.max(top + 8, y - 2), COLORS.peak, toLeft ? 'right' : 'left');
    }
  }

  // hover readout
  const hv = spectrum.hover;
  if (hv && hv.x >= left && hv.x <= right) {
    const ff = x0 + ((hv.x - left) / pw) * (x1 - x0);
    let best = null;
    for (const p of series) if (p[1] !== null && (!best || Math.abs(p[0] - ff) < Math.abs(best[0] - ff))) best = p;
    if (best && best[0] >= x0 && best[0] <= x1) {
      const x = xOf(best[0]);
      ctx.strokeStyle = COLORS.axis;
      ctx.lineWidth = 1;
      ctx.beginPath();
      ctx.moveTo(Math.round(x) + 0.5, top);
      ctx.lineTo(Math.round(x) + 0.5, bottom);
      ctx.stroke();
      const text = `${best[0].toFixed(1)} Hz  ${best[1].toFixed(1)} dB`;
      const tw = ctx.measureText(text).width + 8;
      drawPlate(ctx, text, Math.min(Math.max(left, x - tw / 2), right - tw), bottom - 10, COLORS.text, 'left');
    }
  }
}

const scheduleSpectrumDraw = throttledDraw(drawSpectrum, 100);

function setSpectrumZoom(zoom) {
  if (zoom !== 'band' && zoom !== 'full') return;
  spectrum.zoom = zoom;
  for (const b of document.querySelectorAll('[data-spectrum-zoom]')) {
    b.setAttribute('aria-pressed', String(b.dataset.spectrumZoom === zoom));
  }
  scheduleSpectrumDraw();
}

// ------------------------------------------------------------------- actions

const cards = new Map(); // id -> card record

function triggerText(lt) {
  const t = obj(lt);
  if (!t) return DASH;
  let text = str(t.trigger) || '?';
  if (t.kind && t.kind !== 'trigger') text = `${str(t.kind)} ${text}`;
  const v = num(t.value);
  if (v !== null) text += ` = ${fmtValue(v)}`;
  const ts = num(t.timestamp);
  if (ts !== null) text += ` at ${hhmmss(ts)}`;
  return text;
}

function createCard(id) {
  const tpl = $('#action-card-template');
  const root = tpl.content.firstElementChild.cloneNode(true);
  root.dataset.actionId = id;
  const q = (s) => root.querySelector(s);
  const card = {
    id,
    root,
    summary: null,
    name: q('.action-name'),
    type: q('.action-type'),
    state: q('.action-state'),
    chips: q('.action-chips'),
    lastTrigger: q('.action-last-trigger'),
    successes: q('.action-successes'),
    failures: q('.action-failures'),
    p95: q('.action-p95'),
    outputs: q('.action-outputs'),
    script: q('.action-script'),
    error: q('.action-error'),
    buttons: q('.action-buttons'),
    ack: q('.btn-ack'),
    toggle: q('.btn-toggle'),
    reload: q('.btn-reload'),
    history: q('.action-history'),
    historyList: q('.history-list'),
    histInFlight: false,
    histAgain: false,
  };
  card.reload.remove(); // only python actions get it (added in updateCard)
  setText(card.name, id);
  for (const b of [card.ack, card.toggle, card.reload]) markWrite(b);
  card.ack.addEventListener('click', safe(() => acknowledge(card)));
  card.toggle.addEventListener('click', safe(() => toggleEnabled(card)));
  card.reload.addEventListener('click', safe(() => reloadScript(card)));
  card.history.addEventListener('toggle', safe(() => {
    if (card.history.open) loadHistory(card);
  }));
  cards.set(id, card);
  return card;
}

function updateCard(card, a) {
  card.summary = a;
  const state = str(a.state) || 'idle';
  const root = card.root;
  if (root.dataset.state !== state) root.dataset.state = state;
  const type = str(a.type);
  if (root.dataset.type !== type) root.dataset.type = type;
  setText(card.type, type.replace(/_action$/, '') || DASH);
  setText(card.state, state);
  if (card.state.dataset.state !== state) card.state.dataset.state = state;

  const active = arr(a.active_triggers).map(str);
  const acked = new Set(arr(a.acknowledged_triggers).map(str));
  const chipKey = JSON.stringify([active, [...acked]]);
  if (card.chips.dataset.key !== chipKey) {
    card.chips.dataset.key = chipKey;
    const chips = active.map((t) => el('span', `chip ${acked.has(t) ? 'acknowledged' : 'active'}`, acked.has(t) ? `${t} ✓` : t));
    for (const t of acked) if (!active.includes(t)) chips.push(el('span', 'chip acknowledged', `${t} ✓`));
    card.chips.replaceChildren(...chips);
  }

  setText(card.lastTrigger, triggerText(a.last_trigger));
  const counters = obj(a.counters) || {};
  setText(card.successes, fmtInt(counters.successes));
  const failures = num(counters.failures);
  setText(card.failures, fmtInt(failures));
  card.failures.classList.toggle('bad', !!failures);
  setText(card.p95, fmtFixed(obj(a.latency_ms)?.p95, 1));

  const outs = obj(a.outputs);
  setText(card.outputs, outs ? Object.entries(outs).map(([k, v]) => `${k}: ${str(v)}`).join(' · ') : '');
  const sc = obj(a.script);
  if (sc) {
    const bits = [str(sc.class_name) || basename(sc.path) || 'script', `worker ${str(sc.worker_state) || '?'}`];
    const reloads = num(sc.reloads);
    const rfail = num(sc.reload_failures);
    const restarts = num(sc.restarts);
    if (reloads) bits.push(`${reloads} reload${reloads === 1 ? '' : 's'}`);
    if (rfail) bits.push(`${rfail} failed reload${rfail === 1 ? '' : 's'}`);
    if (restarts) bits.push(`${restarts} restart${restarts === 1 ? '' : 's'}`);
    setText(card.script, bits.join(' · '));
    setAttr(card.script, 'title', str(sc.path));
  } else setText(card.script, '');
  setText(card.error, formatError(a.last_error));

  const needsAck = active.some((t) => !acked.has(t));
  card.ack.classList.toggle('is-needed', needsAck);
  const enabled = a.enabled !== false;
  setText(card.toggle, enabled ? 'Disable' : 'Enable');
  card.toggle.dataset.enabled = String(enabled);

  const isPython = type === 'python_action';
  if (isPython && !card.reload.isConnected) card.buttons.append(card.reload);
  if (!isPython && card.reload.isConnected) card.reload.remove();
}

function renderActions(list) {
  const container = $('#actions');
  if (!container) return;
  const actions = arr(list).map(obj).filter((a) => a && str(a.id));
  const seen = new Set();
  let prev = null;
  for (const a of actions) {
    const id = str(a.id);
    if (seen.has(id)) continue;
    seen.add(id);
    const card = cards.get(id) || createCard(id);
    safe(updateCard)(card, a);
    const want = prev ? prev.nextElementSibling : container.firstElementChild;
    if (card.root !== want) container.insertBefore(card.root, want);
    prev = card.root;
  }
  for (const [id, card] of cards) {
    if (!seen.has(id)) {
      card.root.remove();
      cards.delete(id);
    }
  }
  const activeCount = actions.filter((a) => a.state === 'active').length;
  setText($('#actions-count'), `${actions.length} configured${activeCount ? ` · ${activeCount} active` : ''}`);
}

function summarizeData(data) {
  const d = obj(data);
  if (!d) return '';
  const parts = [];
  const used = new Set();
  const take = (key, fmt = str) => {
    if (d[key] === undefined || d[key] === null || d[key] === '') return;
    used.add(key);
    parts.push(fmt(d[key], key));
  };
  take('trigger');
  take('value', (v) => (num(v) !== null ? `value ${fmtValue(v)}` : `value ${str(v)}`));
  take('node_id', (v) => `node ${str(v)}`);
  take('ok', (v) => (v ? 'ok' : 'not ok'));
  take('success', (v) => (v ? 'success' : 'failed'));
  take('acknowledged', (v) => (Array.isArray(v) ? `acknowledged ${v.map(str).join(', ')}` : `acknowledged ${str(v)}`));
  take('latency_ms', (v) => (num(v) !== null ? `${num(v).toFixed(1)} ms` : ''));
  take('error', (v) => (obj(v) ? formatError(v) : str(v)));
  take('message');
  take('seconds', (v) => `${str(v)} s`);
  take('state', (v) => `state ${str(v)}`);
  for (const [k, v] of Object.entries(d)) {
    if (used.has(k) || parts.length >= 6) continue;
    if (typeof v === 'string' || typeof v === 'number' || typeof v === 'boolean') parts.push(`${k} ${str(v)}`);
  }
  const text = parts.filter(Boolean).join(' · ');
  return text.length > 200 ? `${text.slice(0, 199)}…` : text;
}

async function loadHistory(card) {
  if (card.histInFlight) {
    card.histAgain = true;
    return;
  }
  card.histInFlight = true;
  try {
    const r = await api(`${API}/actions/${enc(card.id)}/history?limit=50`);
    const list = card.historyList;
    if (!r.ok) {
      list.replaceChildren(el('li', 'muted', r.message || 'History unavailable'));
      return;
    }
    const entries = arr(obj(r.data)?.entries).map(obj).filter((e) => e && e.kind !== 'update');
    const recent = entries.slice(-8).reverse();
    if (!recent.length) {
      list.replaceChildren(el('li', 'muted', 'No events yet.'));
      return;
    }
    list.replaceChildren(
      ...recent.map((e) => {
        const li = el('li');
        li.append(el('time', '', hhmmss(e.timestamp)));
        li.append(el('strong', '', str(e.kind)));
        const s = summarizeData(e.data);
        if (s) li.append(el('span', 'muted', s));
        return li;
      }),
    );
  } finally {
    card.histInFlight = false;
    if (card.histAgain) {
      card.histAgain = false;
      if (card.history.open) loadHistory(card);
    }
  }
}

// -------------------------------------------------------------------- writes

/** Why write buttons cannot be used now ('' when they can). */
function writeBlockedReason() {
  if (app.writesEnabled === false) return 'Controls are disabled on this appliance: no web.token is configured';
  if (!getToken()) return 'Enter the API token (top right) to use the controls';
  return '';
}

/** Every write button (data-write) disabled, with the reason as its tooltip, until a token is entered. */
function applyWriteAccess(only) {
  const reason = writeBlockedReason();
  const buttons = only ? [only] : document.querySelectorAll('[data-write]');
  for (const b of buttons) {
    if (b.dataset.busy === 'true') continue;
    b.disabled = !!reason;
    if (reason) b.title = reason;
    else b.removeAttribute('title');
  }
  document.body.dataset.writes = reason ? 'locked' : 'open';
}

function markWrite(button) {
  button.dataset.write = '';
  applyWriteAccess(button);
  return button;
}

async function post(path, body, button) {
  if (button) {
    button.disabled = true;
    button.dataset.busy = 'true';
  }
  try {
    const r = await api(path, { method: 'POST', body: body ?? {}, auth: true });
    if (!r.ok) {
      toast(r.message, 'error');
      if ((r.status === 401 || r.status === 403) && !getToken()) $('#token-input')?.focus();
      return null;
    }
    return obj(r.data) || {};
  } finally {
    if (button) {
      delete button.dataset.busy;
      applyWriteAccess(button);
    }
  }
}

async function acknowledgeAll(button) {
  const data = await post(`${API}/alarms/acknowledge`, {}, button);
  if (!data) return;
  const done = obj(data.acknowledged) || {};
  const names = Object.entries(done).map(([id, triggers]) => `${id}: ${arr(triggers).map(str).join(', ')}`);
  toast(`Acknowledged ${names.join('; ')}`, 'ok');
  afterWrite();
}

function afterWrite() {
  if (!app.streamUp) pollers.actions.kick(300);
}

async function acknowledge(card) {
  const data = await post(`${API}/actions/${enc(card.id)}/acknowledge`, {}, card.ack);
  if (!data) return;
  if (obj(data.action)) updateCard(card, data.action);
  const names = arr(data.acknowledged).map(str);
  toast(names.length ? `Acknowledged ${names.join(', ')}` : `Acknowledged ${card.id}`, 'ok');
  afterWrite();
}

async function toggleEnabled(card) {
  const enabled = card.summary ? card.summary.enabled !== false : true;
  if (enabled && !window.confirm(`Disable action “${card.id}”? It will not react to triggers until enabled again.`)) return;
  const data = await post(`${API}/actions/${enc(card.id)}/${enabled ? 'disable' : 'enable'}`, {}, card.toggle);
  if (!data) return;
  const summary = obj(data.action) || (data.id ? data : null);
  if (summary) updateCard(card, summary);
  toast(`${card.id} ${enabled ? 'disabled' : 'enabled'}`, 'ok');
  afterWrite();
}

async function reloadScript(card) {
  const data = await post(`${API}/actions/${enc(card.id)}/reload`, {}, card.reload);
  if (!data) return;
  if (obj(data.action)) updateCard(card, data.action);
  toast(`${card.id}: script reloaded`, 'ok');
  afterWrite();
}

async function pulseRelay(name, button) {
  if (!window.confirm(`Pulse relay “${name}” for 1 s?`)) return;
  const data = await post(`${API}/relays/${enc(name)}/pulse`, { seconds: 1.0 }, button);
  if (!data) return;
  const secs = num(data.seconds) ?? 1;
  toast(`Relay ${str(data.relay) || name} pulsed for ${secs} s`, 'ok');
  if (!app.streamUp) pollers.outputs.kick(300);
}

// ------------------------------------------------------------------- outputs

const outputEls = new Map(); // name -> {root, ...}

function createOutput(name) {
  const root = el('li', 'output');
  root.dataset.output = name;
  const lamp = el('span', 'output-lamp');
  lamp.setAttribute('aria-hidden', 'true');
  const body = el('div', 'output-body');
  const title = el('span', 'output-name', name);
  const info = el('span', 'output-info');
  body.append(title, info);
  const state = el('span', 'output-state');
  root.append(lamp, body, state);
  const rec = { root, info, state, pulse: null, kind: null };
  outputEls.set(name, rec);
  return rec;
}

function renderOutputs(resp) {
  const o = obj(resp);
  const list = $('#outputs');
  if (!o || !list) return;
  const backend = o.backend === null || o.backend === undefined ? 'unknown backend' : str(o.backend);
  setText($('#outputs-backend'), `${backend}${o.simulated ? ' · simulated' : ''}`);
  const seen = new Set();
  let prev = null;
  const outputs = arr(o.outputs).map(obj).filter((x) => x && str(x.name));
  for (const out of outputs) {
    const name = str(out.name);
    if (seen.has(name)) continue;
    seen.add(name);
    const rec = outputEls.get(name) || createOutput(name);
    const on = out.on === true;
    if (rec.root.dataset.on !== String(on)) rec.root.dataset.on = String(on);
    const kind = str(out.kind);
    if (rec.root.dataset.kind !== kind) rec.root.dataset.kind = kind;
    const pin = num(out.pin);
    setText(rec.info, `${kind || 'output'}${pin !== null ? ` · GPIO ${pin}` : ''}`);
    setText(rec.state, str(out.state) || (on ? 'on' : 'off'));
    if (kind === 'relay' && !rec.pulse) {
      rec.pulse = el('button', 'btn btn-pulse', 'Pulse 1 s');
      rec.pulse.type = 'button';
      markWrite(rec.pulse);
      rec.pulse.addEventListener('click', safe(() => pulseRelay(name, rec.pulse)));
      rec.root.append(rec.pulse);
    } else if (kind !== 'relay' && rec.pulse) {
      rec.pulse.remove();
      rec.pulse = null;
    }
    const want = prev ? prev.nextElementSibling : list.firstElementChild;
    if (rec.root !== want) list.insertBefore(rec.root, want);
    prev = rec.root;
  }
  for (const [name, rec] of outputEls) {
    if (!seen.has(name)) {
      rec.root.remove();
      outputEls.delete(name);
    }
  }
}

// -------------------------------------------------------------------- events

const seenEvents = new Set();

function addEvent(ev) {
  const e = obj(ev);
  if (!e) return;
  const key = `${str(e.id)}|${str(e.seq)}|${str(e.timestamp)}|${str(e.kind)}`;
  if (seenEvents.has(key)) return;
  seenEvents.add(key);
  if (seenEvents.size > 500) seenEvents.delete(seenEvents.values().next().value);
  const list = $('#events');
  if (!list) return;
  const li = el('li');
  li.dataset.kind = str(e.kind);
  const t = el('time', '', hhmmss(e.timestamp));
  if (e.time) t.dateTime = str(e.time);
  li.append(t);
  li.append(el('span', 'ev-id', str(e.id)));
  const kind = el('span', 'ev-kind', str(e.kind) || '?');
  kind.dataset.kind = str(e.kind);
  li.append(kind);
  const s = summarizeData(e.data);
  if (s) li.append(el('span', 'ev-data', s));
  list.prepend(li);
  while (list.children.length > MAX_EVENTS) list.lastElementChild.remove();
  const card = cards.get(str(e.id));
  if (card && card.history.open) loadHistory(card);
}

/** The newest events kept by the appliance (across restarts), before the stream's new ones. */
async function loadEvents() {
  const r = await api(`${API}/events?limit=${MAX_EVENTS}`);
  if (!r.ok || !obj(r.data)) return;
  for (const e of arr(r.data.events)) addEvent(e); // oldest first: each goes on top
}

// -------------------------------------------------------------------- stream

const stream = { es: null, everOpened: false, lastEvent: 0, retryTimer: null, retryDelay: 1000 };

function setConnected(up) {
  const badge = $('#connection');
  if (badge) {
    badge.dataset.connected = String(up);
    setText(badge, up ? 'Live' : 'Disconnected');
  }
  if (app.streamUp === up) return;
  app.streamUp = up;
  if (!up) {
    // poll the essentials until the stream is back
    for (const name of ['status', 'actions', 'outputs', 'results']) pollers[name].kick(1500);
  }
}

function parseData(ev) {
  stream.lastEvent = Date.now();
  try {
    return JSON.parse(ev.data);
  } catch {
    return null;
  }
}

function openStream() {
  clearTimeout(stream.retryTimer);
  stream.retryTimer = null;
  if (stream.es) stream.es.close();
  let es;
  try {
    es = new EventSource(`${API}/stream`);
  } catch (err) {
    console.warn('pafw dashboard: EventSource', err);
    scheduleStreamRetry();
    return;
  }
  stream.es = es;
  stream.lastEvent = Date.now();
  es.onopen = safe(() => {
    if (stream.es !== es) return;
    stream.lastEvent = Date.now();
    stream.retryDelay = 1000;
    const reconnect = stream.everOpened;
    stream.everOpened = true;
    setConnected(true);
    if (reconnect || (!trend.loaded && !trend.loading)) loadTrend();
    if (reconnect) {
      pollers.spectrum.failures = 0;
      pollers.spectrum.kick(0);
    }
  });
  es.onerror = safe(() => {
    if (stream.es !== es) return;
    setConnected(false);
    // CONNECTING: the browser retries by itself; CLOSED (e.g. HTTP error): we retry
    if (es.readyState === EventSource.CLOSED) {
      es.close();
      stream.es = null;
      scheduleStreamRetry();
    }
  });
  es.onmessage = () => {
    stream.lastEvent = Date.now();
  };
  es.addEventListener('results', safe((ev) => handleResults(parseData(ev))));
  es.addEventListener('status', safe((ev) => {
    const s = parseData(ev);
    if (stream.es === es && es.readyState === EventSource.OPEN) setConnected(true);
    handleStatus(s);
  }));
  es.addEventListener('action', safe((ev) => addEvent(parseData(ev))));
}

function scheduleStreamRetry() {
  clearTimeout(stream.retryTimer);
  const delay = stream.retryDelay;
  stream.retryDelay = Math.min(stream.retryDelay * 2, 30000);
  stream.retryTimer = setTimeout(safe(openStream), delay);
}

function checkStream() {
  // a half-open connection (appliance rebooted under us) sends nothing: start over
  if (stream.es && app.streamUp && Date.now() - stream.lastEvent > STREAM_SILENCE_MS) {
    console.warn('pafw dashboard: stream silent, reconnecting');
    stream.es.close();
    stream.es = null;
    setConnected(false);
    scheduleStreamRetry();
  }
}

// ------------------------------------------------------------------- pollers

const whenDown = () => !app.streamUp;

/** A poller that, while the stream is down, fetches `API/<name>` and hands it to `render`. */
function fallbackPoller(name, render) {
  return new Poller({
    name,
    interval: FALLBACK_POLL_MS,
    when: whenDown,
    run: async () => {
      const r = await api(`${API}/${name}`);
      if (r.ok && obj(r.data)) render(r.data);
      return r.ok;
    },
  });
}

const pollers = {
  status: new Poller({
    name: 'status',
    interval: FALLBACK_POLL_MS,
    when: whenDown,
    run: async () => {
      const r = await api(`${API}/status`);
      if (r.ok && obj(r.data)) {
        handleStatus(r.data);
        return true;
      }
      setHealthState('stale'); // no fresh word from the appliance
      return false;
    },
  }),
  actions: fallbackPoller('actions', (d) => renderActions(d.actions)),
  outputs: fallbackPoller('outputs', renderOutputs),
  results: fallbackPoller('results', handleResults),
  spectrum: new Poller({ name: 'spectrum', interval: SPECTRUM_POLL_MS, run: pollSpectrum }),
  graph: new Poller({
    name: 'graph',
    interval: 10000,
    when: () => !!$('#graph-timing')?.open,
    run: async () => {
      const r = await api(`${API}/graph`);
      if (r.ok && obj(r.data)) renderGraph(r.data);
      else setText($('#graph-meta'), r.message);
      return r.ok;
    },
  }),
};

function renderGraph(g) {
  const body = $('#graph-nodes');
  if (!body) return;
  const rows = arr(g.nodes).map(obj).filter(Boolean).map((n) => {
    const tr = el('tr');
    const timing = obj(n.timing);
    tr.append(el('td', '', str(n.id)), el('td', '', str(n.type)));
    tr.append(el('td', 'num', fmtFixed(timing?.p50_us, 0)), el('td', 'num', fmtFixed(timing?.p99_us, 0)));
    return tr;
  });
  body.replaceChildren(...rows);
  const budget = num(g.frame_budget_us);
  const frames = num(g.frames);
  const fused = arr(g.fused).map(str).filter(Boolean);
  const bits = [];
  if (budget !== null) bits.push(`frame budget ${(budget / 1000).toFixed(1)} ms`);
  if (frames !== null) bits.push(`${frames} frames`);
  if (fused.length) bits.push(`fused: ${fused.join(', ')}`);
  setText($('#graph-meta'), bits.join(' · '));
}

// ---------------------------------------------------------------------- init

function initToken() {
  const form = $('#token-form');
  const input = $('#token-input');
  const state = $('#token-state');
  const show = () => setText(state, getToken() ? 'token set' : 'no token');
  if (input) input.value = getToken();
  show();
  const save = safe(() => {
    const value = str(input?.value).trim();
    if (!setToken(value)) {
      toast('Could not store the token (storage blocked)', 'error');
      return;
    }
    show();
    applyWriteAccess();
    toast(value ? 'Token saved' : 'Token cleared', 'ok');
  });
  form?.addEventListener('submit', (ev) => {
    ev.preventDefault();
    save();
  });
}

function init() {
  initToken();
  setHealthState('stale');
  setConnected(false);

  for (const b of document.querySelectorAll('[data-range]')) {
    b.addEventListener('click', safe(() => setRange(Number(b.dataset.range))));
  }
  {
    const ackAll = $('#btn-ack-all');
    if (ackAll) markWrite(ackAll);
    ackAll?.addEventListener('click', safe(() => acknowledgeAll(ackAll)));
  }
  for (const b of document.querySelectorAll('[data-spectrum-zoom]')) {
    b.addEventListener('click', safe(() => setSpectrumZoom(b.dataset.spectrumZoom)));
  }
  $('#graph-timing')?.addEventListener('toggle', safe(() => pollers.graph.kick(0)));

  attachHover($('#trend-canvas'), trend, scheduleTrendDraw);
  attachHover($('#spectrum-canvas'), spectrum, scheduleSpectrumDraw);

  const redrawAll = () => {
    scheduleTrendDraw();
    scheduleSpectrumDraw();
  };
  if ('ResizeObserver' in window) {
    const ro = new ResizeObserver(redrawAll);
    for (const c of document.querySelectorAll('.chart')) ro.observe(c);
  }
  window.addEventListener('resize', redrawAll);

  document.addEventListener('visibilitychange', safe(() => {
    if (isVisible()) {
      for (const p of Object.values(pollers)) p.kick(0);
      redrawAll();
      renderAge();
    } else {
      for (const p of Object.values(pollers)) p.stop();
    }
  }));

  // once a second: age text, sliding time axis, stream watchdog
  setInterval(safe(() => {
    checkStream();
    if (!isVisible()) return;
    renderAge();
    renderCycle();
    scheduleTrendDraw();
  }), 1000);

  loadTrend();
  loadEvents();
  openStream();
  pollers.spectrum.kick(0);
  // first paint without waiting for the stream's first status event
  pollers.status.kick(0);
  pollers.actions.kick(0);
  pollers.outputs.kick(0);
  pollers.results.kick(0);
  redrawAll();
}

if (document.readyState === 'loading') document.addEventListener('DOMContentLoaded', safe(init));
else safe(init)();

// ------------------------------------------------- detection limit (Allan-Werle)
// The Allan-Werle deviation of the live concentration (GET /api/v1/allan: the one-second
// trend), drawn log-log in SVG with the white-noise line and the optimum averaging time.

const ALLAN_POLL_MS = 30000;
const SVG_NS = 'http://www.w3.org/2000/svg';
const ALLAN_BOX = { w: 600, h: 250, left: 58, right: 26, top: 12, bottom: 34 };
const allan = { span: 3600, data: null, error: '' };

function svgEl(tag, attrs, text) {
  const e = document.createElementNS(SVG_NS, tag);
  for (const [k, v] of Object.entries(attrs)) e.setAttribute(k, String(v));
  if (text !== undefined) e.textContent = text;
  return e;
}

function fmtSig(x) {
  if (x === null) return DASH;
  const a = Math.abs(x);
  if (a !== 0 && (a < 0.01 || a >= 1e5)) return x.toExponential(2);
  return String(Number(x.toPrecision(3)));
}

function allanPoints(d) {
  const taus = arr(d.tau_s).map(num);
  const sigmas = arr(d.sigma).map(num);
  const white = arr(d.white_sigma).map(num);
  const out = [];
  for (let i = 0; i < taus.length; i++) {
    if (taus[i] > 0 && sigmas[i] > 0) out.push({ tau: taus[i], sigma: sigmas[i], white: white[i] });
  }
  return out;
}

function drawAllan() {
  const svg = $('#allan-svg');
  if (!svg) return;
  const { w, h, left, right, top, bottom } = ALLAN_BOX;
  const d = obj(allan.data);
  const pts = d ? allanPoints(d) : [];
  const nodes = [];
  if (pts.length < 2) {
    const waiting = d ? `Collecting the trend: ${fmtInt(num(d.values))} of ${fmtInt(num(d.min_values))} s`
      : 'Waiting for the trend…';
    nodes.push(svgEl('text', { x: w / 2, y: h / 2, 'text-anchor': 'middle', class: 'allan-message' },
      allan.error || waiting));
    svg.replaceChildren(...nodes);
    return;
  }
  const lg = Math.log10;
  const values = pts.flatMap((p) => (p.white > 0 ? [p.sigma, p.white] : [p.sigma]));
  const x0 = Math.floor(lg(pts[0].tau));
  const x1 = Math.max(x0 + 1, Math.ceil(lg(pts[pts.length - 1].tau)));
  const y0 = Math.floor(lg(Math.min(...values)));
  const y1 = Math.max(y0 + 1, Math.ceil(lg(Math.max(...values))));
  const xOf = (t) => left + ((lg(t) - x0) / (x1 - x0)) * (w - left - right);
  const yOf = (s) => h - bottom - ((lg(s) - y0) / (y1 - y0)) * (h - top - bottom);
  for (let e = x0; e <= x1; e++) {
    const x = xOf(10 ** e);
    nodes.push(svgEl('line', { x1: x, x2: x, y1: top, y2: h - bottom, class: 'allan-grid' }));
    nodes.push(svgEl('text', { x, y: h - bottom + 16, 'text-anchor': 'middle', class: 'allan-label' },
      fmtSig(10 ** e)));
  }
  for (let e = y0; e <= y1; e++) {
    const y = yOf(10 ** e);
    nodes.push(svgEl('line', { x1: left, x2: w - right, y1: y, y2: y, class: 'allan-grid' }));
    nodes.push(svgEl('text', { x: left - 6, y: y + 4, 'text-anchor': 'end', class: 'allan-label' },
      fmtSig(10 ** e)));
  }
  nodes.push(svgEl('rect', { x: left, y: top, width: w - left - right, height: h - top - bottom,
    class: 'allan-axis' }));
  nodes.push(svgEl('text', { x: w - right, y: h - 4, 'text-anchor': 'end', class: 'allan-label' },
    'averaging time τ (s)'));
  nodes.push(svgEl('text', { x: left + 4, y: top + 12, class: 'allan-label' }, `σ (${str(d.unit) || 'ppm'})`));
  const path = (key) => pts.filter((p) => p[key] > 0)
    .map((p, i) => `${i ? 'L' : 'M'}${xOf(p.tau).toFixed(1)},${yOf(p[key]).toFixed(1)}`).join('');
  nodes.push(svgEl('path', { d: path('white'), class: 'allan-white' }));
  nodes.push(svgEl('path', { d: path('sigma'), class: 'allan-curve', 'data-points': pts.length }));
  const tOpt = num(d.optimum_tau_s);
  const sOpt = num(d.sigma_optimum);
  if (tOpt !== null && sOpt !== null && sOpt > 0) {
    nodes.push(svgEl('circle', { cx: xOf(tOpt), cy: yOf(sOpt), r: 4.5, class: 'allan-opt' }));
  }
  svg.replaceChildren(...nodes);
}

function renderAllanMeta() {
  const meta = $('#allan-meta');
  if (!meta) return;
  const d = obj(allan.data);
  if (!d) {
    setText(meta, allan.error);
    return;
  }
  const unit = str(d.unit) || 'ppm';
  const parts = [`LOD (3σ) at 1 s: ${fmtSig(num(d.lod_1s))} ${unit}`,
    `optimum τ ${fmtSig(num(d.optimum_tau_s))} s: LOD ${fmtSig(num(d.lod_optimum))} ${unit}`,
    `${fmtDuration(num(d.span_s))} of ${str(d.node)}`];
  if (allan.error) parts.push(`not updating: ${allan.error}`);
  setText(meta, parts.join(' · '));
  meta.classList.toggle('stale', !!allan.error);
}

async function pollAllan() {
  const r = await api(`${API}/allan?seconds=${allan.span}`);
  if (r.ok && obj(r.data)) {
    allan.data = r.data;
    allan.error = '';
  } else if (r.status === 503 || r.status === 404) {
    allan.data = null;
    allan.error = r.message || 'No concentration trend yet';
  } else {
    allan.error = r.message || 'Allan deviation unavailable';
  }
  renderAllanMeta();
  drawAllan();
  return r.ok || r.status === 503 || r.status === 404;
}

const allanPoller = new Poller({ name: 'allan', interval: ALLAN_POLL_MS, run: pollAllan });

function setAllanSpan(span) {
  if (!Number.isFinite(span) || span <= 0) return;
  allan.span = span;
  for (const b of document.querySelectorAll('[data-allan-span]')) {
    b.setAttribute('aria-pressed', String(Number(b.dataset.allanSpan) === span));
  }
  allanPoller.kick(0);
}

function initAllan() {
  if (!$('#allan-svg')) return;
  for (const b of document.querySelectorAll('[data-allan-span]')) {
    b.addEventListener('click', safe(() => setAllanSpan(Number(b.dataset.allanSpan))));
  }
  document.addEventListener('visibilitychange', safe(() => {
    if (isVisible()) allanPoller.kick(0);
    else allanPoller.stop();
  }));
  drawAllan();
  allanPoller.kick(0);
}

if (document.readyState === 'loading') document.addEventListener('DOMContentLoaded', safe(initAllan));
else safe(initAllan)();
