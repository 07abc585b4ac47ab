/**
 * HTTP/gRPC parity: one table of cases, each written once without naming a
 * protocol, run against both frontends of one engine on real loopback
 * ports. Two adapters turn a case into a v2 HTTP request (JSON or binary
 * tensor data) and a gRPC call (typed contents or raw_input_contents), and
 * reduce each answer to the same normalised outcome; the two outcomes must
 * be deep-equal, error message text included.
 *
 * Only three kinds of case may differ, and each says why in the table:
 * `classOnly` (the error is raised while decoding a protocol-specific
 * form, so each side names its own fields), `differs` (a documented
 * protocol difference, both sides pinned) and `knownMismatch` (a real
 * mismatch that is reported and not yet fixed; it runs as a todo test so it
 * stays visible and flags itself once fixed).
 */
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { status as grpcStatus } from '@grpc/grpc-js';
import { addSubModel, ORT_DATA_TYPES } from '../../generator/models.ts';
import {
  fromBfloat16Bits, fromHalfBits, toBfloat16Bits, toHalfBits, type DataType,
} from '../../engine/tensor.ts';
import { grpcType } from '../../server/grpc/grpc-schema.ts';
import { SERVER_VERSION } from '../../engine/inference-engine.ts';
import { addSubConfig } from '../helpers/fixture-configs.ts';
import { makeRepository, removeRepository, startBoth, type DualFixture } from '../helpers/fixture-repository.ts';
import { RawGrpcClient, type Message } from '../helpers/grpc-raw-client.ts';
import { EchoBackend, withTestBackends } from '../helpers/test-backends.ts';

// ---- the protocol-neutral description of a case ---------------------------

type Scalar = number | bigint | boolean | string;

interface TensorSpec {
  readonly name: string;
  /** Any string, so that unknown datatypes can be sent. */
  readonly datatype: string;
  /** Any integers, so that negative dims can be sent. */
  readonly shape: readonly number[];
  /** Row-major; may deliberately disagree with the shape. INT64/UINT64 as bigint, FP16/BF16 as numbers, BYTES as strings. */
  readonly values: readonly Scalar[];
}

interface RequestedOutput {
  readonly name: string;
  readonly parameters?: Readonly<Record<string, Scalar>>;
}

/**
 * How the tensors travel. Each mode pairs one HTTP form with the gRPC form
 * closest to it (gRPC answers in raw_output_contents whatever the request
 * used, as Triton does):
 * - json: JSON `data` in and out  <->  typed `contents` in
 * - binary: binary tensor data in and out  <->  raw_input_contents in
 * - binary-json-out: binary tensor data in, JSON `data` out  <->  raw_input_contents in
 */
type Via = 'json' | 'binary' | 'binary-json-out';

type ErrorClass = 'INVALID_ARGUMENT' | 'NOT_FOUND' | 'UNAVAILABLE' | 'UNIMPLEMENTED' | 'INTERNAL' | 'RESOURCE_EXHAUSTED';

interface NormalTensor {
  readonly name: string;
  readonly datatype: string;
  readonly shape: readonly number[];
  readonly values: readonly Scalar[];
}

type Outcome =
  | { readonly ok: true; readonly model_name: string; readonly model_version: string; readonly id: string; readonly outputs: readonly NormalTensor[] }
  | { readonly ok: true; readonly value: unknown }
  | { readonly ok: false; readonly class: string; readonly message: string };

/** What the HTTP outcome (and so, through parity, the gRPC one) must be. */
type Expect =
  | { readonly ok: true; readonly outputs?: readonly NormalTensor[]; readonly id?: string; readonly model_version?: string; readonly value?: unknown }
  | { readonly ok: false; readonly class: ErrorClass; readonly message?: RegExp };

type Op =
  | 'infer' | 'serverLive' | 'serverReady' | 'modelReady' | 'serverMetadata' | 'modelMetadata' | 'modelConfig'
  | 'repositoryIndex' | 'modelStatistics' | 'modelLoad' | 'modelUnload';

interface ParityCase {
  readonly title: string;
  readonly op: Op;
  /** Statistics: absent asks for every model (GET /v2/models/stats, an empty name over gRPC). */
  readonly model?: string;
  /** Passed as given: in the HTTP path, and as model_version / version in gRPC. */
  readonly version?: string;
  readonly id?: string;
  readonly inputs?: readonly TensorSpec[];
  readonly outputs?: readonly RequestedOutput[];
  readonly parameters?: Readonly<Record<string, Scalar>>;
  /** Repository index only: list only ready models. */
  readonly readyOnly?: boolean;
  /** Infer only: which transports to run. Default json and binary. */
  readonly via?: readonly Via[];
  /** Bodies that no tensor description can produce (malformed JSON / protobuf), replacing the adapters' output. */
  readonly broken?: { readonly http: string; readonly grpc: Buffer };
  readonly expect: Expect;
  /** Only the error class must match; the reason the messages legitimately differ. */
  readonly classOnly?: string;
  /** A documented protocol difference: each side pinned on its own, no parity asserted. */
  readonly differs?: { readonly reason: string; readonly grpc: Expect };
  /** A real mismatch, reported; runs as a todo test. */
  readonly knownMismatch?: string;
}

// ---- fixtures --------------------------------------------------------------

const configType = (t: DataType): string => (t === 'BYTES' ? 'TYPE_STRING' : `TYPE_${t}`);

/** id_<T>: one IN_<T> -> OUT_<T> identity over [batch, -1], on the in-memory echo backend (the codecs are under test). */
function identityConfig(t: DataType): string {
  return `name: "id_${t}"\nbackend: "test_echo"\nmax_batch_size: 4\n`
    + `input [ { name: "IN_${t}" data_type: ${configType(t)} dims: [ -1 ] } ]\n`
    + `output [ { name: "OUT_${t}" data_type: ${configType(t)} dims: [ -1 ] } ]\n`;
}

const range = (n: number, f: (i: number) => number): number[] => Array.from({ length: n }, (_, i) => f(i));

/** Edge values per datatype that every transport can carry (64-bit ones within 2^53, see the big-integer cases). */
const EDGE_VALUES: Readonly<Record<DataType, readonly Scalar[]>> = {
  BOOL: [true, false, true],
  UINT8: [0, 255, 7],
  UINT16: [0, 65535, 300],
  UINT32: [0, 4294967295, 65536],
  UINT64: [0n, 9007199254740991n, 42n],
  INT8: [-128, 127, 0],
  INT16: [-32768, 32767, -1],
  INT32: [-2147483648, 2147483647, 42],
  INT64: [-9007199254740991n, 9007199254740991n, 0n],
  FP16: [1.5, -2, 65504],
  BF16: [1.5, -2, 256],
  FP32: [1.5, -0.25, 3.4028234663852886e38],
  FP64: [Math.PI, -1e-300, Number.MAX_VALUE],
  BYTES: ['a', 'héllo', ''],
};

