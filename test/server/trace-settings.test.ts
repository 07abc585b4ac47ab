/**
 * Triton's trace settings over real HTTP and gRPC ports: GET and POST
 * /v2/trace/setting and /v2/models/<m>/trace/setting, and the TraceSetting
 * RPC. The default and command-line settings as Triton shows them, partial
 * updates, a model's own setting layered over the global one (the sequence
 * of Triton's qa/L0_trace test_http_clear_settings), and every refusal with
 * Triton's text and status or code, after which nothing has changed and the
 * server still serves inference.
 */
import assert from 'node:assert/strict';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, beforeEach, describe, test } from 'node:test';
import * as grpc from '@grpc/grpc-js';
import type { TraceSettingsView } from '../../engine/observability/trace/trace-settings.ts';
import { makeRepository, removeRepository, startBoth, type DualFixture } from '../helpers/fixture-repository.ts';
import { RawGrpcClient, type Message } from '../helpers/grpc-raw-client.ts';
import { EchoBackend, testModelConfig, withTestBackends } from '../helpers/test-backends.ts';
import { rawHttp } from '../helpers/raw-http.ts';

const IO = 'input [ { name: "IN" data_type: TYPE_FP32 dims: [ 4 ] } ]\noutput [ { name: "OUT" data_type: TYPE_FP32 dims: [ 4 ] } ]';
const DEFAULT_JSON = '{"trace_level":["OFF"],"trace_rate":"1000","trace_count":"-1","log_frequency":"0","trace_file":"","trace_mode":"triton"}';

/** Settings in one form for both protocols: every value a list, as gRPC sends them. */
type Lists = Record<string, string[]>;

const asLists = (view: Record<string, unknown>): Lists =>
  Object.fromEntries(Object.entries(view).map(([k, v]) => [k, Array.isArray(v) ? v.map(String) : [String(v)]]));

const fromGrpc = (response: Message): Lists =>
  Object.fromEntries(Object.entries(response['settings'] as Record<string, Message>).map(([k, v]) => [k, [...(v['value'] as string[])]]));

/** Changes as an HTTP body would give them: null clears, a list for trace_level, a string for the rest. */
type Changes = Record<string, string | string[] | null>;

/** The same changes as TraceSetting's map: null is an empty list, a string a list of one. */
const grpcSettings = (changes: Changes): Message =>
  Object.fromEntries(Object.entries(changes).map(([k, v]) => [k, { value: v === null ? [] : Array.isArray(v) ? v : [v] }]));

async function repository(): Promise<string> {
  return makeRepository({
    echo: { config: testModelConfig('echo', 'test_echo', 4, IO), versions: { 1: null } },
    other: { config: testModelConfig('other', 'test_echo', 4, IO), versions: { 1: null } },
    broken: { config: 'name: "broken"\nplatform: "onnxruntime_onnx"\n', versions: { 1: new Uint8Array([7]) } },
  });
}

/** One protocol's view of the settings endpoints: answers the settings as lists, or the refusal. */
interface Protocol {
  readonly name: 'HTTP' | 'gRPC';
  get(model?: string): Promise<Lists>;
  set(changes: Changes, model?: string): Promise<Lists>;
}

function protocols(fixture: () => DualFixture, client: () => RawGrpcClient): Protocol[] {
  const path = (model?: string) => (model === undefined ? '/v2/trace/setting' : `/v2/models/${model}/trace/setting`);
  const http = async (method: 'GET' | 'POST', model?: string, body?: string): Promise<Lists> => {
    const res = await fetch(`${fixture().httpUrl}${path(model)}`, { method, ...(body === undefined ? {} : { body }) });
    const json = await res.json() as Record<string, unknown>;
    assert.equal(res.status, 200, `${method} ${path(model)}: ${JSON.stringify(json)}`);
    return asLists(json);
  };
  const rpc = async (settings: Message, model?: string): Promise<Lists> => {
    const { response, error } = await client().call('TraceSetting', { settings, model_name: model ?? '' });
    assert.equal(error, undefined, `TraceSetting ${model ?? ''}: ${error?.details}`);
    return fromGrpc(response!);
  };
  return [
    { name: 'HTTP', get: (model) => http('GET', model), set: (changes, model) => http('POST', model, JSON.stringify(changes)) },
    { name: 'gRPC', get: (model) => rpc({}, model), set: (changes, model) => rpc(grpcSettings(changes), model) },
  ];
}

