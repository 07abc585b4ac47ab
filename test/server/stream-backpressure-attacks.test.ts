/**
 * Issue 15, class 11: a decoupled model streaming 64 KiB responses to a
 * client that does not read, over HTTP generate_stream (SSE) and gRPC
 * ModelStreamInfer. The server reads the next response from the stream only
 * when the socket takes more, and the stream holds at most
 * --stream-buffer-responses (16) / --stream-buffer-bytes (16 MiB) unread, so
 * the script's send() waits: the server's memory stays bounded (RSS_BOUND)
 * where 5,000 responses used to cost 1.3 GB. Once the client reads, the
 * script goes on to the end; once it disconnects, the waiting send()
 * answers false; a client that never reads meets the time limit, and the
 * model keeps serving.
 */
import assert from 'node:assert/strict';
import { request, type ClientRequest, type IncomingMessage } from 'node:http';
import { connect, type ClientHttp2Session, type ClientHttp2Stream } from 'node:http2';
import { after, before, describe, test } from 'node:test';
import { DECOUPLED_POLICY } from '../helpers/decoupled-fixtures.ts';
import { makeRepository, removeRepository, startBoth, type DualFixture } from '../helpers/fixture-repository.ts';
import type { Message } from '../helpers/grpc-raw-client.ts';
import { grpcType, INFERENCE_SERVICE } from '../../server/grpc/grpc-schema.ts';
import { capturingLogger, scriptConfig, within, writeScripts, type CapturingLogger } from '../helpers/script-fixtures.ts';
import { pollFor, waitForLogLine } from '../helpers/wait.ts';

const MIB = 1 << 20;
/** What a stalled stream may add to the server's memory: the 16 MiB stream buffer, socket buffers, and slack. */
const RSS_BOUND = 200 * MIB;

const FLOOD_SCRIPT = `
const chunk = 'z'.repeat(65536);
export default class {
  async execute(requests: any[], ctx: any) {
    const r = requests[0];
    const count = Number(r.parameters.count ?? 5000);
    const tag = String(r.parameters.tag ?? '');
    for (let i = 0; i < count; i++) {
      if (i % 16 === 0) ctx.log.info(tag + ' sending ' + i);
      if (!r.send({ outputs: { text_output: { shape: [1], data: [chunk] } } })) {
        ctx.log.info(tag + ' stopped: send() answered false at ' + i);
        return;
      }
    }
    ctx.log.info(tag + ' done');
  }
}
`;

const TEXT = { maxBatchSize: 0, inputs: [['text_input', 'TYPE_STRING', [1]]], outputs: [['text_output', 'TYPE_STRING', [1]]], extra: DECOUPLED_POLICY } as const;

let root: string;
let fixture: DualFixture;
let logger: CapturingLogger;

before(async () => {
  root = await makeRepository({
    flood: { config: scriptConfig({ ...TEXT, executeTimeoutMs: 60_000 }), versions: {} },
    flood_limited: { config: scriptConfig({ ...TEXT, executeTimeoutMs: 2000 }), versions: {} },
  });
  await writeScripts(root, { flood: { 1: FLOOD_SCRIPT }, flood_limited: { 1: FLOOD_SCRIPT } });
  logger = capturingLogger();
  fixture = await startBoth(root, { logger });
});
after(async () => {
  await fixture.close();
  await removeRepository(root);
});

/** Resolves with the first log line containing `text`. */
function logLine(text: string, ms = 20_000): Promise<string> {
  return waitForLogLine(logger, text, ms);
}

/**
 * Waits until the script tagged `tag` stops making progress (its last 'sending N' line unchanged for a second:
 * its send() is waiting), and answers N. The quiet second is the observation itself: a send() that waits has
 * no event of its own to wait on, so "no new line for 1 s" is how the test tells waiting from slow.
 */
function stalled(tag: string): Promise<number> {
  let last = -1;
  let since = performance.now();
  return pollFor(`'${tag}' to stall`, 30_000, () => {
    const lines = logger.lines.filter((l) => l.includes(`${tag} sending `));
    const now = lines.length === 0 ? -1 : Number(lines[lines.length - 1]!.split(' sending ')[1]);
    if (now !== last) {
      last = now;
      since = performance.now();
      return undefined;
    }
    return now >= 0 && performance.now() - since > 1000 && now;
  }, () => logger.lines.filter((l) => l.includes(tag)).join('\n'), 50);
}

/** Opens generate_stream and leaves the response unread (paused). */
function openSse(model: string, parameters: Record<string, unknown>): Promise<{ req: ClientRequest; res: IncomingMessage }> {
  const { hostname, port } = new URL(fixture.httpUrl);
  const body = JSON.stringify({ text_input: 'go', parameters });
  return new Promise((resolve, reject) => {
    const req = request({ host: hostname, port, method: 'POST', path: `/v2/models/${model}/generate_stream`, headers: { 'content-type': 'application/json' } }, (res) => {
      res.pause();
      resolve({ req, res });
    });
    req.on('error', reject);
    req.end(body);
  });
}

/** Reads the rest of a paused SSE response and counts its events. */
function readAll(res: IncomingMessage): Promise<{ events: number }> {
  return new Promise((resolve, reject) => {
    let events = 0;
    let tail = '';
    res.on('data', (chunk: Buffer) => {
      const parts = (tail + chunk.toString('latin1')).split('\n\n');
      tail = parts.pop()!;
      events += parts.length;
    });
    res.on('end', () => resolve({ events }));
    res.on('error', reject);
    res.resume();
  });
}