/** Config fields beyond the basics, so that the config comparison covers 64-bit numbers, maps and nested messages. */
const ADD_SUB_EXTRA = `
dynamic_batching { max_queue_delay_microseconds: 100 preferred_batch_size: [ 4, 8 ] }
instance_group [ { count: 2 kind: KIND_CPU } ]
parameters { key: "note" value: { string_value: "parity" } }
`;

const int32 = (name: string, shape: readonly number[], values: readonly number[]): TensorSpec => ({ name, datatype: 'INT32', shape, values });
const X = range(16, (i) => i * 3 - 7);
const Y = range(16, (i) => 5 - i);
const input0 = (shape: readonly number[] = [1, 16], values: readonly number[] = X): TensorSpec => int32('INPUT0', shape, values);
const input1 = (shape: readonly number[] = [1, 16], values: readonly number[] = Y): TensorSpec => int32('INPUT1', shape, values);
const ADD_SUB_INPUTS = [input0(), input1()];
const SUM: NormalTensor = { name: 'OUTPUT0', datatype: 'INT32', shape: [1, 16], values: X.map((x, i) => x + Y[i]!) };
const DIFF: NormalTensor = { name: 'OUTPUT1', datatype: 'INT32', shape: [1, 16], values: X.map((x, i) => x - Y[i]!) };

function roundTrip(t: DataType, shape: readonly number[], values: readonly Scalar[]): Pick<ParityCase, 'model' | 'inputs' | 'expect'> {
  return {
    model: `id_${t}`,
    inputs: [{ name: `IN_${t}`, datatype: t, shape, values }],
    expect: { ok: true, outputs: [{ name: `OUT_${t}`, datatype: t, shape, values }] },
  };
}

const JSON_DECODING = 'HTTP decodes JSON `data` and gRPC decodes typed `contents`; each message names its own protocol\'s field';
const BIG_INT64 = [9007199254740993n, -9223372036854775808n, 9223372036854775807n];
const BIG_UINT64 = [18446744073709551615n, 9007199254740993n, 0n];

const MODEL_NAMES = ['add_sub', ...ORT_DATA_TYPES.map((t) => `id_${t}`)];
/** Every fixture model, version 1, ready; the index is sorted by name. */
const INDEX = MODEL_NAMES.sort((a, b) => a.localeCompare(b)).map((name) => ({ name, version: '1', state: 'READY', reason: '' }));

// ---- the table -------------------------------------------------------------

