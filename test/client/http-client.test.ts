/**
 * The client over HTTP against a real Switchyard server: the common suite in
 * binary and JSON modes, then what only HTTP has: HTTP statuses on errors,
 * messages identical to the raw response, and no streaming.
 */
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { InferenceClient, InferenceServerError, tensor } from '../../client/index.ts';
import { startClientFixture, type ClientFixture } from './client-fixture.ts';
import { describeTransport } from './transport-suite.ts';

describeTransport('HTTP, binary tensors', (f) => ({ url: f.httpUrl }));
describeTransport('HTTP, JSON tensors', (f) => ({ url: f.httpUrl.replace('http://', ''), binary: false }));

describe('HTTP specifics', () => {
  let fixture: ClientFixture;
  let client: InferenceClient;

  before(async () => {
    fixture = await startClientFixture();
    client = new InferenceClient({ url: fixture.httpUrl });
  });

  after(async () => {
    client?.close();
    await fixture?.cleanup();
  });

  test('the protocol follows the URL', () => {
    assert.equal(client.protocol, 'http');
    assert.equal(new InferenceClient({ url: 'localhost:8000' }).protocol, 'http');
    assert.throws(() => new InferenceClient({ url: 'grpc://localhost:8001', protocol: 'http' }), TypeError);
    assert.throws(() => new InferenceClient({ url: 'ftp://localhost' }), /unsupported scheme/);
  });

  test('an error\'s message is the server\'s "error" text verbatim, with the HTTP status', async () => {
    const response = await fetch(`${fixture.httpUrl}/v2/models/add_sub/infer`, {
      method: 'POST', body: JSON.stringify({ inputs: [{ name: 'INPUT0', datatype: 'INT32', shape: [1, 3], data: [1, 2, 3] }] }),
    });
    const raw = (await response.json()) as { error: string };
    const err = await client.infer('add_sub', [tensor('INPUT0', 'INT32', [1, 3], [1, 2, 3])]).catch((e: unknown) => e);
    assert.ok(err instanceof InferenceServerError);
    assert.equal(err.message, raw.error);
    assert.equal(err.httpStatus, response.status);
    assert.equal(err.httpStatus, 400);
    assert.equal(err.code, 'INVALID_ARGUMENT');
    assert.equal(err.grpcCode, undefined);

    const missing = await client.modelMetadata('nope').catch((e: unknown) => e);
    assert.ok(missing instanceof InferenceServerError);
    assert.deepEqual([missing.code, missing.httpStatus], ['NOT_FOUND', 404]);
  });

  test('streamInfer is gRPC only', () => {
    assert.throws(() => client.streamInfer(), (err: unknown) =>
      err instanceof InferenceServerError && err.code === 'UNIMPLEMENTED' && err.message.includes('grpc://'));
  });

  test('a server that is not there is UNAVAILABLE', async () => {
    const closed = new InferenceClient({ url: '127.0.0.1:1' });
    await assert.rejects(closed.isServerLive(), (err: unknown) =>
      err instanceof InferenceServerError && err.code === 'UNAVAILABLE' && /ECONNREFUSED/.test(err.message));
    closed.close();
  });

  test('concurrent requests on the keep-alive pool each get their own answer', async () => {
    const results = await Promise.all(Array.from({ length: 24 }, async (_, k) => {
      const a = new Int32Array(16).fill(k);
      const r = await client.infer('add_sub', [tensor('INPUT0', 'INT32', [1, 16], a), tensor('INPUT1', 'INT32', [1, 16], a)], { id: `c${k}` });
      return [r.id, r.output('OUTPUT0').numbers()[0]];
    }));
    assert.deepEqual(results, Array.from({ length: 24 }, (_, k) => [`c${k}`, 2 * k]));
  });
});
