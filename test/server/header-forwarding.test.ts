/**
 * --http-header-forward-pattern and --grpc-header-forward-pattern end to
 * end: a script model answers its request parameters as JSON, and the
 * headers (metadata) whose names match arrive among them over HTTP infer,
 * gRPC ModelInfer and ModelStreamInfer, and through an ensemble to its step.
 * Headers that do not match, or a server without a pattern, forward
 * nothing; a reserved name fails the request with Triton's message and the
 * server keeps serving; header size stays bounded by the transports.
 */
import assert from 'node:assert/strict';
import { connect } from 'node:net';
import { after, before, describe, test } from 'node:test';
import * as grpc from '@grpc/grpc-js';
import type { FastifyInstance } from 'fastify';
import type { InferenceEngine } from '../../engine/inference-engine.ts';
import { closeGrpc, createGrpcServer, listenGrpc } from '../../server/grpc/grpc-server.ts';
import { createHttpServer } from '../../server/http/http-server.ts';
import { HeaderForwardPattern } from '../../server/header-forwarding.ts';
import { makeRepository, removeRepository, startEngine } from '../helpers/fixture-repository.ts';
import { RawGrpcClient, type Message } from '../helpers/grpc-raw-client.ts';
import { rawHttp } from '../helpers/raw-http.ts';
import { startServer } from '../../server/cli.ts';
import { parseCliOptions } from '../../server/cli-options.ts';
import { scriptConfig, writeScript } from '../helpers/script-fixtures.ts';

const PARAMS_SCRIPT = `
export default class Params {
  async execute(requests: { parameters: Record<string, unknown> }[]) {
    return requests.map((r) => ({ outputs: { PARAMS: { datatype: 'BYTES', shape: [1], data: [JSON.stringify(r.parameters)] } } }));
  }
}
`;

const ENSEMBLE = `platform: "ensemble"
max_batch_size: 0
input [ { name: "X" data_type: TYPE_INT32 dims: [ 1 ] } ]
output [ { name: "PARAMS" data_type: TYPE_STRING dims: [ 1 ] } ]
ensemble_scheduling { step [ { model_name: "params" model_version: -1
  input_map { key: "X" value: "X" } output_map { key: "PARAMS" value: "PARAMS" } } ] }
`;

/** The frontends under test, one pair per pattern, over one engine. */
const PATTERNS = { plain: 'MY_HEADER|FWD', caseSensitive: '(?-i)MY_HEADER', everything: '.*', none: undefined } as const;
type PatternName = keyof typeof PATTERNS;

let root: string;
let engine: InferenceEngine;
const http = new Map<PatternName, { app: FastifyInstance; url: string }>();
const grpcServers = new Map<PatternName, { server: grpc.Server; client: RawGrpcClient }>();

before(async () => {
  root = await makeRepository({
    params: { config: scriptConfig({ maxBatchSize: 0, inputs: [['X', 'TYPE_INT32', [1]]], outputs: [['PARAMS', 'TYPE_STRING', [1]]] }), versions: {} },
    params_ensemble: { config: ENSEMBLE, versions: { 1: null } },
  });
  await writeScript(root, 'params', 1, PARAMS_SCRIPT);
  engine = await startEngine(root);
  for (const [name, pattern] of Object.entries(PATTERNS) as Array<[PatternName, string | undefined]>) {
    const forward = pattern === undefined ? {} : { headerForwardPattern: pattern };
    const app = await createHttpServer(engine, forward);
    await app.listen({ port: 0, host: '127.0.0.1' });
    const address = app.server.address();
    http.set(name, { app, url: `http://127.0.0.1:${typeof address === 'object' && address ? address.port : 0}` });
    const server = createGrpcServer(engine, forward);
    const port = await listenGrpc(server, '127.0.0.1', 0);
    grpcServers.set(name, { server, client: new RawGrpcClient(`127.0.0.1:${port}`) });
  }
});
after(async () => {
  for (const { client } of grpcServers.values()) client.close();
  await Promise.all([...http.values()].map(({ app }) => app.close()));
  await Promise.all([...grpcServers.values()].map(({ server }) => closeGrpc(server, 1000)));
  await engine.close();
  await removeRepository(root);
});