const CASES: readonly ParityCase[] = [
  // infer: success
  { title: 'add_sub INT32 success', op: 'infer', model: 'add_sub', inputs: ADD_SUB_INPUTS, expect: { ok: true, outputs: [SUM, DIFF], id: '', model_version: '1' } },
  { title: 'requested-output subset', op: 'infer', model: 'add_sub', inputs: ADD_SUB_INPUTS, outputs: [{ name: 'OUTPUT1' }], expect: { ok: true, outputs: [DIFF] } },
  { title: 'requested outputs in reverse order', op: 'infer', model: 'add_sub', inputs: ADD_SUB_INPUTS, outputs: [{ name: 'OUTPUT1' }, { name: 'OUTPUT0' }], expect: { ok: true } },
  { title: 'id is echoed', op: 'infer', model: 'add_sub', id: 'req-42 ✓', inputs: ADD_SUB_INPUTS, expect: { ok: true, id: 'req-42 ✓' } },
  { title: 'explicit version 1', op: 'infer', model: 'add_sub', version: '1', inputs: ADD_SUB_INPUTS, expect: { ok: true, outputs: [SUM, DIFF], model_version: '1' } },
  {
    title: 'batch of 3', op: 'infer', model: 'add_sub',
    inputs: [input0([3, 16], [...X, ...X, ...X]), input1([3, 16], [...Y, ...Y, ...Y])],
    expect: { ok: true, outputs: [{ ...SUM, shape: [3, 16], values: [...SUM.values, ...SUM.values, ...SUM.values] }, { ...DIFF, shape: [3, 16], values: [...DIFF.values, ...DIFF.values, ...DIFF.values] }] },
  },
  { title: 'request parameters of every scalar type are accepted', op: 'infer', model: 'add_sub', parameters: { flag: true, count: 3, ratio: 0.5, tag: 'x' }, inputs: ADD_SUB_INPUTS, expect: { ok: true } },

  // infer: model and version lookup
  { title: 'unknown model', op: 'infer', model: 'nope', inputs: ADD_SUB_INPUTS, expect: { ok: false, class: 'NOT_FOUND', message: /^Request for unknown model: 'nope' is not found$/ } },
  { title: 'unknown model whose name needs URL escaping', op: 'infer', model: 'no such model?', inputs: ADD_SUB_INPUTS, expect: { ok: false, class: 'NOT_FOUND', message: /'no such model\?'/ } },
  { title: 'model name with a path separator', op: 'infer', model: 'no such/model', inputs: ADD_SUB_INPUTS, expect: { ok: false, class: 'INVALID_ARGUMENT', message: /^invalid model name "no such\/model" in .*: it contains '\/', a path separator/ },
    classOnly: 'each message names where the name came from: the URL path over HTTP, the model_name field over gRPC' },
  { title: 'unknown version', op: 'infer', model: 'add_sub', version: '7', inputs: ADD_SUB_INPUTS, expect: { ok: false, class: 'NOT_FOUND', message: /^Request for unknown model: 'add_sub' version 7 is not found$/ } },
  { title: 'non-numeric version', op: 'infer', model: 'add_sub', version: 'abc', inputs: ADD_SUB_INPUTS, expect: { ok: false, class: 'INVALID_ARGUMENT', message: /^failed to get model version from specified version string 'abc' \(details: not an integer\), version should be an integral value > 0 \(model 'add_sub'\)$/ } },
  { title: 'version with a slash (URL-escaped in the HTTP path)', op: 'infer', model: 'add_sub', version: '1/2', inputs: ADD_SUB_INPUTS, expect: { ok: false, class: 'INVALID_ARGUMENT', message: /version string '1\/2'/ } },
  { title: 'version 0', op: 'infer', model: 'add_sub', version: '0', inputs: ADD_SUB_INPUTS, expect: { ok: false, class: 'INVALID_ARGUMENT', message: /^invalid model version specified '0' , version should be an integral value > 0/ } },
  {
    title: 'unknown model and an undecodable input: which error wins', op: 'infer', model: 'nope',
    inputs: [{ name: 'INPUT0', datatype: 'INT128', shape: [1, 16], values: X }, input1()],
    expect: { ok: false, class: 'NOT_FOUND', message: /'nope' is not found/ },
  },

  // infer: engine validation
  { title: 'wrong datatype', op: 'infer', model: 'add_sub', inputs: [{ name: 'INPUT0', datatype: 'FP32', shape: [1, 16], values: X }, input1()], expect: { ok: false, class: 'INVALID_ARGUMENT', message: /^inference input 'INPUT0' data-type is 'FP32', but model 'add_sub' expects 'INT32'$/ } },
  { title: 'wrong shape', op: 'infer', model: 'add_sub', inputs: [input0([1, 8], X.slice(0, 8)), input1()], expect: { ok: false, class: 'INVALID_ARGUMENT', message: /^unexpected shape for input 'INPUT0' for model 'add_sub'\. Expected \[-1,16\], got \[1,8\]/ } },
  { title: 'wrong rank', op: 'infer', model: 'add_sub', inputs: [input0([16], X), input1([16], Y)], expect: { ok: false, class: 'INVALID_ARGUMENT' } },
  { title: 'batch larger than max_batch_size', op: 'infer', model: 'add_sub', inputs: [input0([9, 16], range(144, (i) => i)), input1([9, 16], range(144, (i) => i))], expect: { ok: false, class: 'INVALID_ARGUMENT', message: /^inference request batch-size must be <= 8 for 'add_sub', got 9$/ } },
  { title: 'batch of 0', op: 'infer', model: 'add_sub', inputs: [input0([0, 16], []), input1([0, 16], [])], expect: { ok: false, class: 'INVALID_ARGUMENT', message: /got 0$/ } },
  { title: 'inputs with different batch sizes', op: 'infer', model: 'add_sub', inputs: [input0([2, 16], [...X, ...X]), input1()], expect: { ok: false, class: 'INVALID_ARGUMENT', message: /input 'INPUT1' has batch size 1/ } },
  { title: 'missing input', op: 'infer', model: 'add_sub', inputs: [input0()], expect: { ok: false, class: 'INVALID_ARGUMENT', message: /^expected 2 inputs but got 1 inputs for model 'add_sub'.*missing required input\(s\) \['INPUT1'\]/ } },
  { title: 'no inputs at all', op: 'infer', model: 'add_sub', inputs: [], expect: { ok: false, class: 'INVALID_ARGUMENT', message: /^expected 2 inputs but got 0/ } },
  { title: 'unknown input', op: 'infer', model: 'add_sub', inputs: [...ADD_SUB_INPUTS, int32('INPUT2', [1, 16], X)], expect: { ok: false, class: 'INVALID_ARGUMENT', message: /^unexpected inference input 'INPUT2' for model 'add_sub'$/ } },
  { title: 'duplicate input', op: 'infer', model: 'add_sub', inputs: [input0(), input0(), input1()], expect: { ok: false, class: 'INVALID_ARGUMENT', message: /^input 'INPUT0' appears more than once/ } },
  { title: 'unknown requested output', op: 'infer', model: 'add_sub', inputs: ADD_SUB_INPUTS, outputs: [{ name: 'OUTPUT9' }], expect: { ok: false, class: 'INVALID_ARGUMENT', message: /^unexpected inference output 'OUTPUT9' for model 'add_sub'$/ } },

  // infer: checks both codecs make on the same request fields
  { title: 'duplicate requested output', op: 'infer', model: 'add_sub', inputs: ADD_SUB_INPUTS, outputs: [{ name: 'OUTPUT0' }, { name: 'OUTPUT0' }], expect: { ok: false, class: 'INVALID_ARGUMENT', message: /^output 'OUTPUT0' already exists in request/ } },
  { title: 'classification count 0', op: 'infer', model: 'add_sub', inputs: ADD_SUB_INPUTS, outputs: [{ name: 'OUTPUT0', parameters: { classification: 0 } }], expect: { ok: false, class: 'INVALID_ARGUMENT', message: /^outputs\[0\]\.parameters\.classification: classification count must be a positive integer, got 0$/ } },
  { title: 'classification count as a string', op: 'infer', model: 'add_sub', inputs: ADD_SUB_INPUTS, outputs: [{ name: 'OUTPUT0', parameters: { classification: 'two' } }], expect: { ok: false, class: 'INVALID_ARGUMENT', message: /^outputs\[0\]\.parameters\.classification: classification count must be a positive integer, got "two"$/ } },
  { title: 'classification of a BOOL output', op: 'infer', model: 'id_BOOL', inputs: [{ name: 'IN_BOOL', datatype: 'BOOL', shape: [1, 2], values: [true, false] }], outputs: [{ name: 'OUT_BOOL', parameters: { classification: 1 } }], expect: { ok: false, class: 'INVALID_ARGUMENT', message: /^class result not available for output due to unsupported type 'BOOL' \(output 'OUT_BOOL' of model 'id_BOOL'\)$/ } },

  // infer: the classification extension
  { title: 'classification: top 2 of an INT32 output', op: 'infer', model: 'add_sub', inputs: ADD_SUB_INPUTS, outputs: [{ name: 'OUTPUT0', parameters: { classification: 2 } }], expect: { ok: true, outputs: [{ name: 'OUTPUT0', datatype: 'BYTES', shape: [1, 2], values: ['28:15', '26:14'] }] } },
  { title: 'classification: top 2 per batch row of an FP32 output, six decimals', op: 'infer', model: 'id_FP32', inputs: [{ name: 'IN_FP32', datatype: 'FP32', shape: [2, 3], values: [0.5, 0.25, 1, 3, 2, 1] }], outputs: [{ name: 'OUT_FP32', parameters: { classification: 2 } }], expect: { ok: true, outputs: [{ name: 'OUT_FP32', datatype: 'BYTES', shape: [2, 2], values: ['1.000000:2', '0.500000:0', '3.000000:0', '2.000000:1'] }] } },
  { title: 'classification: a count past the row size gives the whole row', op: 'infer', model: 'id_INT64', inputs: [{ name: 'IN_INT64', datatype: 'INT64', shape: [1, 3], values: [5n, -1n, 9n] }], outputs: [{ name: 'OUT_INT64', parameters: { classification: 7 } }], expect: { ok: true, outputs: [{ name: 'OUT_INT64', datatype: 'BYTES', shape: [1, 3], values: ['9:2', '5:0', '-1:1'] }] } },
  { title: 'classification on one output leaves the other as it is', op: 'infer', model: 'add_sub', inputs: ADD_SUB_INPUTS, outputs: [{ name: 'OUTPUT0', parameters: { classification: 1 } }, { name: 'OUTPUT1' }], expect: { ok: true, outputs: [{ name: 'OUTPUT0', datatype: 'BYTES', shape: [1, 1], values: ['28:15'] }, { name: 'OUTPUT1', datatype: 'INT32', shape: [1, 16], values: range(16, (i) => i * 4 - 12) }] } },
  { title: 'unknown datatype', op: 'infer', model: 'add_sub', inputs: [{ name: 'INPUT0', datatype: 'INT128', shape: [1, 16], values: [] }, input1()], expect: { ok: false, class: 'INVALID_ARGUMENT', message: /^invalid datatype for input INPUT0/ } },
  { title: 'negative dim', op: 'infer', model: 'add_sub', inputs: [input0([-1, 16], X), input1()], expect: { ok: false, class: 'INVALID_ARGUMENT', message: /^Unable to parse 'shape': attempt to access JSON non-unsigned-integer as unsigned-integer: input 'INPUT0' dimension 0 is -1; each dimension must be a non-negative integer$/ } },
  { title: 'shape whose element count overflows int64', op: 'infer', model: 'add_sub', inputs: [input0([2 ** 32, 2 ** 32], [1]), input1()], expect: { ok: false, class: 'INVALID_ARGUMENT', message: /^invalid shape for input 'INPUT0': shape \[4294967296,4294967296\] causes total element count to exceed maximum size of 9223372036854775807$/ } },
  { title: 'shape whose byte size overflows int64', op: 'infer', model: 'add_sub', inputs: [input0([2 ** 31, 2 ** 31], [1]), input1()], expect: { ok: false, class: 'INVALID_ARGUMENT', message: /^byte size overflow for input 'INPUT0': element count \(4611686018427387904\) \* data type size \(4\) exceeds maximum allowed size \(9223372036854775807\)$/ } },

  // infer: element count against shape
  {
    title: 'element count does not match the shape (JSON data / typed contents)', op: 'infer', model: 'add_sub', via: ['json'],
    inputs: [input0([1, 16], X.slice(0, 15)), input1()], expect: { ok: false, class: 'INVALID_ARGUMENT', message: /INPUT0/ }, classOnly: JSON_DECODING,
  },
  {
    title: 'more elements than the shape (JSON data / typed contents)', op: 'infer', model: 'add_sub', via: ['json'],
    inputs: [input0([1, 16], [...X, 1]), input1()], expect: { ok: false, class: 'INVALID_ARGUMENT', message: /^(Unable to parse 'data': Shape does not match true shape of 'data' field: input 'INPUT0'|input byte size mismatch for input 'INPUT0' for model 'add_sub'\. Expected 64, got 68$)/ },
    classOnly: `${JSON_DECODING}: HTTP in Triton's JSON words, gRPC in its core's byte-size words (input byte size mismatch ... Expected 64, got 68)`,
  },
  {
    title: 'element count does not match the shape (binary / raw bytes)', op: 'infer', model: 'add_sub', via: ['binary'],
    inputs: [input0([1, 16], X.slice(0, 15)), input1()], expect: { ok: false, class: 'INVALID_ARGUMENT', message: /^input byte size mismatch for input 'INPUT0' for model 'add_sub'\. Expected 64, got 60$/ },
  },
  {
    title: 'BYTES element count does not match the shape (JSON data / typed contents)', op: 'infer', model: 'id_BYTES', via: ['json'],
    inputs: [{ name: 'IN_BYTES', datatype: 'BYTES', shape: [1, 3], values: ['a', 'b'] }], expect: { ok: false, class: 'INVALID_ARGUMENT', message: /IN_BYTES/ }, classOnly: JSON_DECODING,
  },
  {
    title: 'BYTES element count does not match the shape (binary / raw bytes)', op: 'infer', model: 'id_BYTES', via: ['binary'],
    inputs: [{ name: 'IN_BYTES', datatype: 'BYTES', shape: [1, 3], values: ['a', 'b'] }], expect: { ok: false, class: 'INVALID_ARGUMENT', message: /^expected 3 string elements for inference input 'IN_BYTES' for model 'id_BYTES', got 2$/ },
  },
  {
    title: 'INT8 element out of range (JSON data / typed contents)', op: 'infer', model: 'id_INT8', via: ['json'],
    inputs: [{ name: 'IN_INT8', datatype: 'INT8', shape: [1, 3], values: [200, 0, 1] }], expect: { ok: false, class: 'INVALID_ARGUMENT', message: /IN_INT8/ },
    classOnly: `${JSON_DECODING}; both range-check the element (binary / raw bytes cannot hold an out-of-range INT8 at all)`,
  },
  {
    title: 'input with an empty name', op: 'infer', model: 'add_sub', inputs: [int32('', [1, 16], X), input1()], expect: { ok: false, class: 'INVALID_ARGUMENT', message: /inputs\[0\]/ },
    classOnly: 'HTTP refuses the JSON field as not a non-empty string; proto3 cannot tell an empty name from a missing one and gRPC says it has no name',
  },
  {
    title: 'requested output with an empty name', op: 'infer', model: 'add_sub', inputs: ADD_SUB_INPUTS, outputs: [{ name: '' }], expect: { ok: false, class: 'INVALID_ARGUMENT' },
    classOnly: 'HTTP passes the empty string on and the engine refuses it as an unknown output; proto3 cannot tell empty from missing, so the gRPC codec refuses it as unnamed',
  },
  {
    title: 'malformed body (JSON / protobuf)', op: 'infer', model: 'add_sub', broken: { http: '{"inputs": [', grpc: Buffer.from([0x0a, 0xff, 0xff, 0xff]) },
    expect: { ok: false, class: 'INVALID_ARGUMENT' }, classOnly: 'a malformed JSON body and a malformed protobuf message fail in each protocol\'s own parser',
  },

  // infer: every datatype round trip through an identity model
  ...ORT_DATA_TYPES.filter((t) => t !== 'FP16').map((t): ParityCase => ({ title: `identity round trip ${t}`, op: 'infer', ...roundTrip(t, [1, 3], EDGE_VALUES[t]) })),
  ...ORT_DATA_TYPES.filter((t) => t !== 'FP16').map((t): ParityCase => ({ title: `identity round trip ${t}, batch of 2`, op: 'infer', ...roundTrip(t, [2, 3], [...EDGE_VALUES[t], ...EDGE_VALUES[t]]) })),
  { title: 'identity round trip FP16', op: 'infer', via: ['binary', 'binary-json-out'], ...roundTrip('FP16', [1, 3], EDGE_VALUES.FP16) },
  {
    title: 'FP16 over JSON data / typed contents', op: 'infer', via: ['json'], ...roundTrip('FP16', [1, 3], EDGE_VALUES.FP16),
    differs: {
      reason: 'v2 JSON carries FP16 as numbers, but ModelInferRequest has no typed field for FP16, so gRPC needs raw_input_contents',
      grpc: { ok: false, class: 'INVALID_ARGUMENT', message: /^input 'IN_FP16' is FP16, which has no typed contents field: send it in raw_input_contents$/ },
    },
  },
  {
    // ONNX Runtime for Node has no BF16 tensors (a BF16 identity model does not even load), so BF16 is checked up to the engine.
    title: 'BF16 is decoded on both sides and refused by the model\'s datatype check', op: 'infer', model: 'id_FP32', via: ['binary'],
    inputs: [{ name: 'IN_FP32', datatype: 'BF16', shape: [1, 3], values: EDGE_VALUES.BF16 }],
    expect: { ok: false, class: 'INVALID_ARGUMENT', message: /^inference input 'IN_FP32' data-type is 'BF16', but model 'id_FP32' expects 'FP32'$/ },
  },
  { title: 'INT64 beyond 2^53', op: 'infer', via: ['binary', 'binary-json-out'], ...roundTrip('INT64', [1, 3], BIG_INT64) },
  { title: 'UINT64 beyond 2^53', op: 'infer', via: ['binary', 'binary-json-out'], ...roundTrip('UINT64', [1, 3], BIG_UINT64) },
  {
    title: 'INT64 beyond 2^53 as JSON numbers / typed int64_contents', op: 'infer', via: ['json'], ...roundTrip('INT64', [1, 3], BIG_INT64),
  },
  { title: 'UINT64 beyond 2^53 as JSON numbers / typed uint64_contents', op: 'infer', via: ['json'], ...roundTrip('UINT64', [1, 3], BIG_UINT64) },
  { title: 'BYTES with UTF-8 and empty strings', op: 'infer', ...roundTrip('BYTES', [1, 5], ['', 'naïve café', '日本語', '🚀 emoji', '']) },
  { title: 'zero-size INT32 tensor', op: 'infer', ...roundTrip('INT32', [1, 0], []) },
  { title: 'zero-size BYTES tensor', op: 'infer', ...roundTrip('BYTES', [1, 0], []) },
  { title: 'zero-size FP16 tensor', op: 'infer', ...roundTrip('FP16', [1, 0], []) },

  // health, metadata and config
  { title: 'server live', op: 'serverLive', expect: { ok: true, value: { live: true } } },
  { title: 'server ready', op: 'serverReady', expect: { ok: true, value: { ready: true } } },
  { title: 'model ready (known)', op: 'modelReady', model: 'add_sub', expect: { ok: true, value: { ready: true } } },
  { title: 'model ready (known, version 1)', op: 'modelReady', model: 'add_sub', version: '1', expect: { ok: true, value: { ready: true } } },
  { title: 'model ready (unknown model)', op: 'modelReady', model: 'nope', expect: { ok: true, value: { ready: false } } },
  { title: 'model ready (unknown version)', op: 'modelReady', model: 'add_sub', version: '9', expect: { ok: true, value: { ready: false } } },
  { title: 'server metadata', op: 'serverMetadata', expect: { ok: true, value: { name: 'switchyard', version: SERVER_VERSION, extensions: [
    'classification', 'sequence', 'model_repository', 'model_repository(unload_dependents)', 'schedule_policy', 'model_configuration',
    'system_shared_memory', 'binary_tensor_data', 'parameters', 'statistics', 'trace', 'logging',
  ] } } },
  { title: 'model metadata (known)', op: 'modelMetadata', model: 'add_sub', expect: { ok: true, value: {
    name: 'add_sub', versions: ['1'], platform: 'onnxruntime_onnx',
    inputs: [{ name: 'INPUT0', datatype: 'INT32', shape: [-1, 16] }, { name: 'INPUT1', datatype: 'INT32', shape: [-1, 16] }],
    outputs: [{ name: 'OUTPUT0', datatype: 'INT32', shape: [-1, 16] }, { name: 'OUTPUT1', datatype: 'INT32', shape: [-1, 16] }],
  } } },
  { title: 'model metadata (known, version 1)', op: 'modelMetadata', model: 'add_sub', version: '1', expect: { ok: true } },
  { title: 'model metadata (BYTES identity)', op: 'modelMetadata', model: 'id_BYTES', expect: { ok: true } },
  { title: 'model metadata (unknown model)', op: 'modelMetadata', model: 'nope', expect: { ok: false, class: 'NOT_FOUND', message: /^Request for unknown model: 'nope' is not found$/ } },
  { title: 'model metadata (unknown version)', op: 'modelMetadata', model: 'add_sub', version: '3', expect: { ok: false, class: 'NOT_FOUND' } },
  { title: 'model metadata (non-numeric version)', op: 'modelMetadata', model: 'add_sub', version: 'abc', expect: { ok: false, class: 'INVALID_ARGUMENT' } },
  { title: 'model config (add_sub)', op: 'modelConfig', model: 'add_sub', expect: { ok: true } },
  { title: 'model config (BYTES identity, version 1)', op: 'modelConfig', model: 'id_BYTES', version: '1', expect: { ok: true } },
  { title: 'model config (unknown model)', op: 'modelConfig', model: 'nope', expect: { ok: false, class: 'NOT_FOUND' } },

  // statistics: after the cases above, so the counts are not all zero once the scheduler records them;
  // uint64 counts arrive as JSON numbers over HTTP and as Longs over gRPC, both normalised to numbers
  { title: 'model statistics, every model', op: 'modelStatistics', expect: { ok: true } },
  { title: 'model statistics', op: 'modelStatistics', model: 'add_sub', expect: { ok: true } },
  { title: 'model statistics, version 1', op: 'modelStatistics', model: 'add_sub', version: '1', expect: { ok: true } },
  { title: 'model statistics (unknown model)', op: 'modelStatistics', model: 'nope', expect: { ok: false, class: 'INVALID_ARGUMENT', message: /^requested model 'nope' is not available$/ } },
  { title: 'model statistics (unknown version)', op: 'modelStatistics', model: 'add_sub', version: '3', expect: { ok: false, class: 'INVALID_ARGUMENT', message: /^requested model version is not available for model 'add_sub' \(version 3; ready versions: 1\)$/ } },
  { title: 'model statistics (non-numeric version)', op: 'modelStatistics', model: 'add_sub', version: 'abc', expect: { ok: false, class: 'INVALID_ARGUMENT' } },

  // repository: HTTP routes being added
  { title: 'repository index', op: 'repositoryIndex', expect: { ok: true, value: INDEX }},
  { title: 'repository index, ready models only', op: 'repositoryIndex', readyOnly: true, expect: { ok: true, value: INDEX }},
  { title: 'model load', op: 'modelLoad', model: 'add_sub', expect: { ok: false, class: 'UNAVAILABLE', message: /^explicit model load \/ unload is not allowed/ }},
  { title: 'model unload', op: 'modelUnload', model: 'add_sub', expect: { ok: false, class: 'UNAVAILABLE', message: /^explicit model load \/ unload is not allowed/ }},
];

