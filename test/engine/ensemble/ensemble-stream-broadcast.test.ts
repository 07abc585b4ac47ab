/**
 * Beyond Triton (#7275): in a decoupled ensemble, a step after the
 * decoupled one may also read tensors from before it (the request's inputs,
 * or what a step computed from them); each streamed response runs the step
 * once with those tensors broadcast to it. Over the engine, HTTP
 * generate_stream and gRPC ModelStreamInfer; a slow step before the
 * decoupled one holds the streamed steps until its tensor arrives; two
 * decoupled steps side by side still cannot be read together, and the load
 * says so at the step's line.
 */
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import type { StreamedResponse } from '../../../engine/inference-response.ts';
import { MAX_WAITING_SCOPES } from '../../../engine/ensemble/ensemble-stream-run.ts';
import { DECOUPLED_POLICY, STREAMER_SCRIPT } from '../../helpers/decoupled-fixtures.ts';
import { makeRepository, removeRepository, startBoth, startEngine, type DualFixture } from '../../helpers/fixture-repository.ts';
import { events, grpcChunks, streamOverGrpc } from '../../helpers/generate-stream.ts';
import { RawGrpcClient, strings } from '../../helpers/grpc-raw-client.ts';
import { bytesTensor, fixedTensor, scriptConfig, stringsOf, within, writeScripts } from '../../helpers/script-fixtures.ts';
import { SlowBackend, testModelConfig, withTestBackends } from '../../helpers/test-backends.ts';

/** text_output: text_input repeated COUNT times, joined by '|'. */
const REPEAT_SCRIPT = `export default class {
  execute(requests: any[]) {
    return requests.map((r) => {
      const text: string = r.inputs.text_input.data[0];
      const count = r.inputs.COUNT.data[0];
      return { outputs: { text_output: { shape: [1], data: [Array.from({ length: count }, () => text).join('|')] } } };
    });
  }
}
`;

const STREAMER = scriptConfig({ maxBatchSize: 0, inputs: [['text_input', 'TYPE_STRING', [1]]], outputs: [['text_output', 'TYPE_STRING', [1]]], executeTimeoutMs: 20_000, extra: DECOUPLED_POLICY });
const REPEAT = scriptConfig({ maxBatchSize: 0, inputs: [['text_input', 'TYPE_STRING', [1]], ['COUNT', 'TYPE_INT32', [1]]], outputs: [['text_output', 'TYPE_STRING', [1]]] });
const GATE = testModelConfig('gate', 'test_slow', 0, 'input [ { name: "N" data_type: TYPE_INT32 dims: [ 1 ] } ]\noutput [ { name: "M" data_type: TYPE_INT32 dims: [ 1 ] } ]');

/** streamer's tokens, each repeated COUNT times, where COUNT passes the gate first (before the stream, and beside it). */
const BROADCAST = `platform: "ensemble"
max_batch_size: 0
input [ { name: "TEXT" data_type: TYPE_STRING dims: [ 1 ] }, { name: "COUNT" data_type: TYPE_INT32 dims: [ 1 ] } ]
output [ { name: "OUT" data_type: TYPE_STRING dims: [ 1 ] }, { name: "GATED" data_type: TYPE_INT32 dims: [ 1 ] } ]
ensemble_scheduling { step [
  { model_name: "streamer" model_version: -1 input_map { key: "text_input" value: "TEXT" } output_map { key: "text_output" value: "token" } },
  { model_name: "gate" model_version: -1 input_map { key: "N" value: "COUNT" } output_map { key: "M" value: "GATED" } },
  { model_name: "repeat" model_version: -1 input_map { key: "text_input" value: "token" } input_map { key: "COUNT" value: "GATED" } output_map { key: "text_output" value: "OUT" } }
] }
`;

