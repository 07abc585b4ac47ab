/**
 * Runs an attack while asking /v2/health/live again and again, one request
 * at a time, and reports the slowest answer: how long the server's event
 * loop was kept from other clients while the attack was served.
 */
import assert from 'node:assert/strict';
import { rawHttp } from './raw-http.ts';

export async function whileWatchingHealth<T>(httpUrl: string, attack: Promise<T>): Promise<{ result: T; slowestMs: number }> {
  let done = false;
  let slowestMs = 0;
  const watch = (async () => {
    while (!done) {
      const start = performance.now();
      const live = await rawHttp(httpUrl, '/v2/health/live');
      assert.equal(live.status, 200);
      slowestMs = Math.max(slowestMs, performance.now() - start);
    }
  })();
  try {
    return { result: await attack, slowestMs };
  } finally {
    done = true;
    await watch;
  }
}