// ---- value encodings shared by both adapters --------------------------------

const FIXED_SIZE: Readonly<Record<string, number>> = {
  BOOL: 1, UINT8: 1, INT8: 1, UINT16: 2, INT16: 2, FP16: 2, BF16: 2, UINT32: 4, INT32: 4, FP32: 4, UINT64: 8, INT64: 8, FP64: 8,
};

/** Little-endian bytes of the values (BYTES: 4-byte length before each element); unknown datatypes give no bytes. */
function encodeBinary(datatype: string, values: readonly Scalar[]): Buffer {
  if (datatype === 'BYTES') {
    return Buffer.concat(values.flatMap((v) => {
      const bytes = Buffer.from(String(v), 'utf8');
      const length = Buffer.alloc(4);
      length.writeUInt32LE(bytes.byteLength);
      return [length, bytes];
    }));
  }
  const size = FIXED_SIZE[datatype];
  if (size === undefined) return Buffer.alloc(0);
  const out = Buffer.alloc(values.length * size);
  values.forEach((v, i) => {
    const at = i * size;
    switch (datatype) {
      case 'BOOL': out.writeUInt8(v ? 1 : 0, at); break;
      case 'UINT8': out.writeUInt8(Number(v), at); break;
      case 'INT8': out.writeInt8(Number(v), at); break;
      case 'UINT16': out.writeUInt16LE(Number(v), at); break;
      case 'INT16': out.writeInt16LE(Number(v), at); break;
      case 'FP16': out.writeUInt16LE(toHalfBits(Number(v)), at); break;
      case 'BF16': out.writeUInt16LE(toBfloat16Bits(Number(v)), at); break;
      case 'UINT32': out.writeUInt32LE(Number(v), at); break;
      case 'INT32': out.writeInt32LE(Number(v), at); break;
      case 'FP32': out.writeFloatLE(Number(v), at); break;
      case 'UINT64': out.writeBigUInt64LE(BigInt(v), at); break;
      case 'INT64': out.writeBigInt64LE(BigInt(v), at); break;
      case 'FP64': out.writeDoubleLE(Number(v), at); break;
    }
  });
  return out;
}