const INFER_BODY = JSON.stringify({ inputs: [{ name: 'IN', datatype: 'FP32', shape: [1, 4], data: [1, 2, 3, 4] }] });
const INFER_MESSAGE: Message = { model_name: 'echo', inputs: [{ name: 'IN', datatype: 'FP32', shape: [1, 4], contents: { fp32_contents: [1, 2, 3, 4] } }] };

/** The server still answers inference over both protocols. */
async function assertServes(fixture: DualFixture, client: RawGrpcClient, what: string): Promise<void> {
  const res = await fetch(`${fixture.httpUrl}/v2/models/echo/infer`, { method: 'POST', body: INFER_BODY });
  assert.equal(res.status, 200, `HTTP infer after ${what}: ${await res.text()}`);
  const { error } = await client.call('ModelInfer', INFER_MESSAGE);
  assert.equal(error, undefined, `gRPC infer after ${what}: ${error?.details}`);
}

describe('trace settings with no trace flags', () => {
  let root: string;
  let fixture: DualFixture;
  let client: RawGrpcClient;

  before(async () => {
    root = await repository();
    fixture = await startBoth(root, { backends: withTestBackends(new EchoBackend()) });
    client = new RawGrpcClient(fixture.grpcAddress);
  });
  after(async () => {
    client.close();
    await fixture?.close();
    if (root) await removeRepository(root);
  });

  test('GET answers Triton\'s defaults as compact JSON, globally and for a model', async () => {
    for (const path of ['/v2/trace/setting', '/v2/models/echo/trace/setting']) {
      const res = await fetch(`${fixture.httpUrl}${path}`);
      assert.equal(res.status, 200, path);
      assert.match(res.headers.get('content-type') ?? '', /^application\/json/, path);
      assert.equal(await res.text(), DEFAULT_JSON, path);
    }
  });

  test('TraceSetting with no settings answers the defaults, each value a list', async () => {
    const expected = asLists(JSON.parse(DEFAULT_JSON) as TraceSettingsView);
    for (const model_name of ['', 'echo']) {
      const { response, error } = await client.call('TraceSetting', { model_name });
      assert.equal(error, undefined);
      assert.deepEqual(fromGrpc(response!), expected, model_name);
    }
  });

  test('a level with no trace file is refused with Triton\'s reason, and nothing changes', async () => {
    const message = 'Attempting to set invalid trace setting :trace file name is not given';
    for (const path of ['/v2/trace/setting', '/v2/models/echo/trace/setting']) {
      const res = await fetch(`${fixture.httpUrl}${path}`, { method: 'POST', body: '{"trace_level":["TIMESTAMPS"]}' });
      assert.equal(res.status, 400, path);
      assert.deepEqual(await res.json(), { error: message }, path);
    }
    for (const model_name of ['', 'echo']) {
      const { error } = await client.call('TraceSetting', { model_name, settings: grpcSettings({ trace_level: ['TIMESTAMPS'] }) });
      assert.equal(error?.code, grpc.status.INVALID_ARGUMENT, model_name);
      assert.equal(error.details, message, model_name);
    }
    assert.equal(await (await fetch(`${fixture.httpUrl}/v2/trace/setting`)).text(), DEFAULT_JSON);
    // Only the level needs a file: a rate alone is taken, as level stays OFF.
    const res = await fetch(`${fixture.httpUrl}/v2/trace/setting`, { method: 'POST', body: '{"trace_rate":"5"}' });
    assert.equal(await res.text(), DEFAULT_JSON.replace('"1000"', '"5"'));
    await assertServes(fixture, client, 'the refusals');
  });
});