/** The same, reading the request's COUNT straight, with no gate. */
const DIRECT = BROADCAST.replace(/\{ model_name: "gate"[^\n]*\n/, '').replace('input_map { key: "COUNT" value: "GATED" }', 'input_map { key: "COUNT" value: "COUNT" }')
  .replace(', { name: "GATED" data_type: TYPE_INT32 dims: [ 1 ] }', '');

let root: string;
let fixture: DualFixture;
let grpc: RawGrpcClient;
const gate = new SlowBackend();

before(async () => {
  root = await makeRepository({
    streamer: { config: STREAMER, versions: {} },
    repeat: { config: REPEAT, versions: {} },
    gate: { config: GATE, versions: { 1: null } },
    broadcast: { config: BROADCAST, versions: { 1: null } },
    direct: { config: DIRECT, versions: { 1: null } },
  });
  await writeScripts(root, { streamer: { 1: STREAMER_SCRIPT }, repeat: { 1: REPEAT_SCRIPT } });
  fixture = await startBoth(root, { backends: withTestBackends(gate) });
  grpc = new RawGrpcClient(fixture.grpcAddress);
  assert.deepEqual(fixture.engine.loadFailures().map((f) => `${f.name}: ${f.reason}`), []);
});
after(async () => {
  gate.open();
  grpc?.close();
  await fixture?.close();
  await removeRepository(root);
});

const show = (item: StreamedResponse): string =>
  item.response ? item.response.outputs.map((t) => `${t.name}=${t.datatype === 'BYTES' ? stringsOf(t).join() : [...new Int32Array(t.raw.slice().buffer)].join()}`).join(' ')
    : item.error ? `error: ${item.error.message}` : 'final';

describe('a step after a decoupled step reads tensors from before it', () => {
  test('the request\'s own input, broadcast to every streamed response', async () => {
    const stream = await fixture.engine.inferStream({
      modelName: 'direct', inputs: [bytesTensor('TEXT', [1], ['tok']), fixedTensor('COUNT', 'INT32', [1], new Int32Array([2]))], parameters: { tokens: 3 },
    });
    const items: string[] = [];
    for await (const item of stream) items.push(show(item));
    assert.deepEqual(items, ['OUT=tok 0|tok 0', 'OUT=tok 1|tok 1', 'OUT=tok 2|tok 2', 'final']);
  });

  test('a tensor a slow step computes beside the stream: streamed responses wait for it, then each runs once', async () => {
    gate.close();
    const stream = await fixture.engine.inferStream({
      modelName: 'broadcast', inputs: [bytesTensor('TEXT', [1], ['tok']), fixedTensor('COUNT', 'INT32', [1], new Int32Array([3]))], parameters: { tokens: 3 },
    });
    const items: string[] = [];
    const read = (async () => { for await (const item of stream) items.push(show(item)); })();
    await gate.untilWaiting(1);
    // The streamer's tokens are in, but the step that needs GATED cannot run yet: nothing has gone out.
    const streamed = (): number => fixture.engine.modelStatistics('streamer').model_stats[0]!.inference_stats.success.count;
    assert.equal(items.length, 0);
    gate.release(1);
    await within(10_000, 'the broadcast stream', read);
    gate.open();
    assert.ok(streamed() > 0);
    assert.deepEqual(items.slice(0, -1).sort(), ['OUT=tok 0|tok 0|tok 0 GATED=3', 'OUT=tok 1|tok 1|tok 1 GATED=3', 'OUT=tok 2|tok 2|tok 2 GATED=3']);
    assert.equal(items.at(-1), 'final');
    const steps = fixture.engine.modelStatistics('broadcast').model_stats[0]!.step_stats!;
    assert.deepEqual(steps.map((s) => s.success.count), [1, 1, 3], 'the repeat step ran once per token; the gate once per request');
  });

  test('while a tensor from above is late, the stream is not read ahead without bound: the decoupled step waits', async () => {
    const sent = (): number => Object.values(fixture.engine.modelStatistics('streamer').model_stats[0]!.response_stats)
      .reduce((sum, s) => sum + s.success.count, 0);
    const before = sent();
    gate.close();
    const stream = await fixture.engine.inferStream({
      modelName: 'broadcast', inputs: [bytesTensor('TEXT', [1], ['tok'])].concat([fixedTensor('COUNT', 'INT32', [1], new Int32Array([1]))]), parameters: { tokens: 200 },
    });
    let received = 0;
    const read = (async () => { for await (const item of stream) if (item.response) received++; })();
    await gate.untilWaiting(1);
    // Other requests take many turns meanwhile: a reader that did not stop would take all 200 tokens.
    for (let i = 0; i < 100; i++) await fixture.engine.infer({ modelName: 'repeat', inputs: [bytesTensor('text_input', [1], ['x']), fixedTensor('COUNT', 'INT32', [1], new Int32Array([1]))] });
    const held = sent() - before;
    assert.ok(held <= MAX_WAITING_SCOPES + 16 + 2, `the streamer sent ${held} tokens while the gate was shut`);
    gate.release(1);
    await within(20_000, 'the long broadcast stream', read);
    gate.open();
    assert.equal(received, 200);
  });

  test('HTTP generate_stream: one event per token, each with the request\'s COUNT applied', async () => {
    gate.open();
    const response = await fetch(`${fixture.httpUrl}/v2/models/direct/generate_stream`, {
      method: 'POST', body: JSON.stringify({ TEXT: 'hi', COUNT: 2, parameters: { tokens: 2 } }),
    });
    assert.equal(response.status, 200);
    const received = events(await response.text());
    assert.deepEqual(received.map((e) => e['OUT']), ['hi 0|hi 0', 'hi 1|hi 1']);
  });

  test('gRPC ModelStreamInfer: the same, and the request-level output comes again with each response', async () => {
    gate.open();
    const received = await streamOverGrpc(grpc, {
      model_name: 'broadcast', id: 'b',
      inputs: [
        { name: 'TEXT', datatype: 'BYTES', shape: [1], contents: { bytes_contents: [Buffer.from('yo')] } },
        { name: 'COUNT', datatype: 'INT32', shape: [1], contents: { int_contents: [2] } },
      ],
      parameters: { tokens: { int64_param: 2 } },
    });
    assert.ok(received.every((m) => !m['error_message']), JSON.stringify(received.find((m) => m['error_message'])));
    const responses = received.filter((m) => m['infer_response']['outputs'].length > 0);
    const out = responses.map((m) => {
      const names: string[] = m['infer_response']['outputs'].map((o: { name: string }) => o.name);
      return strings(m['infer_response']['raw_output_contents'][names.indexOf('OUT')]).join();
    });
    assert.deepEqual(out.sort(), ['yo 0|yo 0', 'yo 1|yo 1']);
    assert.equal(grpcChunks(responses).length, 2);
  });
});

describe('what stays refused', () => {
  test('a step reading two decoupled steps side by side fails the load in Triton\'s words, at the step\'s line', async () => {
    const dir = await makeRepository({
      streamer: { config: STREAMER, versions: {} },
      repeat: { config: REPEAT, versions: {} },
      counter: {
        config: scriptConfig({ maxBatchSize: 0, inputs: [['N', 'TYPE_INT32', [1]]], outputs: [['M', 'TYPE_INT32', [1]]], extra: DECOUPLED_POLICY }),
        versions: {},
      },
      siblings: {
        config: `platform: "ensemble"
max_batch_size: 0
input [ { name: "TEXT" data_type: TYPE_STRING dims: [ 1 ] }, { name: "COUNT" data_type: TYPE_INT32 dims: [ 1 ] } ]
output [ { name: "OUT" data_type: TYPE_STRING dims: [ 1 ] } ]
ensemble_scheduling { step [
  { model_name: "streamer" model_version: -1 input_map { key: "text_input" value: "TEXT" } output_map { key: "text_output" value: "token" } },
  { model_name: "counter" model_version: -1 input_map { key: "N" value: "COUNT" } output_map { key: "M" value: "counted" } },
  { model_name: "repeat" model_version: -1 input_map { key: "text_input" value: "token" } input_map { key: "COUNT" value: "counted" } output_map { key: "text_output" value: "OUT" } }
] }
`,
        versions: { 1: null },
      },
    });
    await writeScripts(dir, {
      streamer: { 1: STREAMER_SCRIPT }, repeat: { 1: REPEAT_SCRIPT },
      counter: { 1: 'export default class { async execute(r: any[]) { for (const q of r) q.send({ outputs: { M: { shape: [1], data: q.inputs.N.data } } }); } }\n' },
    });
    const engine = await startEngine(dir, { strictReadiness: false });
    try {
      const entry = engine.repositoryIndex().find((e) => e.name === 'siblings')!;
      assert.equal(entry.state, 'UNAVAILABLE');
      assert.match(entry.reason ?? '', /config\.pbtxt:8: ensemble_scheduling\.step\[2\]: in ensemble siblings, step of model 'repeat' receives inputs originated from different decoupled models/);
      assert.match(entry.reason ?? '', /never the outputs of two decoupled steps that do not follow one another/);
    } finally {
      await engine.close();
      await removeRepository(dir);
    }
  });
});