/** The inverse of encodeBinary, into the normalised value forms. */
function decodeBinary(datatype: string, bytes: Uint8Array): Scalar[] {
  const buf = Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  if (datatype === 'BYTES') {
    const out: string[] = [];
    for (let at = 0; at < buf.byteLength;) {
      const length = buf.readUInt32LE(at);
      out.push(buf.toString('utf8', at + 4, at + 4 + length));
      at += 4 + length;
    }
    return out;
  }
  const size = FIXED_SIZE[datatype];
  assert.ok(size, `no element size for ${datatype}`);
  return range(buf.byteLength / size, (i) => i * size).map((at): Scalar => {
    switch (datatype) {
      case 'BOOL': return buf.readUInt8(at) !== 0;
      case 'UINT8': return buf.readUInt8(at);
      case 'INT8': return buf.readInt8(at);
      case 'UINT16': return buf.readUInt16LE(at);
      case 'INT16': return buf.readInt16LE(at);
      case 'FP16': return fromHalfBits(buf.readUInt16LE(at));
      case 'BF16': return fromBfloat16Bits(buf.readUInt16LE(at));
      case 'UINT32': return buf.readUInt32LE(at);
      case 'INT32': return buf.readInt32LE(at);
      case 'FP32': return buf.readFloatLE(at);
      case 'UINT64': return buf.readBigUInt64LE(at);
      case 'INT64': return buf.readBigInt64LE(at);
      default: return buf.readDoubleLE(at);
    }
  });
}