const rss = (): number => process.memoryUsage().rss;

/**
 * Opens ModelStreamInfer over a bare HTTP/2 stream and sends one request, leaving the answer unread: grpc-js's own
 * client keeps decoding messages whether or not they are read, so it would not show the server holding back.
 */
function openGrpc(model: string, parameters: Record<string, string>): { session: ClientHttp2Session; stream: ClientHttp2Stream } {
  const type = grpcType('inference.ModelInferRequest');
  const message: Message = {
    model_name: model, id: parameters['tag'],
    inputs: [{ name: 'text_input', datatype: 'BYTES', shape: [1], contents: { bytes_contents: [Buffer.from('go')] } }],
    parameters: Object.fromEntries(Object.entries(parameters).map(([k, v]) => [k, { string_param: v }])),
  };
  const body = Buffer.from(type.encode(type.fromObject(message)).finish());
  const frame = Buffer.alloc(5 + body.length);
  frame.writeUInt32BE(body.length, 1);
  body.copy(frame, 5);
  const session = connect(`http://${fixture.grpcAddress}`);
  session.on('error', () => {});
  const stream = session.request({
    ':method': 'POST', ':path': `/${INFERENCE_SERVICE}/ModelStreamInfer`, 'content-type': 'application/grpc', te: 'trailers',
  });
  stream.on('error', () => {});
  stream.pause();
  stream.write(frame);
  return { session, stream };
}

/** Reads the rest of a paused gRPC stream (half-closing it) and counts its length-prefixed messages. */
function readGrpc(stream: ClientHttp2Stream): Promise<{ messages: number }> {
  return new Promise((resolve, reject) => {
    let pending = Buffer.alloc(0);
    let messages = 0;
    stream.on('data', (chunk: Buffer) => {
      pending = Buffer.concat([pending, chunk]);
      while (pending.length >= 5 && pending.length >= 5 + pending.readUInt32BE(1)) {
        pending = pending.subarray(5 + pending.readUInt32BE(1));
        messages++;
      }
    });
    stream.on('end', () => resolve({ messages }));
    stream.on('error', reject);
    stream.end();
    stream.resume();
  });
}

describe('HTTP generate_stream to a client that does not read', () => {
  test('send() waits with memory bounded, and the stream completes once the client reads', async (t) => {
    const start = rss();
    const { res } = await openSse('flood', { count: 1000, tag: 'sse-resume' });
    const at = await stalled('sse-resume');
    t.diagnostic(`stalled after ${at} responses, RSS +${Math.round((rss() - start) / MIB)} MiB`);
    assert.ok(at < 1000);
    assert.ok(rss() - start < RSS_BOUND, `RSS grew by ${Math.round((rss() - start) / MIB)} MiB while paused`);
    const { events } = await within(60_000, 'the whole stream', readAll(res));
    assert.equal(events, 1000);
    await logLine('sse-resume done');
  });

  test('a client that goes away releases the waiting send() with false', async () => {
    const start = rss();
    const { req } = await openSse('flood', { tag: 'sse-gone' });
    assert.ok(await stalled('sse-gone') < 5000);
    assert.ok(rss() - start < RSS_BOUND);
    req.destroy();
    const stopped = await logLine('sse-gone stopped: send() answered false at ');
    assert.ok(Number(stopped.split(' at ')[1]) < 5000, stopped);
  });

  test('a client that never reads meets the time limit, and the model keeps serving', async () => {
    const start = rss();
    const { req } = await openSse('flood_limited', { tag: 'sse-stuck' });
    await logLine("'flood_limited' (flood_limited_0) ran past its time limit of 2000 ms in execute()", 30_000);
    assert.ok(rss() - start < RSS_BOUND, `RSS grew by ${Math.round((rss() - start) / MIB)} MiB`);
    req.destroy();
    const { res } = await openSse('flood_limited', { count: 3, tag: 'sse-next' });
    assert.equal((await readAll(res)).events, 3);
  });
});

describe('gRPC ModelStreamInfer to a client that does not read', () => {
  test('send() waits with memory bounded, and the stream completes once the client reads', async (t) => {
    const start = rss();
    const { session, stream } = openGrpc('flood', { count: '1000', tag: 'grpc-resume' });
    try {
      const at = await stalled('grpc-resume');
      t.diagnostic(`stalled after ${at} responses, RSS +${Math.round((rss() - start) / MIB)} MiB`);
      assert.ok(at < 1000);
      assert.ok(rss() - start < RSS_BOUND, `RSS grew by ${Math.round((rss() - start) / MIB)} MiB while paused`);
      const { messages } = await within(60_000, 'the whole stream', readGrpc(stream));
      assert.equal(messages, 1000);
      await logLine('grpc-resume done');
    } finally {
      session.close();
    }
  });

  test('a cancelled call releases the waiting send() with false', async () => {
    const start = rss();
    const { session, stream } = openGrpc('flood', { tag: 'grpc-gone' });
    assert.ok(await stalled('grpc-gone') < 5000);
    assert.ok(rss() - start < RSS_BOUND, `RSS grew by ${Math.round((rss() - start) / MIB)} MiB while paused`);
    stream.close(8); // NGHTTP2_CANCEL: what grpc-js sends when a call is cancelled
    session.close();
    const stopped = await logLine('grpc-gone stopped: send() answered false at ');
    assert.ok(Number(stopped.split(' at ')[1]) < 5000, stopped);
  });
});
