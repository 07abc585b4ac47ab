/**
 * Ensembles over a real grpc-js connection: ModelInfer on Triton-format and
 * pipeline ensembles (debug tensors through request parameters), the status
 * codes of a missing input and a failing step, and ModelStatistics'
 * step_stats, checked on the wire bytes against the field numbers
 * Switchyard documents (ModelStatistics.step_stats = 101; EnsembleStepStatistics
 * step = 1, model = 2, success = 3, fail = 4) without going through our .proto.
 */
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import * as grpc from '@grpc/grpc-js';
import protobuf from 'protobufjs';
import { addSubModel, lookupModel } from '../../../generator/models.ts';
import { grpcType, INFERENCE_SERVICE } from '../../../server/grpc/grpc-schema.ts';
import { addSubMember, CHAIN_PIPELINE, chainEnsemble, lookupMember, range16 } from '../../helpers/ensemble-fixtures.ts';
import { makeRepository, removeRepository, startGrpc, type GrpcFixture } from '../../helpers/fixture-repository.ts';
import { num, RawGrpcClient, type Message } from '../../helpers/grpc-raw-client.ts';

/** lookup's one step as an ensemble: INDEX -> VALUE_OUT. */
const LOOKUP_ENSEMBLE = `platform: "ensemble"
max_batch_size: 8
input [ { name: "INDEX" } ]
output [ { name: "VALUE_OUT" } ]
ensemble_scheduling { step [ { model_name: "lookup" model_version: -1 input_map { key: "INDEX" value: "INDEX" } output_map { key: "VALUE" value: "VALUE_OUT" } } ] }
`;

const A = range16((i) => i * 2);
const B = range16((i) => i);
const ints = (raw: Uint8Array): number[] => [...new Int32Array(Uint8Array.from(raw).buffer)];

function chainRequest(model: string, extra: Message = {}): Message {
  return {
    model_name: model,
    inputs: [
      { name: 'A', datatype: 'INT32', shape: [1, 16], contents: { int_contents: A } },
      { name: 'B', datatype: 'INT32', shape: [1, 16], contents: { int_contents: B } },
    ],
    ...extra,
  };
}

interface WireStep {
  step: string;
  model: string;
  success: { count: number; ns: number };
  fail: { count: number; ns: number };
}

/** Reads the fields of one message: field number -> raw values (bytes for length-delimited, numbers for varints). */
function fields(bytes: Uint8Array): Map<number, Array<Uint8Array | number>> {
  const reader = protobuf.Reader.create(bytes);
  const found = new Map<number, Array<Uint8Array | number>>();
  while (reader.pos < reader.len) {
    const tag = reader.uint32();
    const field = tag >>> 3;
    const wireType = tag & 7;
    let value: Uint8Array | number;
    if (wireType === 2) value = reader.bytes();
    else if (wireType === 0) value = num(reader.uint64());
    else {
      reader.skipType(wireType);
      continue;
    }
    found.set(field, [...(found.get(field) ?? []), value]);
  }
  return found;
}

function wireDuration(bytes: Uint8Array | undefined): { count: number; ns: number } {
  const f = fields(bytes ?? new Uint8Array());
  return { count: (f.get(1)?.[0] as number | undefined) ?? 0, ns: (f.get(2)?.[0] as number | undefined) ?? 0 };
}

