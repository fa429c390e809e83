// What a dev-mode page gets for live reload: the reserved paths, the script tag added to HTML pages,
// and the script itself (served as text at LIVE_RELOAD_SCRIPT_PATH).

/** The event stream pages listen to. Reserved in dev mode: no app sees requests for it. */
export const LIVE_RELOAD_EVENTS_PATH = '/.tqserver/live-reload';
/** The script pages load. */
export const LIVE_RELOAD_SCRIPT_PATH = '/.tqserver/live-reload.js';
/** What goes into every HTML page, before its first </body> (or at its end when it has none). */
export const LIVE_RELOAD_TAG = `<script src="${LIVE_RELOAD_SCRIPT_PATH}" defer></script>`;

/**
 * The script. It reloads the page on a "reload" event, and also when the stream comes back from a
 * different server process (TQServer restarted: the page may be stale). A window flag keeps a page
 * that got the tag twice (an HTML fragment inserted by script) to one stream.
 */
export const LIVE_RELOAD_SCRIPT = `// TQServer dev mode: reloads this page when a file of the app or the configuration changes.
(function () {
  if (window.__tqserverLiveReload) return;
  window.__tqserverLiveReload = true;
  var boot = null;
  var source = new EventSource(${JSON.stringify(LIVE_RELOAD_EVENTS_PATH)});
  function reload() {
    source.close();
    location.reload();
  }
  source.addEventListener('hello', function (event) {
    var hello = JSON.parse(event.data);
    if (boot !== null && hello.boot !== boot) return reload();
    boot = hello.boot;
  });
  source.addEventListener('reload', reload);
})();
`;