/** A JSON value as normalised for its datatype: 64-bit integers as bigint. */
function normaliseJsonValue(datatype: string, value: unknown): Scalar {
  if ((datatype === 'INT64' || datatype === 'UINT64') && (typeof value === 'number' || typeof value === 'bigint')) return BigInt(value);
  return value as Scalar;
}

const BIG_MARK = '@@bigint:';

/** JSON.parse, except that integer literals past 2^53 come back as exact bigints instead of rounded numbers. */
function parseJsonExact(text: string): unknown {
  const marked = text.replace(/"(?:[^"\\]|\\.)*"|-?\d+(?:\.\d+)?(?:[eE][+-]?\d+)?/g, (token) =>
    (!token.startsWith('"') && /^-?\d+$/.test(token) && !Number.isSafeInteger(Number(token)) ? `"${BIG_MARK}${token}"` : token));
  return JSON.parse(marked, (_key, value: unknown) =>
    (typeof value === 'string' && value.startsWith(BIG_MARK) ? BigInt(value.slice(BIG_MARK.length)) : value));
}

/** JSON text in which bigints are written as exact integer literals. */
function stringifyExact(value: unknown): string {
  return JSON.stringify(value, (_key, v: unknown) => (typeof v === 'bigint' ? `${BIG_MARK}${v}` : v))
    .replace(/"@@bigint:(-?\d+)"/g, '$1');
}

// ---- the HTTP adapter ------------------------------------------------------

const HTTP_CLASS: Readonly<Record<number, ErrorClass>> = {
  400: 'INVALID_ARGUMENT', 404: 'NOT_FOUND', 413: 'RESOURCE_EXHAUSTED', 500: 'INTERNAL', 501: 'UNIMPLEMENTED', 503: 'UNAVAILABLE',
};

/** Thrown when the HTTP side has no route for a case (the fastify not-found handler answered): the case fails. */
class NoRoute extends Error {}

const NO_ROUTE = /^Not Found: no route for /;

function modelPath(c: ParityCase): string {
  const model = `/v2/models/${encodeURIComponent(c.model ?? '')}`;
  return c.version === undefined ? model : `${model}/versions/${encodeURIComponent(c.version)}`;
}

interface HttpRequest {
  readonly method: 'GET' | 'POST';
  readonly path: string;
  readonly body?: string | Buffer;
  readonly headers?: Record<string, string>;
}

function httpInferRequest(c: ParityCase, via: Via): HttpRequest {
  const path = `${modelPath(c)}/infer`;
  if (c.broken) return { method: 'POST', path, body: c.broken.http };
  const binaryIn = via !== 'json';
  const chunks: Buffer[] = [];
  const inputs = (c.inputs ?? []).map((t) => {
    if (!binaryIn) return { name: t.name, datatype: t.datatype, shape: t.shape, data: t.values };
    const bytes = encodeBinary(t.datatype, t.values);
    chunks.push(bytes);
    return { name: t.name, datatype: t.datatype, shape: t.shape, parameters: { binary_data_size: bytes.byteLength } };
  });
  const parameters = { ...c.parameters, ...(via === 'binary' ? { binary_data_output: true } : {}) };
  const header = stringifyExact({
    ...(c.id !== undefined ? { id: c.id } : {}),
    ...(Object.keys(parameters).length > 0 ? { parameters } : {}),
    inputs,
    ...(c.outputs ? { outputs: c.outputs.map((o) => ({ name: o.name, ...(o.parameters ? { parameters: o.parameters } : {}) })) } : {}),
  });
  if (!binaryIn) return { method: 'POST', path, body: header, headers: { 'content-type': 'application/json' } };
  const json = Buffer.from(header, 'utf8');
  return {
    method: 'POST', path, body: Buffer.concat([json, ...chunks]),
    headers: { 'content-type': 'application/octet-stream', 'inference-header-content-length': String(json.byteLength) },
  };
}

function httpRequest(c: ParityCase, via: Via): HttpRequest {
  switch (c.op) {
    case 'infer': return httpInferRequest(c, via);
    case 'serverLive': return { method: 'GET', path: '/v2/health/live' };
    case 'serverReady': return { method: 'GET', path: '/v2/health/ready' };
    case 'modelReady': return { method: 'GET', path: `${modelPath(c)}/ready` };
    case 'serverMetadata': return { method: 'GET', path: '/v2' };
    case 'modelMetadata': return { method: 'GET', path: modelPath(c) };
    case 'modelConfig': return { method: 'GET', path: `${modelPath(c)}/config` };
    case 'repositoryIndex': return { method: 'POST', path: '/v2/repository/index', body: JSON.stringify(c.readyOnly ? { ready: true } : {}) };
    case 'modelStatistics': return { method: 'GET', path: c.model === undefined ? '/v2/models/stats' : `${modelPath(c)}/stats` };
    case 'modelLoad': return { method: 'POST', path: `/v2/repository/models/${encodeURIComponent(c.model ?? '')}/load`, body: '{}' };
    case 'modelUnload': return { method: 'POST', path: `/v2/repository/models/${encodeURIComponent(c.model ?? '')}/unload`, body: '{}' };
  }
}