describe('ensembles over gRPC', () => {
  let root: string;
  let fixture: GrpcFixture;
  let client: RawGrpcClient;
  let bare: grpc.Client;

  before(async () => {
    root = await makeRepository({
      add_sub: { config: addSubMember('add_sub'), versions: { 1: addSubModel('INT32', 16) } },
      lookup: { config: lookupMember('lookup'), versions: { 1: lookupModel(4) } },
      chain: { config: chainEnsemble(), versions: { 1: null } },
      chain_yaml: { config: CHAIN_PIPELINE, configFile: 'pipeline.yaml', versions: {} },
      looked_up: { config: LOOKUP_ENSEMBLE, versions: { 1: null } },
    });
    fixture = await startGrpc(root);
    client = new RawGrpcClient(fixture.address);
    bare = new grpc.Client(fixture.address, grpc.credentials.createInsecure());
  });

  after(async () => {
    client?.close();
    bare?.close();
    await fixture?.close();
    if (root) await removeRepository(root);
  });

  /** ModelStatistics' response as the bytes on the wire, with ModelStatisticsResponse.model_stats (1) -> step_stats (101) read by hand. */
  async function wireStepStats(name: string): Promise<WireStep[]> {
    const requestType = grpcType('inference.ModelStatisticsRequest');
    const bytes = await new Promise<Buffer>((resolve, reject) => {
      bare.makeUnaryRequest(`/${INFERENCE_SERVICE}/ModelStatistics`,
        (m: Message) => Buffer.from(requestType.encode(requestType.fromObject(m)).finish()), (b: Buffer) => b,
        { name, version: '' }, (error, response) => (error ? reject(error) : resolve(response!)));
    });
    const entries = fields(bytes).get(1) ?? [];
    assert.equal(entries.length, 1);
    return (fields(entries[0] as Uint8Array).get(101) ?? []).map((raw) => {
      const step = fields(raw as Uint8Array);
      const text = (n: number): string => Buffer.from((step.get(n)?.[0] as Uint8Array | undefined) ?? []).toString('utf8');
      return {
        step: text(1), model: text(2),
        success: wireDuration(step.get(3)?.[0] as Uint8Array | undefined),
        fail: wireDuration(step.get(4)?.[0] as Uint8Array | undefined),
      };
    });
  }

  test('ModelInfer on a Triton ensemble and a pipeline: the ensemble\'s name and outputs', async () => {
    for (const model of ['chain', 'chain_yaml']) {
      const { response, error } = await client.call('ModelInfer', chainRequest(model, { id: `id-${model}` }));
      assert.equal(error, undefined, error?.details);
      assert.equal(response!['model_name'], model);
      assert.equal(response!['model_version'], '1');
      assert.equal(response!['id'], `id-${model}`);
      const outputs = response!['outputs'] as Message[];
      assert.deepEqual(outputs.map((o) => [o['name'], o['datatype'], (o['shape'] as unknown[]).map(num)]),
        [['TWICE_A', 'INT32', [1, 16]], ['TWICE_B', 'INT32', [1, 16]]]);
      const raw = response!['raw_output_contents'] as Uint8Array[];
      assert.deepEqual(ints(raw[0]!), A.map((a) => 2 * a));
      assert.deepEqual(ints(raw[1]!), B.map((b) => 2 * b));
    }
  });

  test('debug tensors through a bool request parameter come back as extra outputs', async () => {
    const { response, error } = await client.call('ModelInfer', chainRequest('chain', { parameters: { switchyard_debug_tensors: { bool_param: true } } }));
    assert.equal(error, undefined, error?.details);
    assert.deepEqual((response!['outputs'] as Message[]).map((o) => o['name']), ['TWICE_A', 'TWICE_B', 'sum', 'diff']);
    const raw = response!['raw_output_contents'] as Uint8Array[];
    assert.deepEqual(ints(raw[2]!), A.map((a, i) => a + B[i]!));
    assert.deepEqual(ints(raw[3]!), A.map((a, i) => a - B[i]!));

    const listed = await client.call('ModelInfer', chainRequest('chain_yaml', { parameters: { switchyard_debug_tensors: { string_param: 'first.OUTPUT0' } } }));
    assert.deepEqual((listed.response!['outputs'] as Message[]).map((o) => o['name']), ['TWICE_A', 'TWICE_B', 'first.OUTPUT0']);
  });

  test('a missing ensemble input: INVALID_ARGUMENT naming it', async () => {
    const request = chainRequest('chain');
    request['inputs'] = [request['inputs'][0]];
    const { error } = await client.call('ModelInfer', request);
    assert.equal(error?.code, grpc.status.INVALID_ARGUMENT);
    assert.equal(error.details, "expected 2 inputs but got 1 inputs for model 'chain'. Got input(s) ['A'], but missing required input(s) ['B']. " +
      'Please provide all required input(s).');
  });

  test('a failing step: INTERNAL naming the ensemble and step; the next request succeeds', async () => {
    const bad = await client.call('ModelInfer', { model_name: 'looked_up', inputs: [{ name: 'INDEX', datatype: 'INT64', shape: [1, 1], contents: { int64_contents: [7] } }] });
    assert.equal(bad.error?.code, grpc.status.INTERNAL);
    assert.match(bad.error.details, /^ensemble 'looked_up' step 1 \('lookup'\) failed: inference failed in model 'lookup': .*idx=7/);
    const good = await client.call('ModelInfer', { model_name: 'looked_up', inputs: [{ name: 'INDEX', datatype: 'INT64', shape: [1, 1], contents: { int64_contents: [3] } }] });
    assert.equal(good.error, undefined, good.error?.details);
    assert.deepEqual([...new Float32Array(Uint8Array.from((good.response!['raw_output_contents'] as Uint8Array[])[0]!).buffer)], [30]);
  });

  test('ModelStatistics: step_stats at field 101, each { step = 1, model = 2, success = 3, fail = 4 }', async () => {
    const before = await wireStepStats('chain');
    assert.equal((await client.call('ModelInfer', chainRequest('chain'))).error, undefined);
    const after = await wireStepStats('chain');
    assert.deepEqual(after.map((s) => [s.step, s.model]), [["step 1 ('add_sub')", 'add_sub'], ["step 2 ('add_sub')", 'add_sub']]);
    assert.deepEqual(after.map((s, i) => s.success.count - before[i]!.success.count), [1, 1]);
    for (const s of after) assert.ok(s.success.ns > 0);

    const failing = await wireStepStats('looked_up');
    assert.deepEqual(failing.map((s) => [s.step, s.model, s.fail.count, s.success.count]), [["step 1 ('lookup')", 'lookup', 1, 1]]);

    // The decoded message agrees with the engine.
    const { response } = await client.call('ModelStatistics', { name: 'chain' });
    const decoded = (response!['model_stats'] as Message[])[0]!['step_stats'] as Message[];
    const engine = fixture.engine.modelStatistics('chain').model_stats[0]!.step_stats!;
    assert.deepEqual(decoded.map((s) => [s['step'], s['model'], num(s['success']['count']), num(s['fail']['count'])]),
      engine.map((s) => [s.step, s.model, s.success.count, s.fail.count]));
  });
});
