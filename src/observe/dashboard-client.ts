// The dashboard's browser script, as text the page inlines (no build step, nothing fetched but the
// status JSON). It keeps the series it was sent, polls for newer slots once a second, and redraws
// the charts (canvas, drawn by the piece in dashboard-chart.ts), the tiles and the tables. Every
// value from the server reaches the page through textContent, never as markup. Written without
// backticks or "${" so it can live in this template literal as it is.

import { DASHBOARD_CHART_SCRIPT } from './dashboard-chart.js';

export const DASHBOARD_SCRIPT = String.raw`
(function () {
  'use strict';
  var POLL_MS = 1000;
  var MAX_POINTS = 600;
  var doc = JSON.parse(document.getElementById('tq-initial').textContent);
  var state = { windowS: 300, paused: false, apps: {}, order: [], last: null, failures: 0, timer: null, sections: {} };
  var base = location.pathname.replace(/\/$/, '');
  var css = getComputedStyle(document.documentElement);
  function color(name) { return css.getPropertyValue('--' + name).trim() || '#888'; }

  function el(tag, cls, text) {
    var e = document.createElement(tag);
    if (cls) e.className = cls;
    if (text !== undefined && text !== null) e.textContent = String(text);
    return e;
  }
  function clear(e) { while (e.firstChild) e.removeChild(e.firstChild); }

  // ---- numbers ----
  function fmtMs(ms) {
    if (ms === null || ms === undefined || isNaN(ms)) return '–';
    if (ms === 0) return '0';
    if (ms < 1) return ms.toFixed(2) + ' ms';
    if (ms < 10) return ms.toFixed(1) + ' ms';
    if (ms < 1000) return Math.round(ms) + ' ms';
    if (ms < 60000) return (ms / 1000).toFixed(ms < 10000 ? 2 : 1) + ' s';
    return (ms / 60000).toFixed(1) + ' min';
  }
  // Axis labels: as short as the value allows ("2.5 s", "400 ms").
  function fmtAxisMs(ms) {
    if (ms === 0) return '0';
    if (ms < 1000) return parseFloat(ms.toFixed(2)) + ' ms';
    return parseFloat((ms / 1000).toFixed(2)) + ' s';
  }
  function fmtRate(r) {
    if (r === null || r === undefined || isNaN(r)) return '–';
    if (r === 0) return '0';
    if (r < 10) return r.toFixed(1);
    if (r < 10000) return String(Math.round(r));
    return (r / 1000).toFixed(1) + 'k';
  }
  function fmtCount(n) {
    if (n === null || n === undefined) return '–';
    if (n < 10000) return String(n);
    if (n < 1e6) return (n / 1000).toFixed(1) + 'k';
    return (n / 1e6).toFixed(2) + 'M';
  }
  function fmtBytes(b) {
    if (!b) return '–';
    if (b < 1048576) return Math.round(b / 1024) + ' KiB';
    return (b / 1048576).toFixed(1) + ' MiB';
  }
  function fmtAge(seconds) {
    if (seconds < 60) return Math.round(seconds) + 's';
    if (seconds < 3600) return Math.floor(seconds / 60) + 'm ' + Math.round(seconds % 60) + 's';
    if (seconds < 86400) return Math.floor(seconds / 3600) + 'h ' + Math.floor((seconds % 3600) / 60) + 'm';
    return Math.floor(seconds / 86400) + 'd ' + Math.floor((seconds % 86400) / 3600) + 'h';
  }
  function clock(ms) {
    var d = new Date(ms);
    function two(n) { return (n < 10 ? '0' : '') + n; }
    return two(d.getHours()) + ':' + two(d.getMinutes()) + ':' + two(d.getSeconds());
  }
  // The grid step: 1, 2, 2.5 or 5 times a power of ten (no 2.5 for counts), at least minStep.
  function niceStep(v, minStep, counts) {
    if (!(v > minStep)) return minStep;
    var p = Math.pow(10, Math.floor(Math.log10(v)));
    var steps = counts ? [1, 2, 5, 10] : [1, 2, 2.5, 5, 10];
    for (var i = 0; i < steps.length; i++) if (steps[i] * p >= v) return steps[i] * p;
    return 10 * p;
  }

  // ---- series kept in the page ----
  var COLUMNS = ['p50', 'p95', 'p99', 'queueMs', 'phpMs', 'idle', 'active', 'queued', 'total', 'limit'];
  var CLASSES = ['1xx', '2xx', '3xx', '4xx', '5xx', 'other'];
  function merge(name, view) {
    var s = state.apps[name];
    if (!s) {
      s = state.apps[name] = { t: [], rps: {}, cols: {} };
      CLASSES.forEach(function (c) { s.rps[c] = []; });
      COLUMNS.forEach(function (c) { s.cols[c] = []; });
    }
    var lastT = s.t.length ? s.t[s.t.length - 1] : -Infinity;
    for (var i = 0; i < view.t.length; i++) {
      if (view.t[i] <= lastT) continue;
      s.t.push(view.t[i]);
      CLASSES.forEach(function (c) { s.rps[c].push(view.rps[c][i]); });
      COLUMNS.forEach(function (c) { s.cols[c].push(view[c][i]); });
    }
    var extra = s.t.length - MAX_POINTS;
    if (extra > 0) {
      s.t.splice(0, extra);
      CLASSES.forEach(function (c) { s.rps[c].splice(0, extra); });
      COLUMNS.forEach(function (c) { s.cols[c].splice(0, extra); });
    }
  }
` + DASHBOARD_CHART_SCRIPT + String.raw`
  // ---- one section per app ----
  function tile(parent, key, hint) {
    var t = parent.appendChild(el('div', 'tile'));
    if (hint) t.title = hint;
    t.appendChild(el('div', 'k', key));
    var v = t.appendChild(el('div', 'v', '–'));
    return v;
  }
  function setTile(v, text, unit) {
    clear(v);
    v.appendChild(document.createTextNode(text));
    if (unit) v.appendChild(el('small', '', unit));
  }
  function table(parent, heads) {
    var box = parent.appendChild(el('div', 'tablebox'));
    var t = box.appendChild(el('table'));
    var tr = t.appendChild(el('thead')).appendChild(el('tr'));
    heads.forEach(function (h) { tr.appendChild(el('th', h[1] || '', h[0])); });
    return { box: box, body: t.appendChild(el('tbody')) };
  }
  function section(name) {
    var s = state.sections[name];
    if (s) return s;
    var root = el('section', 'app');
    root.setAttribute('data-app', name);
    var head = root.appendChild(el('div', 'app-head'));
    s = { root: root };
    s.title = head.appendChild(el('h2', '', name));
    s.path = head.appendChild(el('span', 'tag'));
    s.backend = head.appendChild(el('span', 'tag'));
    s.pm = head.appendChild(el('span', 'tag'));
    s.ready = head.appendChild(el('span', 'pill'));
    s.reason = head.appendChild(el('span', 'reason'));
    s.upstreams = head.appendChild(el('span', 'upstreams'));
    var tiles = root.appendChild(el('div', 'tiles'));
    s.tRps = tile(tiles, 'Requests/s', 'requests per second over the last 10 seconds');
    s.tP50 = tile(tiles, 'p50 (1 min)', 'median request time over the last minute');
    s.tP95 = tile(tiles, 'p95 (1 min)', '95th percentile request time over the last minute');
    s.tP99 = tile(tiles, 'p99 (1 min)', '99th percentile request time over the last minute');
    s.tErr = tile(tiles, '5xx (1 min)', 'share of answers with a 5xx status over the last minute');
    s.tBusy = tile(tiles, 'Busy', 'PHP processes serving a request / PHP processes');
    s.tQueue = tile(tiles, 'Queue', 'requests waiting for a PHP process now (listen queue), and the most ever');
    s.tAccepted = tile(tiles, 'Accepted', 'requests handed to PHP since the pool started (accepted conn)');
    s.tMax = tile(tiles, 'Max reached', 'times the pool needed more than max_workers (max children reached)');
    s.tRestarts = tile(tiles, 'Restarts', 'PHP processes replaced: recycled, over memory, timed out, crashed');
    var charts = root.appendChild(el('div', 'charts'));
    function box(kind) { var b = charts.appendChild(el('div', 'chart')); b.setAttribute('data-chart', kind); return b; }
    s.cRps = new Chart(box('rps'), 'Requests per second', fmtRate, 4, 1, true);
    s.cLat = new Chart(box('latency'), 'Latency', fmtMs, 4, 1, false, fmtAxisMs);
    s.cOcc = new Chart(box('occupancy'), 'PHP processes', function (v) { return v === null || v === undefined ? '–' : String(Math.round(v * 10) / 10); }, 4, 1, true);
    var tables = root.appendChild(el('div', 'tables'));
    var left = tables.appendChild(el('div'));
    left.appendChild(el('h3', '', 'Workers'));
    s.workers = table(left, [['PID', 'num'], ['State'], ['Requests', 'num'], ['Up', 'num'], ['Duration', 'num'], ['Method'], ['Request URI'], ['Memory', 'num']]);
    s.workers.box.setAttribute('data-table', 'workers');
    var right = tables.appendChild(el('div'));
    s.slowTitle = right.appendChild(el('h3', '', 'Slow requests'));
    s.slow = table(right, [['When', 'num'], ['Request'], ['Status', 'num'], ['Total', 'num'], ['Queue', 'num'], ['PHP', 'num'], ['PID', 'num']]);
    s.slow.box.setAttribute('data-table', 'slow');
    document.getElementById('apps').appendChild(root);
    state.sections[name] = s;
    return s;
  }

  function rows(body, items, cells, emptyText, width) {
    clear(body);
    if (items.length === 0) {
      var td = body.appendChild(el('tr')).appendChild(el('td', 'empty', emptyText));
      td.colSpan = width;
      return;
    }
    items.forEach(function (item) {
      var tr = body.appendChild(el('tr'));
      cells(item).forEach(function (c) {
        var td = tr.appendChild(el('td', c[1] || '', c[0]));
        if (c[2]) td.title = c[2];
      });
    });
  }

  function renderApp(pool, now) {
    var name = pool.pool;
    var s = section(name);
    var data = state.apps[name] || { t: [], rps: {}, cols: {} };
    var summary = (doc.summary || {})[name] || {};
    var health = (doc.health || []).filter(function (h) { return h.app === name; })[0];
    s.path.textContent = pool.path;
    s.backend.textContent = pool.backend;
    s.pm.textContent = 'pm ' + pool['process manager'];
    if (health) {
      s.ready.className = 'pill ' + (health.ready ? 'ok' : 'bad');
      s.ready.textContent = health.ready ? 'ready' : 'not ready';
      s.reason.textContent = health.reason;
    }
    clear(s.upstreams);
    (pool.upstreams || []).forEach(function (u) {
      var p = s.upstreams.appendChild(el('span', 'pill ' + (u.breaker === 'closed' ? 'ok' : u.breaker === 'open' ? 'bad' : 'warn'),
        u.address + ' · breaker ' + u.breaker + ' · ' + u.busy + ' busy / ' + u.open + ' open' + (u.queued ? ' · ' + u.queued + ' queued' : '')));
      p.setAttribute('data-breaker', u.breaker);
    });
    var last10 = summary.last10s || {}, last60 = summary.last60s || {};
    setTile(s.tRps, fmtRate(last10.rps));
    setTile(s.tP50, fmtMs(last60.p50));
    setTile(s.tP95, fmtMs(last60.p95));
    setTile(s.tP99, fmtMs(last60.p99));
    setTile(s.tErr, last60.requests ? (100 * last60.errorRatio).toFixed(1) : '–', last60.requests ? '%' : '');
    var occ = (doc.occupancy || {})[name] || { active: pool['active processes'], total: pool['total processes'], queued: pool['listen queue'] };
    setTile(s.tBusy, String(occ.active), '/ ' + occ.total);
    setTile(s.tQueue, String(occ.queued), 'max ' + pool['max listen queue']);
    setTile(s.tAccepted, fmtCount(pool['accepted conn']));
    setTile(s.tMax, String(pool['max children reached']));
    // Workers replaced (recycled, over memory, timed out, crashed; php-fpm: master restarts), not scale-down.
    var restarts = 0, crashed = (pool.restarts || {}).crashed || 0;
    Object.keys(pool.restarts || {}).forEach(function (k) { if (k !== 'stopped' && k !== 'idle') restarts += pool.restarts[k]; });
    setTile(s.tRestarts, String(restarts), crashed ? crashed + ' crashed' : '');
    s.tRestarts.title = JSON.stringify(pool.restarts || {});
    s.tRps.parentNode.setAttribute('data-value', String(last10.rps || 0));

    var windowMs = state.windowS * 1000, stepMs = (doc.series && doc.series.resolutionMs) || 1000;
    var c = data.cols;
    s.cRps.set({ t: data.t, windowMs: windowMs, stepMs: stepMs, series: [
      { label: '2xx', color: color('c2xx'), values: data.rps['2xx'] || [], stack: true, fill: true },
      { label: '3xx', color: color('c3xx'), values: data.rps['3xx'] || [], stack: true, fill: true },
      { label: '4xx', color: color('c4xx'), values: data.rps['4xx'] || [], stack: true, fill: true },
      { label: '5xx', color: color('c5xx'), values: data.rps['5xx'] || [], stack: true, fill: true },
    ] });
    s.cLat.set({ t: data.t, windowMs: windowMs, stepMs: stepMs, series: [
      { label: 'p50', color: color('p50'), values: c.p50 || [], fill: true },
      { label: 'p95', color: color('p95'), values: c.p95 || [] },
      { label: 'p99', color: color('p99'), values: c.p99 || [] },
      { label: 'queue wait', color: color('queue'), values: c.queueMs || [], dash: true },
    ] });
    s.cOcc.set({ t: data.t, windowMs: windowMs, stepMs: stepMs, series: [
      { label: 'active', color: color('active'), values: c.active || [], stack: true, fill: true },
      { label: 'idle', color: color('idle'), values: c.idle || [], stack: true, fill: true },
      { label: 'queued', color: color('queued'), values: c.queued || [], stack: true, fill: true },
      { label: 'limit', color: color('limit'), values: c.limit || [], dash: true, width: 1 },
    ] });

    var processes = (pool.processes || []).slice().sort(function (a, b) { return a.pid - b.pid; });
    rows(s.workers.body, processes, function (p) {
      var running = p.state === 'Running';
      return [
        [p.pid, 'num'],
        [p.state, 'state ' + p.state],
        [p.requests, 'num'],
        [fmtAge(p['start since']), 'num'],
        [fmtMs(p['request duration'] / 1000), 'num'],
        [running ? p['request method'] : ''],
        [running ? p['request uri'] : (p['request uri'] !== '-' ? p['request uri'] : ''), 'uri', p['request uri']],
        [fmtBytes(p['last request memory']), 'num'],
      ];
    }, 'no processes', 8);
    var slow = (doc.slow || {})[name] || [];
    s.slowTitle.textContent = 'Slow requests' + (doc.slowThresholdMs && doc.slowThresholdMs[name] !== undefined ? ' (over ' + fmtMs(doc.slowThresholdMs[name]) + ', last 10 min)' : '');
    rows(s.slow.body, slow, function (r) {
      return [
        [fmtAge(Math.max(0, (now - r.at) / 1000)) + ' ago', 'num', new Date(r.at).toISOString()],
        [r.method + ' ' + r.uri, 'uri', r.method + ' ' + r.uri + (r.error ? ' (' + r.error + ')' : '')],
        [r.status, 'num'],
        [fmtMs(r.durationMs), 'num'],
        [fmtMs(r.queueMs), 'num'],
        [fmtMs(r.phpMs), 'num'],
        [r.workerPid || '–', 'num'],
      ];
    }, 'none yet', 7);
  }

  function render() {
    var now = doc.now || Date.now();
    var pools = doc.pools || [];
    var seen = {};
    pools.forEach(function (pool) { seen[pool.pool] = true; renderApp(pool, now); });
    Object.keys(state.sections).forEach(function (name) {
      if (!seen[name]) { state.sections[name].root.remove(); delete state.sections[name]; delete state.apps[name]; }
    });
    var health = doc.health || [];
    var down = health.filter(function (h) { return !h.ready; });
    var overall = document.getElementById('overall');
    overall.className = 'pill ' + (down.length ? 'bad' : 'ok');
    overall.textContent = down.length ? down.length + ' of ' + health.length + ' apps not ready' : 'all ' + health.length + ' apps ready';
    var meta = document.getElementById('meta');
    meta.textContent = 'v' + doc.version + ' · up ' + fmtAge(Math.max(0, now / 1000 - doc['start time'])) + ' · ' + location.host;
    document.getElementById('updated').textContent = 'updated ' + clock(now);
  }

  function ingest(next) {
    doc = next;
    var apps = (next.series && next.series.apps) || {};
    Object.keys(apps).forEach(function (name) { merge(name, apps[name]); });
    var t = null;
    Object.keys(state.apps).forEach(function (name) {
      var s = state.apps[name];
      if (s.t.length && (t === null || s.t[s.t.length - 1] > t)) t = s.t[s.t.length - 1];
    });
    state.last = t;
    render();
  }

  function poll() {
    state.timer = null;
    if (state.paused) return;
    var url = base + '?json&full&series' + (state.last !== null ? '=' + state.last : '');
    fetch(url, { cache: 'no-store', headers: { accept: 'application/json' } })
      .then(function (r) {
        if (!r.ok) throw new Error('status page answered ' + r.status);
        return r.json();
      })
      .then(function (next) {
        state.failures = 0;
        document.getElementById('banner').className = '';
        ingest(next);
      })
      .catch(function (err) {
        state.failures++;
        var banner = document.getElementById('banner');
        banner.textContent = 'Cannot reach TQServer (' + (err && err.message ? err.message : err) + '); retrying.';
        banner.className = 'show';
      })
      .then(function () {
        if (!state.paused) state.timer = setTimeout(poll, state.failures ? Math.min(10000, POLL_MS * Math.pow(2, state.failures)) : POLL_MS);
      });
  }

  document.getElementById('window').addEventListener('click', function (ev) {
    var b = ev.target.closest('button');
    if (!b) return;
    state.windowS = Number(b.getAttribute('data-window'));
    Array.prototype.forEach.call(this.querySelectorAll('button'), function (x) { x.className = x === b ? 'on' : ''; });
    render();
  });
  document.getElementById('pause').addEventListener('click', function () {
    state.paused = !state.paused;
    this.textContent = state.paused ? 'Resume' : 'Pause';
    if (!state.paused && state.timer === null) poll();
  });
  window.addEventListener('resize', function () { render(); });

  ingest(doc);
  state.timer = setTimeout(poll, POLL_MS);
  window.tqDashboard = state;
})();
`;
