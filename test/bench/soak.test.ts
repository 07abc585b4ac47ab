/**
 * The soak bench, briefly: the real server in a child process, 8 workers for
 * a 1 s warm-up and a 5 s window. Every kind of traffic must get through on
 * every transport with every answer right, and the server must exit cleanly.
 * (The 10-minute run, with its memory target, is `npm run bench:soak`.)
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { runSoak, TRANSPORTS } from '../../bench/soak/soak.ts';
import { KIND_NAMES } from '../../bench/soak/workloads.ts';

test('a 5 s soak at concurrency 8: every kind over every transport, no errors, clean shutdown', { timeout: 60_000 }, async () => {
  const result = await runSoak({ concurrency: 8, durationSeconds: 5, warmupSeconds: 1, rssEverySeconds: 1, attackers: 0 });
  const errors = result.kinds.flatMap((k) => k.firstErrors.map((e) => `${k.kind}: ${e}`));
  assert.equal(result.overall.errors, 0, `errors:\n${errors.join('\n')}`);
  assert.ok(result.preflightOk);
  assert.deepEqual(result.kinds.map((k) => k.kind), [...KIND_NAMES]);
  for (const kind of result.kinds) {
    assert.ok(kind.requests > 0, `${kind.kind} got no traffic in the window`);
    for (const transport of TRANSPORTS) assert.ok(kind.perTransport[transport] > 0, `${kind.kind} got no ${transport} traffic in the window`);
    assert.ok(Number.isFinite(kind.p50) && Number.isFinite(kind.p99));
  }
  assert.ok((result.kinds.find((k) => k.kind === 'sequence')?.sequences ?? 0) > 0, 'no whole sequence completed');
  assert.equal(result.shutdown.outcome, 'clean', result.shutdown.detail);
  assert.ok(result.rss.startKiB !== undefined && result.rss.endKiB !== undefined, 'server RSS was not sampled');
  assert.equal(result.serverLog.errorLines, 0, result.serverLog.firstLines.join('\n'));
});
