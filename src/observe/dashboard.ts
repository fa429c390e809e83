// The live dashboard (`<status_path>?html`, `<status_path>/`): one self-contained HTML page, styles
// and script inline, charts drawn on canvas by its own code; it polls the status JSON with the
// series and redraws. Nothing is fetched from the network but that JSON. Pure: data in, HTML out.

import { DASHBOARD_SCRIPT } from './dashboard-client.js';

export interface DashboardPage {
  version: string;
  /** The status document with series, health and slow requests: the page's first frame. */
  initial: unknown;
  /** The plain-text status, shown when scripts are off. */
  fallbackText: string;
  /** A fresh random value per response, for the Content-Security-Policy. */
  nonce: string;
  /** Where the Prometheus metrics are, for the footer. */
  metricsPath: string;
}

const HTML_ESCAPES: Readonly<Record<string, string>> = { '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&#39;' };

export function escapeHtml(text: string): string {
  return text.replace(/[&<>"']/g, (c) => HTML_ESCAPES[c]!);
}

/**
 * JSON that is safe inside a <script> element: "<" (so no "</script>" or "<!--" can end or bend
 * it) and the two line separators JavaScript once refused are written as escapes.
 */
export function scriptJson(value: unknown): string {
  return JSON.stringify(value).replace(/</g, '\\u003c').replace(/\u2028/g, '\\u2028').replace(/\u2029/g, '\\u2029');
}

/** The policy the page runs under: its own nonce'd style and script, requests to itself only. */
export function dashboardCsp(nonce: string): string {
  return [
    "default-src 'none'",
    `script-src 'nonce-${nonce}'`,
    `style-src 'nonce-${nonce}'`,
    "connect-src 'self'",
    'img-src data:',
    "base-uri 'none'",
    "form-action 'none'",
    "frame-ancestors 'none'",
  ].join('; ');
}

const STYLE = `
:root {
  --bg: #0d1117; --panel: #161b22; --panel2: #1c232d; --border: #2a3441; --text: #d7dee8; --muted: #8592a3;
  --grid: #232c38; --c2xx: #3fb950; --c3xx: #58a6ff; --c4xx: #d29922; --c5xx: #f85149; --cother: #8b949e;
  --p50: #58a6ff; --p95: #bc8cff; --p99: #f778ba; --queue: #e3b341; --active: #f0883e; --idle: #2f81f7; --queued: #f85149;
  --limit: #c9d1d9; --ok: #3fb950; --bad: #f85149; --warn: #d29922;
  font: 13px/1.45 system-ui, -apple-system, "Segoe UI", Roboto, sans-serif;
}
@media (prefers-color-scheme: light) {
  :root { --bg: #f4f6f9; --panel: #ffffff; --panel2: #f6f8fa; --border: #d8dee4; --text: #1f2328; --muted: #59636e; --grid: #eaeef2; --limit: #57606a; }
}
* { box-sizing: border-box; }
body { margin: 0; background: var(--bg); color: var(--text); }
header { position: sticky; top: 0; z-index: 5; display: flex; flex-wrap: wrap; align-items: center; gap: 12px 20px;
  padding: 10px 22px; background: color-mix(in srgb, var(--panel) 92%, transparent); backdrop-filter: blur(6px); border-bottom: 1px solid var(--border); }
header h1 { margin: 0; font-size: 17px; font-weight: 650; letter-spacing: .2px; display: flex; align-items: center; gap: 8px; }
.logo { width: 18px; height: 18px; border-radius: 5px; background: linear-gradient(135deg, #2f81f7, #bc8cff); }
.meta { color: var(--muted); }
.spacer { flex: 1; }
.pill { display: inline-flex; align-items: center; gap: 6px; padding: 2px 9px; border-radius: 999px; font-size: 12px; font-weight: 600;
  border: 1px solid var(--border); background: var(--panel2); white-space: nowrap; }
.pill::before { content: ""; width: 7px; height: 7px; border-radius: 50%; background: var(--muted); }
.pill.ok::before { background: var(--ok); } .pill.bad::before { background: var(--bad); } .pill.warn::before { background: var(--warn); }
.pill.ok { color: var(--ok); } .pill.bad { color: var(--bad); } .pill.warn { color: var(--warn); }
.tag { padding: 1px 7px; border-radius: 5px; background: var(--panel2); border: 1px solid var(--border); color: var(--muted); font-size: 12px; }
.seg { display: inline-flex; border: 1px solid var(--border); border-radius: 7px; overflow: hidden; }
.seg button, .btn { background: var(--panel2); color: var(--text); border: 0; padding: 4px 10px; font: inherit; cursor: pointer; }
.seg button + button { border-left: 1px solid var(--border); }
.seg button.on { background: #2f81f7; color: #fff; }
.btn { border: 1px solid var(--border); border-radius: 7px; }
#banner { display: none; margin: 14px 22px 0; padding: 8px 12px; border-radius: 8px; border: 1px solid var(--bad); color: var(--bad); background: color-mix(in srgb, var(--bad) 10%, transparent); }
#banner.show { display: block; }
main { padding: 16px 22px 40px; display: grid; gap: 18px; }
section.app { background: var(--panel); border: 1px solid var(--border); border-radius: 12px; padding: 14px 16px 16px; }
.app-head { display: flex; flex-wrap: wrap; align-items: center; gap: 8px 12px; margin-bottom: 12px; }
.app-head h2 { margin: 0; font-size: 16px; }
.reason { color: var(--muted); font-size: 12px; }
.tiles { display: grid; grid-template-columns: repeat(auto-fill, minmax(118px, 1fr)); gap: 8px; margin-bottom: 14px; }
.tile { background: var(--panel2); border: 1px solid var(--border); border-radius: 9px; padding: 7px 10px; }
.tile .k { color: var(--muted); font-size: 11px; text-transform: uppercase; letter-spacing: .5px; }
.tile .v { font-size: 19px; font-weight: 650; font-variant-numeric: tabular-nums; }
.tile .v small { font-size: 12px; color: var(--muted); font-weight: 500; margin-left: 3px; }
.charts { display: grid; grid-template-columns: repeat(auto-fit, minmax(300px, 1fr)); gap: 12px; }
.chart { background: var(--panel2); border: 1px solid var(--border); border-radius: 9px; padding: 8px 10px 6px; position: relative; }
.chart h3 { margin: 0 0 2px; font-size: 12px; font-weight: 600; color: var(--muted); text-transform: uppercase; letter-spacing: .5px; }
.legend { display: flex; flex-wrap: wrap; gap: 2px 12px; font-size: 12px; min-height: 18px; }
.legend span { display: inline-flex; align-items: center; gap: 5px; font-variant-numeric: tabular-nums; }
.legend i { width: 10px; height: 3px; border-radius: 2px; display: inline-block; }
canvas { width: 100%; height: 170px; display: block; }
.tip { position: absolute; pointer-events: none; display: none; background: var(--panel); border: 1px solid var(--border); border-radius: 7px;
  padding: 5px 8px; font-size: 12px; box-shadow: 0 4px 14px rgba(0,0,0,.25); white-space: nowrap; z-index: 3; }
.tables { display: grid; grid-template-columns: repeat(auto-fit, minmax(420px, 1fr)); gap: 12px; margin-top: 12px; }
.tables h3 { margin: 0 0 6px; font-size: 12px; font-weight: 600; color: var(--muted); text-transform: uppercase; letter-spacing: .5px; }
.tablebox { background: var(--panel2); border: 1px solid var(--border); border-radius: 9px; padding: 8px 10px; overflow: auto; max-height: 330px; }
table { width: 100%; border-collapse: collapse; font-size: 12px; font-variant-numeric: tabular-nums; }
th { text-align: left; color: var(--muted); font-weight: 600; padding: 3px 8px 5px 0; border-bottom: 1px solid var(--border); position: sticky; top: 0; background: var(--panel2); }
td { padding: 3px 8px 3px 0; border-bottom: 1px solid var(--grid); white-space: nowrap; }
td.uri { max-width: 340px; overflow: hidden; text-overflow: ellipsis; font-family: ui-monospace, SFMono-Regular, Menlo, monospace; }
td.num, th.num { text-align: right; }
.state { font-weight: 600; }
.state.Running { color: var(--active); } .state.Idle { color: var(--ok); } .state.Starting, .state.Reading, .state.Info { color: var(--idle); }
.state.Finishing, .state.Ending, .state.Ended { color: var(--muted); }
.empty { color: var(--muted); padding: 6px 0; }
.upstreams { display: flex; flex-wrap: wrap; gap: 6px; }
footer { color: var(--muted); font-size: 12px; padding: 0 22px 24px; }
`;

export function renderDashboard(page: DashboardPage): string {
  const version = escapeHtml(page.version);
  return `<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<meta name="color-scheme" content="dark light">
<title>TQServer ${version} status</title>
<link rel="icon" href="data:,">
<style nonce="${page.nonce}">${STYLE}</style>
</head>
<body>
<header>
  <h1><span class="logo"></span>TQServer</h1>
  <span class="meta" id="meta">${version}</span>
  <span id="overall" class="pill">loading</span>
  <span class="spacer"></span>
  <span class="meta" id="updated"></span>
  <span class="seg" id="window"><button data-window="60">1m</button><button data-window="300" class="on">5m</button><button data-window="600">10m</button></span>
  <button class="btn" id="pause">Pause</button>
</header>
<div id="banner" role="alert"></div>
<main id="apps"></main>
<noscript><pre>${escapeHtml(page.fallbackText)}</pre></noscript>
<footer>Also on this path: <code>?json</code>, <code>?xml</code>, <code>?openmetrics</code>, <code>?full</code>. Prometheus metrics: <code>${escapeHtml(page.metricsPath)}</code>; health: <code>/healthz</code>, <code>/readyz</code>.</footer>
<script type="application/json" id="tq-initial">${scriptJson(page.initial)}</script>
<script nonce="${page.nonce}">${DASHBOARD_SCRIPT}</script>
</body>
</html>
`;
}
