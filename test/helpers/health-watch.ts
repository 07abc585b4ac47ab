/**
 * Event-loop responsiveness as a client sees it: /v2/health/live asked
 * again and again while an attack is served, one request at a time.
 */
import assert from 'node:assert/strict';
import { rawHttp } from './raw-http.ts';

/** Runs `attack` while asking `baseUrl`'s /v2/health/live; resolves with its result and the slowest health answer. */
export async function whileWatchingHealth<T>(baseUrl: string, attack: Promise<T>): Promise<{ result: T; slowestMs: number }> {
  let done = false;
  let slowestMs = 0;
  const watch = (async () => {
    while (!done) {
      const start = performance.now();
      const live = await rawHttp(baseUrl, '/v2/health/live');
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