describe('trace settings with a trace file, level TIMESTAMPS and rate 1 at start', () => {
  let root: string;
  let dir: string;
  let file: string;
  let fixture: DualFixture;
  let client: RawGrpcClient;
  let global: Lists;

  before(async () => {
    root = await repository();
    dir = await mkdtemp(join(tmpdir(), 'switchyard-trace-'));
    file = join(dir, 'global_unittest.log');
    fixture = await startBoth(root, {
      backends: withTestBackends(new EchoBackend()),
      trace: { mode: 'triton', values: { level: ['TIMESTAMPS'], rate: 1, count: -1, logFrequency: 0, file }, modeSettings: [] },
    });
    client = new RawGrpcClient(fixture.grpcAddress);
    global = asLists({ trace_level: ['TIMESTAMPS'], trace_rate: '1', trace_count: '-1', log_frequency: '0', trace_file: file, trace_mode: 'triton' });
  });
  after(async () => {
    client.close();
    await fixture?.close();
    if (root) await removeRepository(root);
    if (dir) await rm(dir, { recursive: true, force: true });
  });

  /** Every field back to the command line's, and no model setting left, so the tests do not depend on each other. */
  beforeEach(() => {
    const clear = new Map([['trace_level', null], ['trace_rate', null], ['trace_count', null], ['log_frequency', null]]);
    for (const model of ['echo', 'other']) fixture.engine.tracer.settings.update(model, clear, 'http');
    fixture.engine.tracer.settings.update(undefined, clear, 'http');
  });

  const both = protocols(() => fixture, () => client);

  test('GET answers the command line\'s settings in Triton\'s order, globally and for a model without its own', async () => {
    const expected = JSON.stringify({ trace_level: ['TIMESTAMPS'], trace_rate: '1', trace_count: '-1', log_frequency: '0', trace_file: file, trace_mode: 'triton' });
    for (const path of ['/v2/trace/setting', '/v2/models/echo/trace/setting']) {
      assert.equal(await (await fetch(`${fixture.httpUrl}${path}`)).text(), expected, path);
    }
    for (const p of both) {
      assert.deepEqual(await p.get(), global, p.name);
      assert.deepEqual(await p.get('echo'), global, p.name);
    }
  });

  for (const p of protocols(() => fixture, () => client)) {
    test(`${p.name}: a partial update changes only its keys; unknown keys and an empty update change nothing`, async () => {
      assert.deepEqual(await p.set({ trace_count: '5', trace_level: ['TENSORS', 'TIMESTAMPS'] }),
        { ...global, trace_count: ['5'], trace_level: ['TIMESTAMPS', 'TENSORS'] });
      assert.deepEqual(await p.set({ trace_rate: '3' }), { ...global, trace_count: ['5'], trace_level: ['TIMESTAMPS', 'TENSORS'], trace_rate: ['3'] });
      assert.deepEqual(await p.set({ trace_mode: 'opentelemetry', url: 'x', trace_level: ['NOPE'] }),
        { ...global, trace_count: ['5'], trace_level: ['TIMESTAMPS', 'TENSORS'], trace_rate: ['3'] }, 'unknown keys and level names are ignored');
      assert.deepEqual(await p.get(), { ...global, trace_count: ['5'], trace_level: ['TIMESTAMPS', 'TENSORS'], trace_rate: ['3'] });
      assert.deepEqual(await p.get('echo'), await p.get(), 'a model without a setting of its own shows the global one');
    });

    test(`${p.name}: a model's setting mirrors the global one field by field, and null hands a field back (qa test_http_clear_settings)`, async () => {
      const model = await p.set({ trace_rate: '12', log_frequency: '34' }, 'echo');
      assert.deepEqual(model, { ...global, trace_rate: ['12'], log_frequency: ['34'] }, 'the fields not given come from the global setting');
      assert.deepEqual(await p.get('other'), global, 'other models keep the global setting');
      assert.deepEqual(await p.set({ trace_level: ['OFF'] }), { ...global, trace_level: ['OFF'] });
      assert.deepEqual(await p.get('echo'), { ...global, trace_level: ['OFF'], trace_rate: ['12'], log_frequency: ['34'] },
        'a global change reaches the fields the model mirrors, and only those');
      assert.deepEqual(await p.set({ trace_rate: null, trace_count: null }), { ...global, trace_level: ['OFF'] },
        'cleared global fields go back to the command line\'s');
      assert.deepEqual(await p.set({ trace_rate: null, trace_level: null }, 'echo'), { ...global, trace_level: ['OFF'], log_frequency: ['34'] },
        'cleared model fields mirror the global setting again');
      assert.deepEqual(await p.set({ trace_count: '7' }), { ...global, trace_level: ['OFF'], trace_count: ['7'] });
      assert.deepEqual(await p.get('echo'), { ...global, trace_level: ['OFF'], trace_count: ['7'], log_frequency: ['34'] });
      assert.deepEqual(await p.set({ log_frequency: null }, 'echo'), { ...global, trace_level: ['OFF'], trace_count: ['7'] },
        'with no field of its own left, the model answers the global setting');
      assert.deepEqual(await p.set({ trace_rate: '9' }), { ...global, trace_level: ['OFF'], trace_count: ['7'], trace_rate: ['9'] });
      assert.deepEqual(await p.get('echo'), await p.get(), 'and follows it from then on');
    });
  }

  test('HTTP and gRPC change the same settings', async () => {
    const [http, rpc] = both;
    await http!.set({ trace_rate: '4' }, 'echo');
    assert.deepEqual(await rpc!.get('echo'), { ...global, trace_rate: ['4'] });
    await rpc!.set({ trace_rate: null }, 'echo');
    assert.deepEqual(await http!.get('echo'), global, 'an empty gRPC value list clears the field');
  });

  /** A refused update: HTTP body or gRPC settings (undefined where that protocol cannot send it), then the answers. */
  interface Refusal {
    readonly what: string;
    readonly body?: string;
    readonly settings?: Message;
    readonly status: number;
    readonly code: grpc.status;
    readonly message: string;
    /** gRPC's text where it differs. */
    readonly grpcMessage?: string;
  }

  const FILE_FIXED = 'trace file location can not be updated through network protocol';
  const refusals: readonly Refusal[] = [
    { what: 'trace_file', body: '{"trace_file":"other.log"}', settings: grpcSettings({ trace_file: 'other.log' }), status: 501, code: grpc.status.UNIMPLEMENTED, message: FILE_FIXED },
    { what: 'trace_file null', body: '{"trace_file":null}', settings: grpcSettings({ trace_file: null }), status: 501, code: grpc.status.UNIMPLEMENTED, message: FILE_FIXED },
    { what: 'trace_file before a bad level', body: '{"trace_level":5,"trace_file":"x"}', settings: grpcSettings({ trace_level: ['OFF', 'TENSORS'], trace_file: 'x' }), status: 501, code: grpc.status.UNIMPLEMENTED, message: FILE_FIXED },
    { what: 'OFF with another level', body: '{"trace_level":["OFF","TIMESTAMPS"]}', settings: grpcSettings({ trace_level: ['OFF', 'TIMESTAMPS'] }), status: 400, code: grpc.status.INVALID_ARGUMENT, message: "Expect only one trace level 'OFF' is specified" },
    { what: 'a non-numeric rate', body: '{"trace_rate":"abc"}', settings: grpcSettings({ trace_rate: 'abc' }), status: 400, code: grpc.status.INVALID_ARGUMENT, message: "Unable to parse 'trace_rate', got: abc" },
    { what: 'a rate out of range', body: '{"trace_rate":"4294967296"}', settings: grpcSettings({ trace_rate: '4294967296' }), status: 400, code: grpc.status.INVALID_ARGUMENT, message: "Unable to parse 'trace_rate', value is out of range [ 0, 4294967295 ], got: 4294967296" },
    { what: 'a count below -1', body: '{"trace_count":"-2"}', settings: grpcSettings({ trace_count: '-2' }), status: 400, code: grpc.status.INVALID_ARGUMENT, message: "Unable to parse 'trace_count'. Expecting value >= -1, got:-2", grpcMessage: "Unable to parse 'trace_count'. Expecting value >= -1, got: -2" },
    { what: 'a count out of range', body: '{"trace_count":"2147483648"}', settings: grpcSettings({ trace_count: '2147483648' }), status: 400, code: grpc.status.INVALID_ARGUMENT, message: "Unable to parse 'trace_count', value is out of range [ -1, 2147483647 ], got: 2147483648" },
    { what: 'a non-numeric log_frequency', body: '{"log_frequency":"often"}', settings: grpcSettings({ log_frequency: 'often' }), status: 400, code: grpc.status.INVALID_ARGUMENT, message: "Unable to parse 'log_frequency', got: often" },
    { what: 'a zero rate', body: '{"trace_rate":"0"}', settings: grpcSettings({ trace_rate: '0' }), status: 400, code: grpc.status.INVALID_ARGUMENT, message: 'Attempting to set invalid trace setting :sample rate must be non-zero' },
    { what: 'a zero count', body: '{"trace_count":"0"}', settings: grpcSettings({ trace_count: '0' }), status: 400, code: grpc.status.INVALID_ARGUMENT, message: 'Attempting to set invalid trace setting :' },
    { what: 'a number for the rate', body: '{"trace_rate":5}', status: 500, code: grpc.status.INTERNAL, message: 'attempt to access JSON non-string as string' },
    { what: 'a number for log_frequency', body: '{"log_frequency":2}', status: 500, code: grpc.status.INTERNAL, message: 'attempt to access JSON non-string as string' },
    { what: 'a string for the level', body: '{"trace_level":"TIMESTAMPS"}', status: 500, code: grpc.status.INTERNAL, message: 'attempt to access JSON non-array as array' },
    { what: 'a number in the level', body: '{"trace_level":["TIMESTAMPS",1]}', status: 500, code: grpc.status.INTERNAL, message: 'attempt to access JSON non-string as string' },
    { what: 'a bad rate before a count of the wrong type (keys are read in order)', body: '{"trace_count":5,"trace_rate":"abc"}', settings: { trace_rate: { value: ['abc'] }, trace_count: { value: ['1', '2'] } }, status: 400, code: grpc.status.INVALID_ARGUMENT, message: "Unable to parse 'trace_rate', got: abc" },
    { what: 'a count of the wrong type before a bad log_frequency', body: '{"log_frequency":"x","trace_count":[]}', settings: { trace_count: { value: ['1', '2'] }, log_frequency: { value: ['x'] } }, status: 500, code: grpc.status.INVALID_ARGUMENT, message: 'attempt to access JSON non-string as string', grpcMessage: "expect only 1 value for 'trace_count'" },
    { what: 'two rates', settings: { trace_rate: { value: ['1', '2'] } }, status: 0, code: grpc.status.INVALID_ARGUMENT, message: "expect only 1 value for 'trace_rate'" },
    { what: 'two log frequencies', settings: { log_frequency: { value: ['1', '2'] } }, status: 0, code: grpc.status.INVALID_ARGUMENT, message: "expect only 1 value for 'log_frequency'" },
  ];

  for (const model of [undefined, 'echo']) {
    test(`each bad value is refused with Triton's text and status or code, and changes nothing (${model ?? 'global'})`, async () => {
      await both[0]!.set({ trace_rate: '3' }, model);
      const before = await both[0]!.get(model);
      const path = model === undefined ? '/v2/trace/setting' : `/v2/models/${model}/trace/setting`;
      for (const r of refusals) {
        if (r.body !== undefined) {
          const res = await rawHttp(fixture.httpUrl, path, { method: 'POST', body: r.body });
          assert.equal(res.status, r.status, `HTTP ${r.what}: ${res.body}`);
          assert.equal(res.body, JSON.stringify({ error: r.message }), `HTTP ${r.what}`);
          assert.match(String(res.headers['content-type']), /^application\/json/);
        }
        if (r.settings !== undefined) {
          const { error } = await client.call('TraceSetting', { settings: r.settings, model_name: model ?? '' });
          assert.equal(error?.code, r.code, `gRPC ${r.what}: ${error?.details}`);
          assert.equal(error.details, r.grpcMessage ?? r.message, `gRPC ${r.what}`);
        }
        for (const p of both) assert.deepEqual(await p.get(model), before, `${p.name}: nothing changed after ${r.what}`);
      }
      await assertServes(fixture, client, 'the refusals');
    });
  }

  test('malformed and non-object bodies get 400 with our JSON error text; an empty body changes nothing', async () => {
    for (const [body, words] of [['{"trace_rate":', /^failed to parse the request JSON buffer: /], ['[1]', /the trace settings must be a JSON object/]] as const) {
      const res = await rawHttp(fixture.httpUrl, '/v2/trace/setting', { method: 'POST', body });
      assert.equal(res.status, 400, body);
      assert.match((JSON.parse(res.body) as { error: string }).error, words, body);
    }
    const res = await rawHttp(fixture.httpUrl, '/v2/trace/setting', { method: 'POST', body: '' });
    assert.equal(res.status, 200);
    assert.deepEqual(asLists(JSON.parse(res.body) as Record<string, unknown>), global);
    await assertServes(fixture, client, 'bad bodies');
  });

  test('an unknown model is 404 / NOT_FOUND, a model that is not ready 400 / INVALID_ARGUMENT, in Triton\'s words', async () => {
    const cases = [
      ['nope', 404, grpc.status.NOT_FOUND, "Request for unknown model: 'nope' is not found"],
      ['broken', 400, grpc.status.INVALID_ARGUMENT, 'Request for unknown model : broken'],
    ] as const;
    for (const [model, status, code, message] of cases) {
      for (const method of ['GET', 'POST']) {
        // The model is checked before the body: even a trace_file change gets the model's error.
        const res = await rawHttp(fixture.httpUrl, `/v2/models/${model}/trace/setting`, { method, ...(method === 'POST' ? { body: '{"trace_file":"x"}' } : {}) });
        assert.equal(res.status, status, `${method} ${model}`);
        assert.equal(res.body, JSON.stringify({ error: message }), `${method} ${model}`);
      }
      for (const settings of [{}, grpcSettings({ trace_file: 'x' })]) {
        const { error } = await client.call('TraceSetting', { model_name: model, settings });
        assert.equal(error?.code, code, model);
        assert.equal(error.details, message, model);
      }
    }
    await assertServes(fixture, client, 'unknown models');
  });

  test('a model name that could leave the repository is refused; the routes take no version, and only GET and POST', async () => {
    const bad = await rawHttp(fixture.httpUrl, '/v2/models/a%5Cb/trace/setting', {});
    assert.equal(bad.status, 400);
    assert.match(bad.body, /invalid model name/);
    const { error } = await client.call('TraceSetting', { model_name: '../echo' });
    assert.equal(error?.code, grpc.status.INVALID_ARGUMENT);
    assert.match(error.details, /invalid model name/);
    assert.equal((await rawHttp(fixture.httpUrl, '/v2/models/echo/versions/1/trace/setting', {})).status, 404);
    assert.equal((await rawHttp(fixture.httpUrl, '/v2/trace/setting', { method: 'PUT', body: '{}' })).status, 405);
    await assertServes(fixture, client, 'bad paths');
  });
});