/** POST infer on the frontend with `pattern`; resolves with the parameters the model saw, or the error. */
async function httpInfer(
  pattern: PatternName, headers: Record<string, string>, parameters: Record<string, unknown> = {}, model = 'params',
): Promise<{ status: number; params?: Record<string, unknown>; error?: string }> {
  const body = JSON.stringify({ inputs: [{ name: 'X', shape: [1], datatype: 'INT32', data: [1] }], parameters });
  const response = await rawHttp(http.get(pattern)!.url, `/v2/models/${model}/infer`, {
    method: 'POST', headers: { 'content-type': 'application/json', ...headers }, body,
  });
  const json = JSON.parse(response.body) as { outputs?: Array<{ data: string[] }>; error?: string };
  if (response.status !== 200) return { status: response.status, error: json.error! };
  return { status: 200, params: JSON.parse(json.outputs![0]!.data[0]!) as Record<string, unknown> };
}

function inferMessage(parameters: Record<string, string> = {}, id = ''): Message {
  return {
    id, model_name: 'params', inputs: [{ name: 'X', datatype: 'INT32', shape: [1], contents: { int_contents: [1] } }],
    parameters: Object.fromEntries(Object.entries(parameters).map(([k, v]) => [k, { string_param: v }])),
  };
}

/** The PARAMS output of a ModelInferResponse: one BYTES element, length-prefixed. */
function paramsOf(response: Message): Record<string, unknown> {
  const raw = response['raw_output_contents'][0] as Uint8Array;
  const bytes = Buffer.from(raw.buffer, raw.byteOffset, raw.byteLength);
  return JSON.parse(bytes.toString('utf8', 4, 4 + bytes.readUInt32LE(0))) as Record<string, unknown>;
}

function metadataOf(entries: ReadonlyArray<readonly [string, string | Buffer]>): grpc.Metadata {
  const metadata = new grpc.Metadata();
  for (const [key, value] of entries) metadata.add(key, value);
  return metadata;
}

/** Hands back only the forwarded keys the test sent (the `.*` pattern also forwards host, user-agent, ...). */
const pick = (params: Record<string, unknown> | undefined, keys: readonly string[]): Record<string, unknown> =>
  Object.fromEntries(Object.entries(params ?? {}).filter(([k]) => keys.includes(k)));

describe('the pattern', () => {
  test('matches anywhere in the name and ignores case unless it starts with (?-i); names keep their case; a later value wins', () => {
    const headers: Array<[string, string]> = [['X-My_Header-1', 'a'], ['other', 'b'], ['my_header_2', 'c'], ['my_header_2', 'd']];
    assert.deepEqual(HeaderForwardPattern.compile('MY_HEADER').parameters(headers), { 'X-My_Header-1': 'a', my_header_2: 'd' });
    assert.deepEqual(HeaderForwardPattern.compile('(?-i)MY_HEADER').parameters([...headers, ['MY_HEADER_3', 'e']]), { MY_HEADER_3: 'e' });
    assert.deepEqual(HeaderForwardPattern.compile('(?i)^my').parameters(headers), { my_header_2: 'd' });
    assert.deepEqual(HeaderForwardPattern.compile('').parameters([['a', '1']]), { a: '1' }, 'an empty pattern matches every name, as in Triton');
    assert.throws(() => HeaderForwardPattern.compile('(?s)x'), SyntaxError, 'other RE2 inline flags are refused');
  });

  test("reserved names fail with Triton's message, matched as written", () => {
    const pattern = HeaderForwardPattern.compile('.*');
    for (const name of ['sequence_id', 'sequence_start', 'sequence_end', 'priority', 'timeout', 'headers', 'binary_data_output', 'triton_anything']) {
      assert.throws(() => pattern.parameters([[name, '1']]), { message: `Header '${name}' is reserved for Triton usage and cannot be forwarded.` });
    }
    assert.deepEqual(pattern.parameters([['Priority', '1']]), { Priority: '1' }, 'Triton compares reserved names with their case');
  });
});

