/**
 * The soak's attack mix, briefly: the real server in a child process, 6
 * ordinary workers and 2 attackers sending one hostile request of every class
 * of the hardening issue in turn (bench/soak/attacks.ts). The ordinary traffic
 * must see no error, every attack must be sent and handled as it should be
 * (each once, then the window closes; answered in time, refusals in
 * Triton's shape with a bounded message), and the server must exit cleanly.
 * The 10-minute run, with its memory target, is `npm run bench:soak`.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { ATTACKS } from '../../bench/soak/attacks.ts';
import { runSoak } from '../../bench/soak/soak.ts';

test('the attack mix beside ordinary traffic: every attack handled, no ordinary request fails, clean shutdown', { timeout: 180_000 }, async () => {
  const result = await runSoak({ concurrency: 6, durationSeconds: 60, warmupSeconds: 1, rssEverySeconds: 1, attackers: 2, attackRounds: 1 });
  const errors = result.kinds.flatMap((k) => k.firstErrors.map((e) => `${k.kind}: ${e}`));
  assert.equal(result.overall.errors, 0, `ordinary requests failed:\n${errors.join('\n')}`);
  assert.equal(result.attacks.length, ATTACKS.length);
  for (const attack of result.attacks) {
    assert.ok(attack.sent > 0, `class ${attack.klass} (${attack.name}) was never sent`);
    assert.equal(attack.problems, 0, `class ${attack.klass} (${attack.name}):\n${attack.firstProblems.join('\n')}`);
  }
  for (const kind of result.kinds) assert.ok(kind.requests > 0, `${kind.kind} got no traffic in the window`);
  assert.equal(result.shutdown.outcome, 'clean', result.shutdown.detail);
});
