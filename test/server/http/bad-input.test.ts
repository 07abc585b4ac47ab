/**
 * Bad infer requests over real HTTP: each one is refused with the right
 * status and a message that names the offending field, tensor, model or
 * header, and none of them leaves the server unable to serve a good request.
 */
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { addSubModel } from '../../../generator/models.ts';
import { addSubConfig } from '../../helpers/fixture-configs.ts';
import { makeRepository, removeRepository, startHttp, type HttpFixture } from '../../helpers/fixture-repository.ts';
import { EchoBackend, withTestBackends } from '../../helpers/test-backends.ts';

const ADD_SUB_CONFIG = addSubConfig('add_sub');

/** A BYTES identity on the in-memory echo backend. */
const STRINGS_CONFIG = `
name: "strings"
backend: "test_echo"
max_batch_size: 4
input [ { name: "IN_BYTES" data_type: TYPE_STRING dims: [ -1 ] } ]
output [ { name: "OUT_BYTES" data_type: TYPE_STRING dims: [ -1 ] } ]
`;

/** Small enough that a 64-row request is over it, large enough for every other request here. */
const MAX_INPUT_SIZE = 1024;

const range = (n: number, f: (i: number) => number): number[] => Array.from({ length: n }, (_, i) => f(i));
const A = range(16, (i) => i);
const B = range(16, (i) => 2 * i);

interface Tensor {
  name: string;
  datatype?: unknown;
  shape?: unknown;
  data?: unknown;
  parameters?: Record<string, unknown>;
}

const input0 = (over: Partial<Tensor> = {}): Tensor => ({ name: 'INPUT0', datatype: 'INT32', shape: [1, 16], data: A, ...over });
const input1 = (over: Partial<Tensor> = {}): Tensor => ({ name: 'INPUT1', datatype: 'INT32', shape: [1, 16], data: B, ...over });

const int32Bytes = (values: readonly number[]): Buffer => Buffer.from(new Int32Array(values).buffer);

/** A JSON header followed by binary data, with Inference-Header-Content-Length set (or overridden). */
function binaryBody(header: unknown, chunks: readonly Uint8Array[], headerLength?: string): { body: Buffer; headers: Record<string, string> } {
  const json = Buffer.from(JSON.stringify(header), 'utf8');
  return {
    body: Buffer.concat([json, ...chunks]),
    headers: { 'inference-header-content-length': headerLength ?? String(json.byteLength) },
  };
}

