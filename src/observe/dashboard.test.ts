// The dashboard page as text: everything it needs is inside it (nothing from the network), its
// script and style run only under its per-response nonce, and hostile values cannot leave the
// element they are put in.

import assert from 'node:assert/strict';
import { test } from 'node:test';
import { DASHBOARD_SCRIPT } from './dashboard-client.js';
import { dashboardCsp, escapeHtml, renderDashboard, scriptJson } from './dashboard.js';

const hostile = '</script><script>alert(1)</script><!-- \u2028\u2029 "\'&';

function page(initial: unknown = { pools: [] }, fallbackText = 'pool: blog\n') {
  return renderDashboard({ version: 'v1.2.3', initial, fallbackText, nonce: 'bm9uY2U=', metricsPath: '/metrics' });
}

test('escapeHtml: the five characters that matter in text and attributes', () => {
  assert.equal(escapeHtml(`<a href="x" title='y'>&amp;</a>`), '&lt;a href=&quot;x&quot; title=&#39;y&#39;&gt;&amp;amp;&lt;/a&gt;');
});

test('scriptJson: no "<" (so no </script> or <!--) and no raw line separators; parses back to the same value', () => {
  const value = { uri: hostile, n: 1 };
  const text = scriptJson(value);
  assert.doesNotMatch(text, /[<\u2028\u2029]/);
  assert.deepEqual(JSON.parse(text), value);
});

test('the initial data and the fallback text stay inside their elements', () => {
  const html = page({ pools: [{ pool: hostile }] }, `request URI: ${hostile}\n`);
  // Exactly the page's own two scripts, one style, one noscript.
  assert.equal(html.match(/<script\b/g)?.length, 2);
  assert.equal(html.match(/<\/script>/g)?.length, 2);
  assert.equal(html.match(/<style\b/g)?.length, 1);
  const data = /<script type="application\/json" id="tq-initial">([^<]*)<\/script>/.exec(html);
  assert.ok(data, 'the data element is whole');
  assert.deepEqual(JSON.parse(data[1]!), { pools: [{ pool: hostile }] });
  const fallback = /<noscript><pre>([^<]*)<\/pre><\/noscript>/.exec(html);
  assert.ok(fallback, 'the fallback is whole');
  assert.match(fallback[1]!, /&lt;\/script&gt;&lt;script&gt;alert\(1\)/);
});

test('the version in the title is escaped', () => {
  const html = renderDashboard({ version: '<b>x</b>', initial: {}, fallbackText: '', nonce: 'n', metricsPath: '/m"x' });
  assert.match(html, /<title>TQServer &lt;b&gt;x&lt;\/b&gt; status<\/title>/);
  assert.match(html, /<code>\/m&quot;x<\/code>/);
});

test('self-contained: no URL to another origin, the script and style carry the nonce the policy names', () => {
  const html = page();
  assert.doesNotMatch(html, /(?:src|href)\s*=\s*"(?!data:)/i, 'no src or href but data: URLs');
  assert.doesNotMatch(html, /https?:\/\//, 'no absolute URL');
  assert.doesNotMatch(html, /\bstyle="/, 'no inline style attributes (the policy would block them)');
  assert.match(html, /<script nonce="bm9uY2U=">/);
  assert.match(html, /<style nonce="bm9uY2U=">/);
  const csp = dashboardCsp('bm9uY2U=');
  assert.match(csp, /script-src 'nonce-bm9uY2U='/);
  assert.match(csp, /style-src 'nonce-bm9uY2U='/);
  assert.match(csp, /connect-src 'self'/);
  assert.match(csp, /default-src 'none'/);
});

test('the client script writes values as text, never as markup, and parses as JavaScript', () => {
  assert.doesNotMatch(DASHBOARD_SCRIPT, /innerHTML|outerHTML|insertAdjacentHTML|document\.write|eval\(|new Function/);
  assert.doesNotMatch(DASHBOARD_SCRIPT, /https?:\/\//);
  // Syntax check without running it: a function body is compiled, not called.
  assert.doesNotThrow(() => new Function(DASHBOARD_SCRIPT));
});
