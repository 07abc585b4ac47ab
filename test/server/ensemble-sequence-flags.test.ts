/**
 * Triton's ensembles answer with the sequence flags their steps ran with:
 * every response of an ensemble carries the request's sequence_id (0
 * without one), sequence_start and sequence_end as response parameters.
 * Triton's own test (L0_simple_ensemble test_ensemble_sequence_flags) sends
 * three requests of one sequence over ModelStreamInfer and reads the flags
 * back; here the same over a real gRPC stream, and over HTTP. A model that
 * is not an ensemble adds no such parameters, as in Triton.
 */
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { addSubModel } from '../../generator/models.ts';
import { addSubMember, chainEnsemble } from '../helpers/ensemble-fixtures.ts';
import { makeRepository, removeRepository, startBoth, type DualFixture } from '../helpers/fixture-repository.ts';
import { RawGrpcClient, type Message } from '../helpers/grpc-raw-client.ts';
import { within } from '../helpers/script-fixtures.ts';

const VALUES = Buffer.from(Int32Array.from({ length: 16 }, (_, i) => i).buffer);

function streamRequest(model: string, id: string, parameters: Message): Message {
  return {
    model_name: model, id, parameters,
    inputs: [
      { name: model === 'chain' ? 'A' : 'INPUT0', datatype: 'INT32', shape: [1, 16] },
      { name: model === 'chain' ? 'B' : 'INPUT1', datatype: 'INT32', shape: [1, 16] },
    ],
    raw_input_contents: [VALUES, VALUES],
  };
}

/** The sequence parameters of a stream message as [sequence_id, start, end]; undefined where absent. */
function flags(message: Message): [unknown, unknown, unknown] {
  const p = message['infer_response']?.['parameters'] ?? {};
  const value = (m: Message | undefined): unknown => (m === undefined ? undefined : m[m['parameter_choice'] as string]);
  const id = value(p['sequence_id']);
  return [typeof id === 'object' && id !== null ? Number(id) : id, value(p['sequence_start']), value(p['sequence_end'])];
}

describe('ensemble responses echo the sequence flags', () => {
  let root: string;
  let fixture: DualFixture;
  let client: RawGrpcClient;

  before(async () => {
    root = await makeRepository({
      add_sub: { config: addSubMember('add_sub'), versions: { 1: addSubModel('INT32', 16) } },
      chain: { config: chainEnsemble(), versions: { 1: null } },
    });
    fixture = await startBoth(root);
    client = new RawGrpcClient(fixture.grpcAddress);
  });

  after(async () => {
    client.close();
    await fixture.close();
    await removeRepository(root);
  });

  test('gRPC ModelStreamInfer: start on the first, end on the last, the sequence_id on each', async () => {
    const sequence = (start: boolean, end: boolean): Message => ({
      sequence_id: { int64_param: 4242 }, sequence_start: { bool_param: start }, sequence_end: { bool_param: end },
    });
    const received = await within(15_000, 'the stream', client.streamAll([
      streamRequest('chain', 'r0', sequence(true, false)),
      streamRequest('chain', 'r1', sequence(false, false)),
      streamRequest('chain', 'r2', sequence(false, true)),
    ]));
    assert.deepEqual(received.map((m) => m['error_message'] ?? ''), ['', '', '']);
    const byId = new Map(received.map((m) => [m['infer_response']['id'], flags(m)]));
    assert.deepEqual([byId.get('r0'), byId.get('r1'), byId.get('r2')], [[4242, true, false], [4242, false, false], [4242, false, true]]);
  });

  test('a string sequence_id comes back as a string; without sequence parameters the ensemble answers 0, false, false', async () => {
    const received = await within(15_000, 'the stream', client.streamAll([
      streamRequest('chain', 's', { sequence_id: { string_param: 'conv-7' }, sequence_start: { bool_param: true } }),
      streamRequest('chain', 'none', {}),
    ]));
    const byId = new Map(received.map((m) => [m['infer_response']['id'], flags(m)]));
    assert.deepEqual(byId.get('s'), ['conv-7', true, false]);
    assert.deepEqual(byId.get('none'), [0, false, false]);
  });

  test('a model that is not an ensemble adds no sequence parameters', async () => {
    const [message] = await within(15_000, 'the stream', client.streamAll([streamRequest('add_sub', 'plain', { sequence_start: { bool_param: true } })]));
    assert.deepEqual(flags(message!), [undefined, undefined, undefined]);
  });

  test('HTTP infer: the ensemble response carries the same parameters', async () => {
    const data = Array.from({ length: 16 }, (_, i) => i);
    const response = await fetch(`${fixture.httpUrl}/v2/models/chain/infer`, {
      method: 'POST',
      body: JSON.stringify({
        parameters: { sequence_id: 9, sequence_start: true, sequence_end: true },
        inputs: [{ name: 'A', datatype: 'INT32', shape: [1, 16], data }, { name: 'B', datatype: 'INT32', shape: [1, 16], data }],
      }),
    });
    assert.equal(response.status, 200);
    const body = await response.json() as { parameters?: unknown; outputs: unknown[] };
    assert.deepEqual(body.parameters, { sequence_id: 9, sequence_start: true, sequence_end: true });
    assert.equal(body.outputs.length, 2);
  });
});