interface HttpOutputJson {
  name: string;
  datatype: string;
  shape: number[];
  data?: unknown[];
  parameters?: { binary_data_size?: number };
}

function normaliseHttpInfer(body: Buffer, headerLength: string | null): Outcome {
  const jsonLength = headerLength === null ? body.byteLength : Number(headerLength);
  const json = parseJsonExact(body.toString('utf8', 0, jsonLength)) as {
    id?: string; model_name: string; model_version: string; outputs: HttpOutputJson[];
  };
  let offset = jsonLength;
  const outputs = json.outputs.map((o): NormalTensor => {
    const size = o.parameters?.binary_data_size;
    let values: Scalar[];
    if (size !== undefined) {
      values = decodeBinary(o.datatype, body.subarray(offset, offset + size));
      offset += size;
    } else {
      values = (o.data ?? []).map((v) => normaliseJsonValue(o.datatype, v));
    }
    return { name: o.name, datatype: o.datatype, shape: o.shape, values };
  });
  assert.equal(offset, body.byteLength, 'the HTTP binary section holds exactly the announced outputs');
  // A v2 HTTP response leaves out an id that was not given; proto3 has no absent string, so gRPC says ''.
  return { ok: true, model_name: json.model_name, model_version: json.model_version, id: json.id ?? '', outputs };
}

async function runHttp(baseUrl: string, c: ParityCase, via: Via): Promise<Outcome> {
  const request = httpRequest(c, via);
  const res = await fetch(`${baseUrl}${request.path}`, {
    method: request.method,
    ...(request.body !== undefined ? { body: typeof request.body === 'string' ? request.body : new Uint8Array(request.body) } : {}),
    headers: request.headers ?? (request.body !== undefined ? { 'content-type': 'application/json' } : {}),
  });
  const body = Buffer.from(await res.arrayBuffer());
  const text = body.toString('utf8');
  if (res.status !== 200) {
    const error = (text === '' ? {} : JSON.parse(text)) as { error?: string };
    if (res.status === 404 && NO_ROUTE.test(error.error ?? '')) {
      throw new NoRoute(`the HTTP side has no route for '${c.op}' (${request.method} ${request.path}): ${error.error}`);
    }
    // Readiness answers with the status code; gRPC answers the same question with a bool.
    if (res.status === 400 && ((c.op === 'modelReady' && error.error === 'Model version not ready')
      || ((c.op === 'serverLive' || c.op === 'serverReady') && text === ''))) {
      return { ok: true, value: { [c.op === 'serverLive' ? 'live' : 'ready']: false } };
    }
    return { ok: false, class: HTTP_CLASS[res.status] ?? `HTTP ${res.status}`, message: error.error ?? text };
  }
  switch (c.op) {
    case 'infer': return normaliseHttpInfer(body, res.headers.get('inference-header-content-length'));
    case 'serverLive':
      assert.equal(text, '');
      return { ok: true, value: { live: true } };
    case 'serverReady':
    case 'modelReady':
      assert.equal(text, '');
      return { ok: true, value: { ready: true } };
    default:
      return { ok: true, value: JSON.parse(text) };
  }
}

// ---- the gRPC adapter ------------------------------------------------------

const CONTENTS_FIELD: Readonly<Record<string, string>> = {
  BOOL: 'bool_contents', INT8: 'int_contents', INT16: 'int_contents', INT32: 'int_contents', INT64: 'int64_contents',
  UINT8: 'uint_contents', UINT16: 'uint_contents', UINT32: 'uint_contents', UINT64: 'uint64_contents',
  FP32: 'fp32_contents', FP64: 'fp64_contents', BYTES: 'bytes_contents',
};

function parameterMessage(value: Scalar): Message {
  if (typeof value === 'boolean') return { bool_param: value };
  if (typeof value === 'string') return { string_param: value };
  if (typeof value === 'bigint') return { int64_param: String(value) };
  return Number.isInteger(value) ? { int64_param: value } : { double_param: value };
}

const parameterMap = (params: Readonly<Record<string, Scalar>>): Message =>
  Object.fromEntries(Object.entries(params).map(([k, v]) => [k, parameterMessage(v)]));

/** Typed contents for a tensor; FP16, BF16 and unknown datatypes have no field and send none. */
function typedContents(t: TensorSpec): Message | undefined {
  const field = CONTENTS_FIELD[t.datatype];
  if (!field) return undefined;
  const values = t.values.map((v) => {
    if (t.datatype === 'BYTES') return Buffer.from(String(v), 'utf8');
    if (typeof v === 'bigint') return String(v);
    return v;
  });
  return { [field]: values };
}

function grpcInferRequest(c: ParityCase, via: Via): Message {
  const raw = via !== 'json';
  const inputs = c.inputs ?? [];
  return {
    model_name: c.model ?? '',
    ...(c.version !== undefined ? { model_version: c.version } : {}),
    ...(c.id !== undefined ? { id: c.id } : {}),
    ...(c.parameters ? { parameters: parameterMap(c.parameters) } : {}),
    inputs: inputs.map((t) => {
      const contents = raw ? undefined : typedContents(t);
      return { name: t.name, datatype: t.datatype, shape: t.shape, ...(contents ? { contents } : {}) };
    }),
    ...(c.outputs ? { outputs: c.outputs.map((o) => ({ name: o.name, ...(o.parameters ? { parameters: parameterMap(o.parameters) } : {}) })) } : {}),
    ...(raw ? { raw_input_contents: inputs.map((t) => encodeBinary(t.datatype, t.values)) } : {}),
  };
}

/** A protobufjs 64-bit value (Long or number) as a bigint. */
function longValue(value: unknown, unsigned: boolean): bigint {
  if (typeof value === 'number') return BigInt(value);
  const long = value as { low: number; high: number };
  const bits = (BigInt(long.high >>> 0) << 32n) | BigInt(long.low >>> 0);
  return unsigned ? bits : BigInt.asIntN(64, bits);
}

function normaliseGrpcInfer(response: Message): Outcome {
  const raw = (response['raw_output_contents'] ?? []) as Uint8Array[];
  const outputs = (response['outputs'] as Message[]).map((o, index): NormalTensor => {
    const datatype = o['datatype'] as string;
    let values: Scalar[];
    if (raw.length > 0) {
      values = decodeBinary(datatype, raw[index] ?? new Uint8Array(0));
    } else {
      const field = CONTENTS_FIELD[datatype];
      assert.ok(field, `typed contents for ${datatype}`);
      const items = ((o['contents'] as Message | null)?.[field] ?? []) as unknown[];
      values = items.map((v): Scalar => {
        if (datatype === 'INT64' || datatype === 'UINT64') return longValue(v, datatype === 'UINT64');
        if (datatype === 'BYTES') return Buffer.from(v as Uint8Array).toString('utf8');
        return v as Scalar;
      });
    }
    return { name: o['name'] as string, datatype, shape: (o['shape'] as unknown[]).map((d) => Number(longValue(d, false))), values };
  });
  return { ok: true, model_name: response['model_name'], model_version: response['model_version'], id: response['id'], outputs };
}

