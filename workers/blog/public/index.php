<?php
// The example app's front page: the PHP runtime, the request as PHP sees it, and the pool's live
// status (read by the browser from TQServer's status page, which never occupies a PHP worker).
declare(strict_types=1);

function h(string $text): string
{
    return htmlspecialchars($text, ENT_QUOTES | ENT_SUBSTITUTE, 'UTF-8');
}

$runtime = [
    'PHP version' => PHP_VERSION,
    'SAPI' => PHP_SAPI,
    'Worker pid' => (string) getmypid(),
    'OPcache' => function_exists('opcache_get_status') && (opcache_get_status(false)['opcache_enabled'] ?? false) ? 'enabled' : 'disabled',
    'memory_limit' => (string) ini_get('memory_limit'),
    'max_execution_time' => (string) ini_get('max_execution_time'),
    'APP_ENV' => (string) (getenv('APP_ENV') ?: '-'),
    'Peak memory' => number_format(memory_get_peak_usage() / 1024) . ' KiB',
];
$cgi = [];
foreach (['REQUEST_METHOD', 'REQUEST_URI', 'SCRIPT_NAME', 'SCRIPT_FILENAME', 'PATH_INFO', 'QUERY_STRING', 'DOCUMENT_ROOT',
    'SERVER_SOFTWARE', 'SERVER_PROTOCOL', 'SERVER_NAME', 'SERVER_PORT', 'REMOTE_ADDR', 'HTTP_HOST', 'HTTP_USER_AGENT'] as $name) {
    $cgi[$name] = (string) ($_SERVER[$name] ?? '');
}
$statusUrl = '/status?json&full';
?>
<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>TQServer blog example</title>
<style>
  :root { color-scheme: light dark; --accent: #4f46e5; --muted: #6b7280; --card: rgba(127,127,127,.08); }
  body { font: 15px/1.5 system-ui, sans-serif; margin: 0; padding: 2rem; max-width: 1100px; margin-inline: auto; }
  header h1 { margin: 0; font-size: 1.8rem; } header p { color: var(--muted); margin: .2rem 0 1.5rem; }
  .grid { display: grid; grid-template-columns: repeat(auto-fit, minmax(320px, 1fr)); gap: 1rem; }
  section { background: var(--card); border-radius: 10px; padding: 1rem 1.2rem; }
  h2 { font-size: 1rem; margin: 0 0 .6rem; color: var(--accent); text-transform: uppercase; letter-spacing: .05em; }
  table { border-collapse: collapse; width: 100%; font-size: .9rem; }
  td, th { text-align: left; padding: .25rem .4rem; border-bottom: 1px solid rgba(127,127,127,.2); vertical-align: top; }
  td:first-child { color: var(--muted); white-space: nowrap; } code { font-size: .85rem; word-break: break-all; }
  .bar { display: flex; height: 14px; border-radius: 7px; overflow: hidden; background: rgba(127,127,127,.2); margin: .4rem 0 .8rem; }
  .bar span { display: block; } .active { background: #f59e0b; } .idle { background: #10b981; }
  .links a { margin-right: 1rem; color: var(--accent); }
</style>
</head>
<body>
<header>
  <h1>TQServer is running PHP</h1>
  <p>This page was rendered by php-cgi worker <strong><?= h((string) getmypid()) ?></strong> of the <em>blog</em> pool, mounted at <code>/blog</code>.</p>
  <p class="links"><a href="hello.php">hello.php</a><a href="info.php">phpinfo()</a><a href="/status?full">status</a><a href="pretty/url/handled/by/index.php">a pretty URL</a></p>
</header>
<div class="grid">
  <section>
    <h2>PHP runtime</h2>
    <table><?php foreach ($runtime as $name => $value): ?><tr><td><?= h($name) ?></td><td><?= h($value) ?></td></tr><?php endforeach ?></table>
  </section>
  <section>
    <h2>Request environment</h2>
    <table><?php foreach ($cgi as $name => $value): ?><tr><td><?= h($name) ?></td><td><code><?= h($value) ?></code></td></tr><?php endforeach ?></table>
  </section>
  <section>
    <h2>Pool status <small id="updated"></small></h2>
    <div id="pool">Loading <code><?= h($statusUrl) ?></code>...</div>
  </section>
</div>
<script>
const render = (pool) => {
  const total = Math.max(pool['total processes'], 1);
  const pct = (n) => (100 * n / total).toFixed(1) + '%';
  const rows = (pool.processes || []).map((p) =>
    `<tr><td>${p.pid}</td><td>${p.state}</td><td>${p.requests}</td><td><code>${p['request URI']}</code></td></tr>`).join('');
  return `<div class="bar"><span class="active" style="width:${pct(pool['active processes'])}"></span><span class="idle" style="width:${pct(pool['idle processes'])}"></span></div>
    <table>
      <tr><td>process manager</td><td>${pool['process manager']}</td></tr>
      <tr><td>accepted conn</td><td>${pool['accepted conn']}</td></tr>
      <tr><td>active / idle / total</td><td>${pool['active processes']} / ${pool['idle processes']} / ${pool['total processes']}</td></tr>
      <tr><td>listen queue</td><td>${pool['listen queue']} (max ${pool['max listen queue']})</td></tr>
      <tr><td>max children reached</td><td>${pool['max children reached']}</td></tr>
    </table>
    <table><tr><th>pid</th><th>state</th><th>requests</th><th>request URI</th></tr>${rows}</table>`;
};
async function refresh() {
  try {
    const status = await (await fetch(<?= json_encode($statusUrl) ?>, { cache: 'no-store' })).json();
    const pool = status.pools.find((p) => p.pool === 'blog') || status.pools[0];
    document.getElementById('pool').innerHTML = render(pool);
    document.getElementById('updated').textContent = new Date().toLocaleTimeString();
  } catch (error) {
    document.getElementById('pool').textContent = 'Status unavailable: ' + error;
  }
}
refresh();
setInterval(refresh, 2000);
</script>
</body>
</html>
