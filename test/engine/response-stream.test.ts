/**
 * ResponseStream's bounded buffer: accept() answers a promise once the
 * buffer holds maxResponses items or maxBytes of tensor data, which settles
 * true when the reader makes room and false when the reader stops or the
 * request fails; the final response never waits.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { serverError } from '../../engine/errors.ts';
import type { ModelResponse } from '../../engine/inference-response.ts';
import { DEFAULT_STREAM_BUFFER, ResponseStream, type StreamBufferLimits } from '../../engine/response-stream.ts';

const stream = (buffer?: StreamBufferLimits): ResponseStream =>
  new ResponseStream({ modelName: 'm', modelVersion: '1', decoupled: true, ...(buffer ? { buffer } : {}) });

const bytes = (n: number, final = false): ModelResponse =>
  ({ outputs: [{ name: 'Y', datatype: 'UINT8', shape: [n], raw: new Uint8Array(n) }], final });

test('the defaults: 16 responses, 16 MiB', () => {
  assert.deepEqual(DEFAULT_STREAM_BUFFER, { maxResponses: 16, maxBytes: 16 * 1024 * 1024 });
  const s = stream();
  for (let i = 0; i < 15; i++) assert.equal(s.accept(bytes(1)), true);
  assert.ok(s.accept(bytes(1)) instanceof Promise, 'the 16th fills the buffer');
});

test('at maxResponses the producer waits until the reader takes one', async () => {
  const s = stream({ maxResponses: 2, maxBytes: 1 << 30 });
  assert.equal(s.accept(bytes(1)), true);
  const taken = s.accept(bytes(1));
  assert.ok(taken instanceof Promise);
  let settled: boolean | undefined;
  void taken.then((room) => { settled = room; });
  const reader = s[Symbol.asyncIterator]();
  await reader.next();
  assert.equal(await taken, true);
  assert.equal(settled, true);
});

test('at maxBytes the producer waits, whatever the count', async () => {
  const s = stream({ maxResponses: 100, maxBytes: 1000 });
  assert.equal(s.accept(bytes(999)), true);
  const taken = s.accept(bytes(1));
  assert.ok(taken instanceof Promise);
  await s[Symbol.asyncIterator]().next();
  assert.equal(await taken, true);
});

test('a reader that stops releases the producer with false', async () => {
  const s = stream({ maxResponses: 1, maxBytes: 1 << 30 });
  const taken = s.accept(bytes(1));
  assert.ok(taken instanceof Promise);
  await s[Symbol.asyncIterator]().return!();
  assert.equal(await taken, false);
  assert.equal(s.accept(bytes(1)), false);
});

test('a failure releases the producer with false', async () => {
  const s = stream({ maxResponses: 1, maxBytes: 1 << 30 });
  const taken = s.accept(bytes(1));
  s.fail(serverError('CANCELLED', { model: 'm' }));
  assert.equal(await taken, false);
});

test('the final response is taken without waiting, even when the buffer is full', () => {
  const s = stream({ maxResponses: 1, maxBytes: 1 << 30 });
  assert.ok(s.accept(bytes(1)) instanceof Promise);
  assert.equal(s.accept(bytes(1, true)), true);
});