describe('bad infer requests', () => {
  let root: string;
  let http: HttpFixture;

  before(async () => {
    root = await makeRepository({
      add_sub: { config: ADD_SUB_CONFIG, versions: { 1: addSubModel('INT32', 16) } },
      strings: { config: STRINGS_CONFIG, versions: { 1: null } },
    });
    http = await startHttp(root, { maxInputSize: MAX_INPUT_SIZE, backends: withTestBackends(new EchoBackend()) });
  });

  after(async () => {
    await http?.close();
    if (root) await removeRepository(root);
  });

  async function post(body: string | Buffer, headers: Record<string, string> = {}, path = '/v2/models/add_sub/infer'): Promise<Response> {
    return fetch(`${http.url}${path}`, { method: 'POST', body: typeof body === 'string' ? body : new Uint8Array(body), headers: { 'content-type': 'application/json', ...headers } });
  }

  /** Posts and checks the status and that the body is {"error": "..."}; returns the message. */
  async function refused(status: number, body: string | Buffer, headers: Record<string, string> = {}, path?: string): Promise<string> {
    const res = await post(body, headers, path);
    const text = await res.text();
    assert.equal(res.status, status, text);
    assert.match(res.headers.get('content-type') ?? '', /^application\/json/);
    const parsed = JSON.parse(text) as Record<string, unknown>;
    assert.deepEqual(Object.keys(parsed), ['error']);
    assert.equal(typeof parsed['error'], 'string');
    return parsed['error'] as string;
  }

  const request = (inputs: unknown, extra: Record<string, unknown> = {}): string => JSON.stringify({ inputs, ...extra });

  async function assertGoodInfer(): Promise<void> {
    const res = await post(request([input0(), input1()]));
    const text = await res.text();
    assert.equal(res.status, 200, text);
    const json = JSON.parse(text) as { outputs: Array<{ name: string; data: number[] }> };
    assert.deepEqual(json.outputs.map((o) => o.name), ['OUTPUT0', 'OUTPUT1']);
    assert.deepEqual(json.outputs[0]!.data, A.map((v, i) => v + B[i]!));
    assert.deepEqual(json.outputs[1]!.data, A.map((v, i) => v - B[i]!));
  }

  test('the server answers a good request to begin with', assertGoodInfer);

  describe('JSON', () => {
    test('malformed JSON is 400 "failed to parse the request JSON buffer"', async () => {
      const message = await refused(400, '{"inputs": [');
      assert.match(message, /^failed to parse the request JSON buffer/);
    });

    test('an empty body is 400 "failed to parse the request JSON buffer"', async () => {
      const message = await refused(400, '');
      assert.match(message, /^failed to parse the request JSON buffer/);
    });

    test('JSON that is not an object is 400', async () => {
      for (const body of ['[1, 2, 3]', '"inputs"', 'null', '42']) {
        const message = await refused(400, body);
        assert.match(message, /^failed to parse the request JSON buffer/, body);
        assert.match(message, /JSON object/, body);
      }
    });

    test('a missing inputs array is 400 naming inputs', async () => {
      const message = await refused(400, JSON.stringify({ outputs: [] }));
      assert.match(message, /'inputs'/);
    });

    test('inputs that is not an array is 400 naming inputs', async () => {
      const message = await refused(400, JSON.stringify({ inputs: { INPUT0: A } }));
      assert.match(message, /'inputs'/);
    });

    test('an input that is not an object is 400 naming its index', async () => {
      const message = await refused(400, request([input0(), 'INPUT1']));
      assert.match(message, /inputs\[1\]/);
    });

    test('an input without a name is 400 naming inputs[i].name', async () => {
      const message = await refused(400, request([input0(), { datatype: 'INT32', shape: [1, 16], data: B }]));
      assert.match(message, /inputs\[1\]\.name/);
    });

    test('a non-string id is 400 naming id', async () => {
      const message = await refused(400, request([input0(), input1()], { id: 7 }));
      assert.match(message, /'id'/);
    });

    test('a parameter of an object type is 400 naming the parameter', async () => {
      const message = await refused(400, request([input0(), input1()], { parameters: { priority: { level: 1 } } }));
      assert.match(message, /parameter 'priority'/);
    });
  });

  describe('datatype, shape and data', () => {
    test('the wrong datatype for the model is 400 naming input, model and both types', async () => {
      const data = A.map((v) => v + 0.5);
      const message = await refused(400, request([input0({ datatype: 'FP32', data }), input1()]));
      assert.equal(message, "inference input 'INPUT0' data-type is 'FP32', but model 'add_sub' expects 'INT32'");
    });

    test('an invalid datatype string is 400 naming the input and the datatype', async () => {
      const message = await refused(400, request([input0({ datatype: 'INT33' }), input1()]));
      assert.match(message, /INPUT0/);
      assert.match(message, /INT33/);
    });

    test('a missing datatype is 400 naming the input', async () => {
      const { datatype: _datatype, ...noType } = input0();
      const message = await refused(400, request([noType, input1()]));
      assert.match(message, /INPUT0/);
    });

    test('the wrong shape is 400 "unexpected shape for input"', async () => {
      const message = await refused(400, request([input0({ shape: [1, 15], data: A.slice(0, 15) }), input1()]));
      assert.match(message, /^unexpected shape for input 'INPUT0' for model 'add_sub'\. Expected \[-1,16\], got \[1,15\]\./);
    });

    test('the wrong rank is 400 "unexpected shape for input"', async () => {
      const message = await refused(400, request([input0({ shape: [1, 4, 4] }), input1()]));
      assert.match(message, /^unexpected shape for input 'INPUT0'/);
      assert.match(message, /got \[1,4,4\]/);
    });

    test('a negative dim is 400 naming the shape field', async () => {
      const message = await refused(400, request([input0({ shape: [1, -16] }), input1()]));
      assert.match(message, /^Unable to parse 'shape': attempt to access JSON non-unsigned-integer as unsigned-integer: input 'INPUT0'/);
      assert.match(message, /-16/);
    });

    test('a non-integer dim is 400 naming the shape field', async () => {
      const message = await refused(400, request([input0(), input1({ shape: [1, 16.5] })]));
      assert.match(message, /^Unable to parse 'shape': .*input 'INPUT1' dimension 1 is 16\.5/);
    });

    test('a shape that is not an array is 400 naming the shape field', async () => {
      const message = await refused(400, request([input0({ shape: '1x16' }), input1()]));
      assert.match(message, /inputs\[0\]\.shape/);
    });

    test('an element count that does not match the shape is 400 "shape does not match true shape"', async () => {
      const message = await refused(400, request([input0(), input1({ data: B.slice(0, 15) })]));
      assert.match(message, /^Failed to parse 'data' field: shape does not match true shape/);
      assert.match(message, /'INPUT1'/);
      assert.match(message, /\[1,16\]/);
    });

    test('a string element in INT32 data is 400 naming the input and element', async () => {
      const data = [...A];
      data[3] = 'three' as unknown as number;
      const message = await refused(400, request([input0({ data }), input1()]));
      assert.match(message, /element 3 of input 'INPUT0'/);
      assert.match(message, /"three"/);
    });

    test('an INT32 element out of range is 400 naming the input and the range', async () => {
      const data = [...A];
      data[15] = 2 ** 31;
      const message = await refused(400, request([input0(), input1({ data })]));
      assert.match(message, /element 15 of input 'INPUT1'/);
      assert.match(message, /2147483648/);
      assert.match(message, /INT32 range/);
    });

    test('a fractional INT32 element is 400 naming the input', async () => {
      const data = [...A];
      data[0] = 0.5;
      const message = await refused(400, request([input0({ data }), input1()]));
      assert.match(message, /element 0 of input 'INPUT0'/);
    });

    test('batch larger than max_batch_size is 400 "batch-size must be <= 8"', async () => {
      const rows = 9;
      const data = range(16 * rows, () => 1);
      const message = await refused(400, request([input0({ shape: [rows, 16], data }), input1({ shape: [rows, 16], data })]));
      assert.match(message, /batch-size must be <= 8/);
      assert.match(message, /'add_sub'/);
      assert.match(message, /got 9/);
    });

    test('a zero batch is 400 naming the batch size', async () => {
      const message = await refused(400, request([input0({ shape: [0, 16], data: [] }), input1({ shape: [0, 16], data: [] })]));
      assert.match(message, /batch-size must be <= 8/);
      assert.match(message, /got 0/);
    });

    test('inputs with different batch sizes are 400 naming the input', async () => {
      const message = await refused(400, request([input0(), input1({ shape: [2, 16], data: [...B, ...B] })]));
      assert.match(message, /input 'INPUT1' has batch size 2/);
    });
  });

  describe('binary tensor data', () => {
    test('a binary_data_size that does not match the element count is 400 "input byte size mismatch"', async () => {
      const { body, headers } = binaryBody({
        inputs: [input0({ data: undefined, parameters: { binary_data_size: 60 } }), input1()],
      }, [int32Bytes(A.slice(0, 15))]);
      const message = await refused(400, body, headers);
      assert.equal(message, "input byte size mismatch for input 'INPUT0' for model 'add_sub'. Expected 64, got 60");
    });

    test('binary data shorter than binary_data_size is 400 naming the input', async () => {
      const { body, headers } = binaryBody({
        inputs: [input0({ data: undefined, parameters: { binary_data_size: 64 } }), input1()],
      }, [int32Bytes(A.slice(0, 8))]);
      const message = await refused(400, body, headers);
      assert.match(message, /'INPUT0'/);
      assert.match(message, /expecting 32 additional bytes/);
    });

    test('binary_data_size without any binary section is 400 naming the input and the header', async () => {
      const message = await refused(400, request([input0({ data: undefined, parameters: { binary_data_size: 64 } }), input1()]));
      assert.match(message, /'INPUT0'/);
      assert.match(message, /Inference-Header-Content-Length/);
    });

    test('extra bytes after the last binary input are 400 naming the model and the byte count', async () => {
      const { body, headers } = binaryBody({
        inputs: [input0({ data: undefined, parameters: { binary_data_size: 64 } }), input1()],
      }, [int32Bytes(A), Buffer.from([1, 2, 3, 4])]);
      const message = await refused(400, body, headers);
      assert.match(message, /unexpected additional input data for model 'add_sub'/);
      assert.match(message, /4 bytes/);
    });

    test('a negative binary_data_size is 400 naming the field', async () => {
      const { body, headers } = binaryBody({
        inputs: [input0({ data: undefined, parameters: { binary_data_size: -64 } }), input1()],
      }, [int32Bytes(A)]);
      const message = await refused(400, body, headers);
      assert.match(message, /inputs\[0\]\.parameters\.binary_data_size/);
    });

    test('Inference-Header-Content-Length larger than the body is 400 naming the header', async () => {
      const { body, headers } = binaryBody({
        inputs: [input0({ data: undefined, parameters: { binary_data_size: 64 } }), input1()],
      }, [int32Bytes(A)], '100000');
      const message = await refused(400, body, headers);
      assert.match(message, /Inference-Header-Content-Length/);
      assert.match(message, /100000/);
    });

    test('a non-numeric Inference-Header-Content-Length is 400 naming the header', async () => {
      const { body, headers } = binaryBody({
        inputs: [input0({ data: undefined, parameters: { binary_data_size: 64 } }), input1()],
      }, [int32Bytes(A)], 'abc');
      const message = await refused(400, body, headers);
      assert.match(message, /Inference-Header-Content-Length/);
      assert.match(message, /abc/);
    });

    test('an Inference-Header-Content-Length that cuts the JSON short is 400 failed to parse', async () => {
      const { body, headers } = binaryBody({
        inputs: [input0({ data: undefined, parameters: { binary_data_size: 64 } }), input1()],
      }, [int32Bytes(A)], '20');
      const message = await refused(400, body, headers);
      assert.match(message, /^failed to parse the request JSON buffer/);
    });

    test('Inference-Header-Content-Length: 0 makes a raw binary request, which a two-input model refuses as Triton does', async () => {
      const message = await refused(400, int32Bytes(A), { 'inference-header-content-length': '0' });
      assert.equal(message, "Raw request must only have 1 input (found 1) to be deduced but got 2 inputs in 'add_sub' model configuration");
    });

    test('both data and binary_data_size set is 400 naming the input', async () => {
      const { body, headers } = binaryBody({
        inputs: [input0({ parameters: { binary_data_size: 64 } }), input1()],
      }, [int32Bytes(A)]);
      const message = await refused(400, body, headers);
      assert.match(message, /only one of the following fields: 'data', 'binary_data_size'/);
      assert.match(message, /for input 'INPUT0'/);
    });

    test('neither data nor binary_data_size set is 400 naming the input', async () => {
      const message = await refused(400, request([input0(), input1({ data: undefined })]));
      assert.match(message, /But no field is set for input 'INPUT1'/);
    });

    test('a BYTES length prefix past the end of the buffer is 400 naming the input', async () => {
      const prefix = Buffer.alloc(4);
      prefix.writeUInt32LE(100, 0);
      const data = Buffer.concat([prefix, Buffer.from('abcd')]);
      const { body, headers } = binaryBody({
        inputs: [{ name: 'IN_BYTES', datatype: 'BYTES', shape: [1, 1], parameters: { binary_data_size: data.byteLength } }],
      }, [data]);
      const message = await refused(400, body, headers, '/v2/models/strings/infer');
      assert.match(message, /'IN_BYTES'/);
      assert.match(message, /claims 100 bytes but only 4 remain/);
    });

    test('a truncated BYTES length prefix is 400 naming the input', async () => {
      const { body, headers } = binaryBody({
        inputs: [{ name: 'IN_BYTES', datatype: 'BYTES', shape: [1, 1], parameters: { binary_data_size: 3 } }],
      }, [Buffer.from([1, 0, 0])]);
      const message = await refused(400, body, headers, '/v2/models/strings/infer');
      assert.match(message, /'IN_BYTES'/);
      assert.match(message, /exceeds the end of the buffer/);
    });

    test('a BYTES element count that does not match the shape is 400 naming the input', async () => {
      const prefix = Buffer.alloc(4);
      prefix.writeUInt32LE(2, 0);
      const data = Buffer.concat([prefix, Buffer.from('hi')]);
      const { body, headers } = binaryBody({
        inputs: [{ name: 'IN_BYTES', datatype: 'BYTES', shape: [1, 2], parameters: { binary_data_size: data.byteLength } }],
      }, [data]);
      const message = await refused(400, body, headers, '/v2/models/strings/infer');
      assert.match(message, /'IN_BYTES'/);
      assert.match(message, /expected 2 string elements/);
    });

    test('the BYTES model itself still works', async () => {
      const res = await post(request([{ name: 'IN_BYTES', datatype: 'BYTES', shape: [1, 2], data: ['a', 'bc'] }]), {}, '/v2/models/strings/infer');
      assert.equal(res.status, 200);
      const json = await res.json() as { outputs: Array<{ data: string[] }> };
      assert.deepEqual(json.outputs[0]!.data, ['a', 'bc']);
    });
  });

  describe('model, version, inputs and outputs', () => {
    test('an unknown model is 404 naming the model', async () => {
      const message = await refused(404, request([input0(), input1()]), {}, '/v2/models/nope/infer');
      assert.equal(message, "Request for unknown model: 'nope' is not found");
    });

    test('an unknown version is 404 naming model and version', async () => {
      const message = await refused(404, request([input0(), input1()]), {}, '/v2/models/add_sub/versions/7/infer');
      assert.equal(message, "Request for unknown model: 'add_sub' version 7 is not found");
    });

    test('a non-numeric version is 400 naming model and version', async () => {
      const message = await refused(400, request([input0(), input1()]), {}, '/v2/models/add_sub/versions/one/infer');
      assert.match(message, /'one'/);
      assert.match(message, /'add_sub'/);
    });

    test('version 0 is 400 naming the version', async () => {
      const message = await refused(400, request([input0(), input1()]), {}, '/v2/models/add_sub/versions/0/infer');
      assert.match(message, /^invalid model version specified '0' , version should be an integral value > 0 \(model 'add_sub'\)$/);
    });

    test('an unknown input name is 400 naming the input', async () => {
      const message = await refused(400, request([input0(), input1(), input1({ name: 'INPUT9' })]));
      assert.equal(message, "unexpected inference input 'INPUT9' for model 'add_sub'");
    });

    test('a duplicated input is 400 naming the input', async () => {
      const message = await refused(400, request([input0(), input1(), input0()]));
      assert.match(message, /input 'INPUT0' appears more than once/);
    });

    test('a missing required input is 400 naming the missing input', async () => {
      const message = await refused(400, request([input0()]));
      assert.match(message, /^expected 2 inputs but got 1 inputs for model 'add_sub'/);
      assert.match(message, /missing required input\(s\) \['INPUT1'\]/);
    });

    test('no inputs at all is 400 naming both missing inputs', async () => {
      const message = await refused(400, request([]));
      assert.match(message, /missing required input\(s\) \['INPUT0', 'INPUT1'\]/);
    });

    test('an unknown requested output is 400 "unexpected inference output"', async () => {
      const message = await refused(400, request([input0(), input1()], { outputs: [{ name: 'OUTPUT0' }, { name: 'OUTPUT9' }] }));
      assert.equal(message, "unexpected inference output 'OUTPUT9' for model 'add_sub'");
    });

    test('a requested output without a name is 400 naming outputs[i].name', async () => {
      const message = await refused(400, request([input0(), input1()], { outputs: [{ name: 'OUTPUT0' }, {}] }));
      assert.match(message, /outputs\[1\]\.name/);
    });

    test('a negative classification count is 400 naming the output field', async () => {
      const message = await refused(400, request([input0(), input1()], { outputs: [{ name: 'OUTPUT0', parameters: { classification: -3 } }] }));
      assert.equal(message, 'outputs[0].parameters.classification: classification count must be a positive integer, got -3');
    });
  });

  describe('output options', () => {
    test('a repeated requested output is refused, naming it', async () => {
      const message = await refused(400, request([input0(), input1()], { outputs: [{ name: 'OUTPUT0' }, { name: 'OUTPUT0' }] }));
      assert.match(message, /^output 'OUTPUT0' already exists in request \(outputs\[1\] names it again\)$/);
    });

    test('binary_data and binary_data_output must be booleans', async () => {
      const perOutput = await refused(400, request([input0(), input1()], { outputs: [{ name: 'OUTPUT0', parameters: { binary_data: 'yes' } }] }));
      assert.match(perOutput, /Unable to parse 'outputs\[0\]\.parameters\.binary_data': expected true or false/);
      const global = await refused(400, request([input0(), input1()], { parameters: { binary_data_output: 1 } }));
      assert.match(global, /Unable to parse 'parameters\.binary_data_output': expected true or false/);
    });
  });

  describe('size limit', () => {
    test('a body over the size limit is 413 naming the limit', async () => {
      const rows = 8;
      const data = range(16 * rows, () => 123456);
      const body = request([input0({ shape: [rows, 16], data }), input1({ shape: [rows, 16], data })]);
      assert.ok(Buffer.byteLength(body) > MAX_INPUT_SIZE);
      const message = await refused(413, body);
      assert.match(message, new RegExp(`exceeds the maximum allowed input size of ${MAX_INPUT_SIZE} bytes`));
      assert.match(message, new RegExp(`of ${Buffer.byteLength(body)} bytes`));
    });

    test('a binary body over the size limit is 413', async () => {
      const { body, headers } = binaryBody({
        inputs: [input0({ data: undefined, parameters: { binary_data_size: 2048 } }), input1()],
      }, [Buffer.alloc(2048)]);
      const message = await refused(413, body, headers);
      assert.match(message, new RegExp(`exceeds the maximum allowed input size of ${MAX_INPUT_SIZE} bytes`));
    });

    test('a body just under the limit is served', async () => {
      const body = request([input0(), input1()]);
      assert.ok(Buffer.byteLength(body) < MAX_INPUT_SIZE);
      await assertGoodInfer();
    });
  });

  test('after every bad request the server still answers a good infer', async () => {
    await assertGoodInfer();
    const health = await fetch(`${http.url}/v2/health/ready`);
    assert.equal(health.status, 200);
  });
});
