// Dev mode (--mode dev): an edited PHP file shows on the very next request on both backends (OPcache
// checks timestamps on every request), and the logs are verbose.

import assert from 'node:assert/strict';
import { utimesSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, describe, test } from 'node:test';
import { get, makeProject, serverYaml, startCli, type CliProcess, type Project } from './helpers/front.js';

for (const backend of ['php-cgi', 'php-fpm'] as const) {
  describe(`dev mode on ${backend}`, () => {
    let project: Project;
    let cli: CliProcess & { port: number };

    after(async () => {
      if (cli) {
        cli.kill('SIGTERM');
        await cli.exited;
      }
      await project?.cleanup();
    });

    test('an edited script shows on the next request', async () => {
      project = await makeProject({
        // The bodies are compared byte for byte: no live reload script in them (test/live-reload.test.ts).
        server: `${serverYaml()}  live_reload: false\n`,
        apps: [
          {
            name: 'app',
            site: false,
            worker: [
              'path: /app',
              'access_log:',
              '  path: ~',
              'php:',
              '  settings:',
              // What a production php.ini does: check timestamps only every few seconds.
              '    opcache.enable: 1',
              '  pool:',
              '    manager: static',
              '    max_workers: 1',
              ...(backend === 'php-fpm' ? ['php_fpm:', '  enabled: true'] : []),
              '',
            ].join('\n'),
          },
        ],
      });
      const script = join(project.docRoot('app'), 'page.php');
      writeFileSync(script, '<?php echo "version 1";');
      cli = await startCli(project.root, ['--mode', 'dev']);
      assert.equal((await get(cli.port, '/app/page.php')).body.toString(), 'version 1');
      // Same size, a new timestamp: only a timestamp check can tell the file changed.
      writeFileSync(script, '<?php echo "version 2";');
      const later = new Date(Date.now() + 2000);
      utimesSync(script, later, later);
      assert.equal((await get(cli.port, '/app/page.php')).body.toString(), 'version 2');
      // A 404 is logged at debug level, which only dev mode shows.
      assert.equal((await get(cli.port, '/app/missing.txt')).status, 404);
      await cli.waitForOutput(/DEBUG\s+404 GET \/app\/missing\.txt/);
    });
  });
}