describe('HTTP infer', () => {
  test('matching headers become string parameters, over body parameters of the same name; others stay out', async () => {
    const quotedValue = 'This is a "quoted" string with a backslash\\';
    const got = await httpInfer('plain', {
      my_header_1: 'from header', 'My-Header-Not': 'no match (dash)', MY_HEADER_2: quotedValue, 'x-other': 'not forwarded',
    }, { my_header_1: 'from body', key1: 'value1', count: 3 });
    assert.equal(got.status, 200, got.error);
    assert.deepEqual(got.params, { key1: 'value1', count: 3, my_header_1: 'from header', MY_HEADER_2: quotedValue });
  });

  test('a header value is the bytes the client sent, read as UTF-8', async () => {
    const body = JSON.stringify({ inputs: [{ name: 'X', shape: [1], datatype: 'INT32', data: [1] }] });
    const { port } = new URL(http.get('plain')!.url);
    const answer = await new Promise<string>((resolve, reject) => {
      // Written, not ended: the server answers and closes (Connection: close); a half-closed socket would abort the request.
      const socket = connect(Number(port), '127.0.0.1', () => socket.write(Buffer.concat([
        Buffer.from('POST /v2/models/params/infer HTTP/1.1\r\nHost: x\r\nConnection: close\r\nX-Fwd-Text: '),
        Buffer.from('héllo ✓', 'utf8'), Buffer.from(`\r\nContent-Length: ${body.length}\r\n\r\n${body}`),
      ])));
      const chunks: Buffer[] = [];
      socket.on('data', (chunk: Buffer) => chunks.push(chunk));
      socket.on('end', () => resolve(Buffer.concat(chunks).toString('utf8')));
      socket.on('error', reject);
    });
    const json = JSON.parse(answer.slice(answer.indexOf('\r\n\r\n') + 4)) as { outputs: Array<{ data: string[] }> };
    assert.deepEqual(JSON.parse(json.outputs[0]!.data[0]!), { 'X-Fwd-Text': 'héllo ✓' });
  });

  test('(?-i) makes the match case-sensitive: the name as the client wrote it counts', async () => {
    const got = await httpInfer('caseSensitive', { MY_HEADER_1: 'kept', my_header_2: 'dropped' });
    assert.deepEqual(got.params, { MY_HEADER_1: 'kept' });
  });

  test('without a pattern no header is forwarded', async () => {
    const got = await httpInfer('none', { my_header_1: 'v', fwd: 'v' }, { key1: 'value1' });
    assert.deepEqual(got.params, { key1: 'value1' });
  });

  test('an ensemble passes forwarded headers on to its step, as Triton does', async () => {
    const got = await httpInfer('plain', { my_header_1: 'through the ensemble' }, { key1: 'value1' }, 'params_ensemble');
    assert.equal(got.status, 200, got.error);
    assert.deepEqual(got.params, { key1: 'value1', my_header_1: 'through the ensemble' });
  });

  test('a reserved header name is a 400 naming it, and the server keeps serving', async () => {
    for (const name of ['sequence_id', 'priority', 'triton_injected_via_header']) {
      const got = await httpInfer('everything', { [name]: '1' });
      assert.deepEqual(got, { status: 400, error: `Header '${name}' is reserved for Triton usage and cannot be forwarded.` });
    }
    const ok = await httpInfer('everything', { 'x-anything': 'v' });
    assert.equal(ok.status, 200);
    assert.equal(ok.params?.['x-anything'], 'v');
  });

  test("headers stay bounded by Node's header limit: a head past 16 KiB is a 431 before any route runs", async () => {
    const url = http.get('everything')!.url;
    const response = await rawHttp(url, '/v2/models/params/infer', { method: 'POST', headers: { 'x-big': 'a'.repeat(17 * 1024) }, body: '{}' });
    assert.equal(response.status, 431);
    assert.equal((await httpInfer('everything', {})).status, 200, 'the server keeps serving');
  });
});