const TO_OBJECT = { enums: String, longs: Number, defaults: true, arrays: true, objects: true } as const;

/**
 * With `defaults: true`, protobufjs's toObject writes an unset sub-message
 * (reshape, rate_limiter, optimization, response_cache, model_metrics...) as
 * null. It is absent on the wire, and the HTTP JSON leaves it out, as
 * protobuf's JSON printer (Triton's) does; no config field holds a null.
 */
function withoutNulls(value: unknown): unknown {
  if (Array.isArray(value)) return value.map(withoutNulls);
  if (typeof value !== 'object' || value === null || ArrayBuffer.isView(value)) return value;
  return Object.fromEntries(Object.entries(value).filter(([, v]) => v !== null).map(([k, v]) => [k, withoutNulls(v)]));
}

function grpcCall(c: ParityCase, via: Via): { method: string; request: Message | Buffer; read: (response: Message) => Outcome } {
  const name = c.model ?? '';
  const version = c.version ?? '';
  const plain = (type: string) => (response: Message): Outcome => ({ ok: true, value: grpcType(type).toObject(response as never, TO_OBJECT) });
  switch (c.op) {
    case 'infer': return { method: 'ModelInfer', request: c.broken ? c.broken.grpc : grpcInferRequest(c, via), read: normaliseGrpcInfer };
    case 'serverLive': return { method: 'ServerLive', request: {}, read: plain('inference.ServerLiveResponse') };
    case 'serverReady': return { method: 'ServerReady', request: {}, read: plain('inference.ServerReadyResponse') };
    case 'modelReady': return { method: 'ModelReady', request: { name, version }, read: plain('inference.ModelReadyResponse') };
    case 'serverMetadata': return { method: 'ServerMetadata', request: {}, read: plain('inference.ServerMetadataResponse') };
    case 'modelMetadata': return { method: 'ModelMetadata', request: { name, version }, read: plain('inference.ModelMetadataResponse') };
    case 'modelConfig':
      return {
        method: 'ModelConfig', request: { name, version },
        read: (response) => ({ ok: true, value: withoutNulls(grpcType('inference.ModelConfig').toObject(response['config'], TO_OBJECT)) }),
      };
    case 'repositoryIndex':
      return {
        method: 'RepositoryIndex', request: { ready: c.readyOnly === true },
        // HTTP answers the bare list; gRPC wraps it in `models`.
        read: (response) => ({ ok: true, value: (grpcType('inference.RepositoryIndexResponse').toObject(response as never, TO_OBJECT) as { models: unknown[] }).models }),
      };
    case 'modelStatistics': return { method: 'ModelStatistics', request: { name, version }, read: plain('inference.ModelStatisticsResponse') };
    case 'modelLoad': return { method: 'RepositoryModelLoad', request: { model_name: name }, read: () => ({ ok: true, value: {} }) };
    case 'modelUnload': return { method: 'RepositoryModelUnload', request: { model_name: name }, read: () => ({ ok: true, value: {} }) };
  }
}

async function runGrpc(client: RawGrpcClient, c: ParityCase, via: Via): Promise<Outcome> {
  const { method, request, read } = grpcCall(c, via);
  const { response, error } = await client.call(method, request);
  if (error) return { ok: false, class: grpcStatus[error.code] ?? `code ${error.code}`, message: error.details };
  return read(response!);
}

// ---- running the table -----------------------------------------------------

function assertExpected(outcome: Outcome, expect: Expect, side: string): void {
  const shown = (): string => stringifyExact(outcome);
  if (!expect.ok) {
    assert.equal(outcome.ok, false, `${side}: expected ${expect.class}, got ${shown()}`);
    if (outcome.ok) return;
    assert.equal(outcome.class, expect.class, `${side}: ${shown()}`);
    if (expect.message) assert.match(outcome.message, expect.message, side);
    return;
  }
  assert.equal(outcome.ok, true, `${side}: expected success, got ${shown()}`);
  if ('outputs' in outcome) {
    if (expect.outputs) assert.deepStrictEqual(outcome.outputs, expect.outputs, side);
    if (expect.id !== undefined) assert.equal(outcome.id, expect.id, side);
    if (expect.model_version !== undefined) assert.equal(outcome.model_version, expect.model_version, side);
  } else if ('value' in outcome && expect.value !== undefined) {
    assert.deepStrictEqual(outcome.value, expect.value, side);
  }
}

function assertParity(c: ParityCase, http: Outcome, grpc: Outcome): void {
  if (c.classOnly) {
    assert.equal(http.ok, false);
    assert.equal(grpc.ok, false, `gRPC: ${stringifyExact(grpc)}`);
    if (!http.ok && !grpc.ok) assert.equal(grpc.class, http.class, `gRPC ${grpc.message} / HTTP ${http.message}`);
    assertExpected(grpc, c.expect, 'gRPC');
    return;
  }
  assert.deepStrictEqual(grpc, http, 'gRPC (actual) against HTTP (expected)');
}

/** The transports a case runs over: non-infer cases have no tensors, so one run. */
const viasOf = (c: ParityCase): readonly Via[] => (c.op === 'infer' && !c.broken ? c.via ?? ['json', 'binary'] : ['json']);

describe('HTTP/gRPC parity', () => {
  let root: string;
  let fixture: DualFixture;
  let client: RawGrpcClient;

  before(async () => {
    root = await makeRepository({
      add_sub: { config: addSubConfig('add_sub', ADD_SUB_EXTRA), versions: { 1: addSubModel() } },
      ...Object.fromEntries(ORT_DATA_TYPES.map((t) => [`id_${t}`, { config: identityConfig(t), versions: { 1: null } }])),
    });
    fixture = await startBoth(root, { backends: withTestBackends(new EchoBackend()) });
    client = new RawGrpcClient(fixture.grpcAddress);
  });

  after(async () => {
    client?.close();
    await fixture?.close();
    if (root) await removeRepository(root);
  });

  for (const c of CASES) {
    for (const via of viasOf(c)) {
      const name = c.op === 'infer' && !c.broken ? `${c.title} [${via}]` : c.title;
      test(name, c.knownMismatch ? { todo: c.knownMismatch } : {}, async () => {
        // A missing HTTP route throws NoRoute, failing the case: every operation must exist on both sides.
        const http = await runHttp(fixture.httpUrl, c, via);
        const grpc = await runGrpc(client, c, via);
        if (c.differs) {
          assertExpected(http, c.expect, 'HTTP');
          assertExpected(grpc, c.differs.grpc, 'gRPC');
          return;
        }
        assertParity(c, http, grpc);
        assertExpected(http, c.expect, 'HTTP');
      });
    }
  }
});
