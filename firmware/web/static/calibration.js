// The dashboard's calibration panel: status and due date, the guided procedure (points
// measured until stable, fit, store) and the records (activate, roll back), all through
// /api/v1/calibration. Writes use the token the page stores (see app.js).
const API = '/api/v1/calibration';
const TOKEN_KEY = 'pafw.token';

const $ = (sel) => document.querySelector(sel);
const setText = (node, text) => { if (node) node.textContent = text; };
const fmt = (v, digits = 4) => (typeof v === 'number' && Number.isFinite(v) ? Number(v.toPrecision(digits)).toString() : '—');

function token() {
  try {
    return localStorage.getItem(TOKEN_KEY) || '';
  } catch {
    return '';
  }
}

async function call(path, method = 'GET', body) {
  const headers = { Accept: 'application/json' };
  const init = { method, headers, cache: 'no-store', credentials: 'same-origin' };
  if (method !== 'GET') {
    headers['Content-Type'] = 'application/json';
    init.body = JSON.stringify(body ?? {});
    if (token()) headers.Authorization = `Bearer ${token()}`;
  }
  let resp;
  try {
    resp = await fetch(path, init);
  } catch {
    return { ok: false, status: 0, data: null, message: 'Appliance not reachable' };
  }
  let data = null;
  try {
    data = await resp.json();
  } catch {
    data = null;
  }
  const message = resp.ok ? '' : (data && data.error && data.error.message) || `HTTP ${resp.status}`;
  return { ok: resp.ok, status: resp.status, data, message };
}

function say(text, kind) {
  const toast = $('#toast');
  if (!toast) return;
  toast.textContent = text;
  toast.dataset.kind = kind;
  clearTimeout(say.timer);
  say.timer = setTimeout(() => {
    toast.textContent = '';
    delete toast.dataset.kind;
  }, kind === 'error' ? 8000 : 4000);
}

async function write(path, body) {
  const r = await call(path, 'POST', body);
  if (!r.ok) say(r.message, 'error');
  refresh();
  return r.ok ? r.data : null;
}

function renderStatus(s) {
  const due = s.due || {};
  const pill = $('#cal-due');
  setText(pill, due.state === 'not_scheduled' ? 'no due date' : `calibration ${due.state}${due.due_at ? ` (${due.due_at.slice(0, 10)})` : ''}`);
  if (pill) pill.dataset.state = { ok: 'ok', due: 'acknowledged', overdue: 'alarm' }[due.state] || 'idle';
  const coefficients = (s.coefficients || []).map((c) => fmt(c, 6)).join(', ');
  setText($('#cal-active'), s.active_record
    ? `record ${s.active_record.id} by ${s.active_record.operator} [${coefficients}]`
    : `YAML coefficients [${coefficients}]`);
  setText($('#cal-problem'), s.problem || '');
  renderSession(s.session);
}

function renderSession(session) {
  const box = $('#cal-session');
  if (box) box.hidden = !session;
  $('#cal-start').hidden = Boolean(session);
  if (!session) {
    setText($('#cal-fit'), '');
    return;
  }
  setText($('#cal-session-title'), `${session.mode === 'zero_check' ? 'Zero check' : 'Calibration'} by ${session.operator}:`);
  const current = session.current;
  let progress = '';
  if (current && session.measuring) {
    const w = current.window || {};
    progress = `measuring ${current.concentration_ppm} ppm, ${Math.round(current.elapsed_s)} s, ${w.samples || 0} samples, RSD ${fmt(w.amplitude_rsd_percent, 3)} % — ${current.waiting_for || ''}`;
  } else if (current && current.state === 'failed') {
    progress = current.error || 'point refused';
  }
  setText($('#cal-progress'), progress);
  const rows = $('#cal-points');
  rows.replaceChildren(...session.points.map((p) => {
    const tr = document.createElement('tr');
    const r = p.readings || {};
    for (const [text, num] of [[p.concentration_ppm, true], [p.cylinder || '—', false], [fmt(r.amplitude, 6), true], [fmt(r.amplitude_rsd_percent, 3), true], [fmt(r.temperature_c, 4), true]]) {
      const td = document.createElement('td');
      td.textContent = String(text);
      if (num) td.className = 'num';
      tr.append(td);
    }
    return tr;
  }));
  $('#cal-measure').disabled = session.measuring;
  $('#cal-fit-btn').hidden = session.mode === 'zero_check';
  setText($('#cal-commit'), session.mode === 'zero_check' ? 'Record offset' : 'Store & activate');
}