describe('gRPC', () => {
  test('ModelInfer: matching metadata becomes string parameters over the message\'s own; -bin values are their bytes up to a NUL', async () => {
    const { client } = grpcServers.get('plain')!;
    const metadata = metadataOf([
      ['my_header_1', 'from metadata'], ['my_header_2', 'first'], ['my_header_2', 'second'], ['x-fwd-bin', Buffer.from('bin\u0000tail')],
      ['x-other', 'not forwarded'],
    ]);
    const { response, error } = await client.call('ModelInfer', inferMessage({ my_header_1: 'from message', key1: 'value1' }), {}, metadata);
    assert.equal(error, undefined, error?.details);
    // grpc-js sends a repeated key as one header, its values joined with ', ', which is what any server then reads.
    assert.deepEqual(paramsOf(response!), { key1: 'value1', my_header_1: 'from metadata', my_header_2: 'first, second', 'x-fwd-bin': 'bin' });
  });

  test('(?-i): gRPC metadata keys are lower case on the wire, so an upper-case pattern forwards nothing (Triton\'s case-sensitive test)', async () => {
    const { client } = grpcServers.get('caseSensitive')!;
    const { response } = await client.call('ModelInfer', inferMessage(), {}, metadataOf([['MY_HEADER_1', 'v'], ['my_header_2', 'v']]));
    assert.deepEqual(paramsOf(response!), {});
  });

  test('without a pattern no metadata is forwarded', async () => {
    const { client } = grpcServers.get('none')!;
    const { response } = await client.call('ModelInfer', inferMessage({ key1: 'value1' }), {}, metadataOf([['my_header_1', 'v']]));
    assert.deepEqual(paramsOf(response!), { key1: 'value1' });
  });

  test('ModelStreamInfer: the stream\'s metadata reaches every request on it', async () => {
    const { client } = grpcServers.get('plain')!;
    const stream = client.stream({}, metadataOf([['my_header_1', 'stream']]));
    const received: Message[] = [];
    const done = new Promise<void>((resolve, reject) => {
      stream.on('data', (m: Message) => received.push(m));
      stream.on('end', resolve);
      stream.on('error', reject);
    });
    stream.write(inferMessage({ n: '1' }, 'a'));
    stream.write(inferMessage({ n: '2' }, 'b'));
    stream.end();
    await done;
    assert.deepEqual(received.map((m) => [m['error_message'], paramsOf(m['infer_response'])]),
      [['', { n: '1', my_header_1: 'stream' }], ['', { n: '2', my_header_1: 'stream' }]]);
  });

  test('a reserved key is INVALID_ARGUMENT (a stream\'s error_message) naming it, and the server keeps serving', async () => {
    const { client } = grpcServers.get('everything')!;
    const { error } = await client.call('ModelInfer', inferMessage(), {}, metadataOf([['triton_x', '1']]));
    assert.equal(error?.code, grpc.status.INVALID_ARGUMENT);
    assert.equal(error?.details, "Header 'triton_x' is reserved for Triton usage and cannot be forwarded.");
    const stream = client.stream({}, metadataOf([['timeout', '5']]));
    const replies: Message[] = [];
    await new Promise<void>((resolve, reject) => {
      stream.on('data', (m: Message) => replies.push(m));
      stream.on('end', resolve);
      stream.on('error', reject);
      stream.write(inferMessage({}, 'r1'));
      stream.end();
    });
    assert.deepEqual(replies.map((m) => [m['error_message'], m['infer_response']?.['id']]),
      [["Header 'timeout' is reserved for Triton usage and cannot be forwarded.", 'r1']]);
    const ok = await client.call('ModelInfer', inferMessage(), {}, metadataOf([['x-anything', 'v']]));
    assert.equal(pick(paramsOf(ok.response!), ['x-anything'])['x-anything'], 'v');
  });

  test('metadata stays bounded by the HTTP/2 layer: a 1 MiB header block resets the call before any handler, and the server keeps serving', async () => {
    const { client } = grpcServers.get('everything')!;
    const { error } = await client.call('ModelInfer', inferMessage(), {}, metadataOf([['x-big', 'a'.repeat(1024 * 1024)]]));
    assert.equal(error?.code, grpc.status.INTERNAL);
    assert.match(error?.details ?? '', /RST_STREAM/);
    assert.equal((await client.call('ModelInfer', inferMessage({ key1: 'v' }))).error, undefined);
  });
});

test('from the command line: both flags reach their frontends', async () => {
  const running = await startServer(parseCliOptions([
    `--model-repository=${root}`, '--http-port=0', '--http-address=127.0.0.1', '--grpc-port=0', '--grpc-address=127.0.0.1',
    '--allow-metrics=false', '--log-info=false', '--http-header-forward-pattern=^x-h', '--grpc-header-forward-pattern=^x-g',
  ]));
  const client = new RawGrpcClient(`127.0.0.1:${running.grpcPort}`);
  try {
    const body = JSON.stringify({ inputs: [{ name: 'X', shape: [1], datatype: 'INT32', data: [1] }] });
    const response = await rawHttp(`http://127.0.0.1:${running.httpPort}`, '/v2/models/params/infer', {
      method: 'POST', headers: { 'X-H-One': 'http', 'x-g-two': 'not over http' }, body,
    });
    assert.deepEqual(JSON.parse((JSON.parse(response.body) as { outputs: Array<{ data: string[] }> }).outputs[0]!.data[0]!), { 'X-H-One': 'http' });
    const { response: reply } = await client.call('ModelInfer', inferMessage(), {}, metadataOf([['x-g-two', 'grpc'], ['x-h-one', 'not over grpc']]));
    assert.deepEqual(paramsOf(reply!), { 'x-g-two': 'grpc' });
  } finally {
    client.close();
    await running.close();
  }
});
