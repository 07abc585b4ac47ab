/**
 * Bad gRPC requests: each gets INVALID_ARGUMENT (or RESOURCE_EXHAUSTED for
 * an oversized message) with a message naming the tensor or field, and the
 * server keeps serving afterwards.
 */
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { addSubModel } from '../../../generator/models.ts';
import { addSubConfig } from '../../helpers/fixture-configs.ts';
import { makeRepository, removeRepository, startGrpc, type GrpcFixture } from '../../helpers/fixture-repository.ts';
import { RawGrpcClient, type Message } from '../../helpers/grpc-raw-client.ts';

const INVALID_ARGUMENT = 3;
const RESOURCE_EXHAUSTED = 8;
const MAX_MESSAGE = 64 * 1024;

const int32Raw = (n: number): Buffer => Buffer.alloc(n * 4);
const zeros = (n: number): number[] => Array.from({ length: n }, () => 0);

function input(name: string, extra: Message = {}): Message {
  return { name, datatype: 'INT32', shape: [1, 16], ...extra };
}

const CASES: readonly { readonly title: string; readonly request: Message | Buffer; readonly message: RegExp }[] = [
  {
    title: 'a malformed message',
    request: Buffer.from([0x0a, 0xff, 0xff, 0xff, 0x0f]),
    message: /^malformed ModelInferRequest message: /,
  },
  {
    title: 'fewer raw_input_contents than inputs',
    request: { model_name: 'add_sub', inputs: [input('INPUT0'), input('INPUT1')], raw_input_contents: [int32Raw(16)] },
    message: /raw_input_contents has 1 entries but the request has 2 inputs/,
  },
  {
    title: 'more raw_input_contents than inputs',
    request: { model_name: 'add_sub', inputs: [input('INPUT0')], raw_input_contents: [int32Raw(16), int32Raw(16)] },
    message: /raw_input_contents has 2 entries but the request has 1 inputs/,
  },
  {
    title: 'raw_input_contents of the wrong size',
    request: { model_name: 'add_sub', inputs: [input('INPUT0'), input('INPUT1')], raw_input_contents: [int32Raw(16), int32Raw(15)] },
    message: /^input byte size mismatch for input 'INPUT1' for model 'add_sub'\. Expected 64, got 60$/,
  },
  {
    title: 'both contents and raw data for one tensor',
    request: {
      model_name: 'add_sub',
      inputs: [input('INPUT0', { contents: { int_contents: zeros(16) } }), input('INPUT1')],
      raw_input_contents: [int32Raw(16), int32Raw(16)],
    },
    message: /^contents field must not be specified when using raw_input_contents for 'INPUT0' for model 'add_sub'$/,
  },
  {
    title: 'an unknown datatype',
    request: { model_name: 'add_sub', inputs: [input('INPUT0', { datatype: 'INT33', contents: { int_contents: zeros(16) } })] },
    message: /invalid datatype for input INPUT0: "INT33" is not one of BOOL, /,
  },
  {
    title: 'a negative dimension',
    request: { model_name: 'add_sub', inputs: [input('INPUT0', { shape: [1, -16], contents: { int_contents: zeros(16) } })] },
    message: /^Unable to parse 'shape': attempt to access JSON non-unsigned-integer as unsigned-integer: input 'INPUT0' dimension 1 is -16; each dimension must be a non-negative integer$/,
  },
  {
    title: 'typed contents with the wrong element count',
    request: { model_name: 'add_sub', inputs: [input('INPUT0', { contents: { int_contents: zeros(15) } })] },
    message: /^input byte size mismatch for input 'INPUT0' for model 'add_sub'\. Expected 64, got 60$/,
  },
  {
    title: 'typed contents in the field of another datatype',
    request: { model_name: 'add_sub', inputs: [input('INPUT0', { contents: { fp32_contents: zeros(16) } })] },
    message: /input 'INPUT0' is INT32 and takes contents.int_contents, but contents.fp32_contents is set/,
  },
  {
    title: 'an input with no data at all',
    request: { model_name: 'add_sub', inputs: [input('INPUT0')] },
    message: /input 'INPUT0' has no data: set contents.int_contents or raw_input_contents/,
  },
  {
    title: 'FP16 sent as typed contents',
    request: { model_name: 'add_sub', inputs: [input('INPUT0', { datatype: 'FP16', contents: { fp32_contents: zeros(16) } })] },
    message: /input 'INPUT0' is FP16, which has no typed contents field: send it in raw_input_contents/,
  },
  {
    title: 'an INT8 value out of range',
    request: { model_name: 'add_sub', inputs: [input('INPUT0', { datatype: 'INT8', shape: [1, 1], contents: { int_contents: [300] } })] },
    message: /input 'INPUT0': element 0 is 300, outside the INT8 range -128..127/,
  },
  {
    title: 'an input without a name',
    request: { model_name: 'add_sub', inputs: [{ datatype: 'INT32', shape: [1, 16], contents: { int_contents: zeros(16) } }] },
    message: /inputs\[0\] has no name/,
  },
  {
    title: 'a parameter with no value set',
    request: { model_name: 'add_sub', inputs: [], parameters: { sequence_id: {} } },
    message: /parameter 'sequence_id' in the request parameters has no value/,
  },
  {
    title: 'a repeated requested output',
    request: { model_name: 'add_sub', inputs: [], outputs: [{ name: 'OUTPUT0' }, { name: 'OUTPUT0' }] },
    message: /^output 'OUTPUT0' already exists in request/,
  },
];

describe('gRPC bad input', () => {
  let root: string;
  let fixture: GrpcFixture;
  let client: RawGrpcClient;

  /** A good request, to show the server still serves after each bad one. */
  async function stillServes(): Promise<void> {
    const { error } = await client.call('ModelInfer', {
      model_name: 'add_sub',
      inputs: [input('INPUT0'), input('INPUT1')],
      raw_input_contents: [int32Raw(16), int32Raw(16)],
    });
    assert.equal(error, undefined, 'the server kept serving');
  }

  before(async () => {
    root = await makeRepository({ add_sub: { config: addSubConfig(), versions: { 1: addSubModel() } } });
    fixture = await startGrpc(root, { maxMessageSize: MAX_MESSAGE });
    client = new RawGrpcClient(fixture.address);
  });

  after(async () => {
    client.close();
    await fixture.close();
    await removeRepository(root);
  });

  for (const { title, request, message } of CASES) {
    test(`${title}: INVALID_ARGUMENT naming the tensor or field`, async () => {
      const { error } = await client.call('ModelInfer', request);
      assert.equal(error?.code, INVALID_ARGUMENT, error?.details);
      assert.match(error!.details, message);
      await stillServes();
    });
  }

  test('a malformed message to a non-inference RPC is INVALID_ARGUMENT too', async () => {
    const { error } = await client.call('ModelMetadata', Buffer.from([0x0a, 0x05, 0x61]));
    assert.equal(error?.code, INVALID_ARGUMENT);
    assert.match(error!.details, /malformed ModelMetadataRequest message/);
    await stillServes();
  });

  test('a message over --grpc-max-message-size: RESOURCE_EXHAUSTED with both sizes', async () => {
    const n = MAX_MESSAGE / 4;
    const { error } = await client.call('ModelInfer', {
      model_name: 'add_sub',
      inputs: [input('INPUT0', { shape: [1, n] })],
      raw_input_contents: [int32Raw(n)],
    });
    assert.equal(error?.code, RESOURCE_EXHAUSTED);
    assert.match(error!.details, /larger than max \(\d+ vs\.? 65536\)/);
    await stillServes();
  });
});