function renderRecords(listing) {
  const rows = $('#cal-records');
  rows.replaceChildren(...(listing.records || []).slice().reverse().map((r) => {
    const tr = document.createElement('tr');
    tr.dataset.recordId = r.id;
    const cells = [`${r.active ? '● ' : ''}${r.id}`, r.operator, String(r.degree), `${r.concentration_range[0]}–${r.concentration_range[1]}`];
    for (const text of cells) {
      const td = document.createElement('td');
      td.textContent = text;
      tr.append(td);
    }
    const td = document.createElement('td');
    if (!r.active && r.applicable) {
      const b = document.createElement('button');
      b.type = 'button';
      b.className = 'btn cal-activate';
      b.textContent = 'Activate';
      b.addEventListener('click', () => write(`${API}/records/${encodeURIComponent(r.id)}/activate`, { operator: $('#cal-operator').value }));
      td.append(b);
    } else if (!r.applicable) {
      td.textContent = 'other signal chain';
      td.className = 'muted small';
    }
    tr.append(td);
    return tr;
  }));
}

let timer = null;
async function refresh() {
  clearTimeout(timer);
  const r = await call(API);
  if (r.status === 404) {
    $('#calibration').hidden = true;
    return;
  }
  let next = 5000;
  if (r.ok) {
    renderStatus(r.data);
    if (r.data.session && r.data.session.measuring) next = 1000;
    const records = await call(`${API}/records`);
    if (records.ok) renderRecords(records.data);
  }
  timer = setTimeout(refresh, document.hidden ? 30000 : next);
}

function init() {
  if (!$('#calibration')) return;
  const begin = (mode) => write(`${API}/session`, { mode, operator: $('#cal-operator').value || null });
  $('#cal-start').addEventListener('submit', (ev) => {
    ev.preventDefault();
    begin('calibration');
  });
  $('#cal-zero').addEventListener('click', () => begin('zero_check'));
  $('#cal-point').addEventListener('submit', (ev) => {
    ev.preventDefault();
    const ppm = Number($('#cal-ppm').value);
    if ($('#cal-ppm').value.trim() === '' || !Number.isFinite(ppm)) {
      say('Enter the cylinder concentration in ppm (0 for zero gas)', 'error');
      return;
    }
    write(`${API}/session/points`, { concentration_ppm: ppm, cylinder: $('#cal-cylinder').value || null });
  });
  $('#cal-fit-btn').addEventListener('click', async () => {
    const r = await call(`${API}/session/fit`, 'POST', {});
    if (!r.ok) {
      setText($('#cal-fit'), `Refused: ${r.message}`);
      return;
    }
    const f = r.data;
    const unc = f.uncertainties || [];
    const lines = [`degree ${f.degree}, R² ${fmt(f.r_squared, 6)}`,
      ...f.coefficients.map((c, i) => `c${i} = ${fmt(c, 6)}${unc[i] !== undefined ? ` ± ${fmt(unc[i], 3)}` : ''}`),
      `residuals (ppm): ${f.residuals_ppm.map((x) => fmt(x, 3)).join(', ')}`];
    setText($('#cal-fit'), lines.join('\n'));
  });
  $('#cal-commit').addEventListener('click', async () => {
    const data = await write(`${API}/session/commit`, {});
    if (data && data.record) say(`Calibration ${data.record.id} stored and active`, 'ok');
    if (data && data.zero_check) say(`Zero offset ${fmt(data.zero_check.offset_ppm, 4)} ppm recorded`, 'ok');
  });
  $('#cal-abort').addEventListener('click', () => write(`${API}/session/abort`, {}));
  $('#cal-rollback').addEventListener('click', () => write(`${API}/rollback`, { operator: $('#cal-operator').value }));
  refresh();
}

if (document.readyState === 'loading') document.addEventListener('DOMContentLoaded', init);
else init();
