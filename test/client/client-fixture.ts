/**
 * The repository and servers the client tests run against: one engine with
 * both frontends (HTTP and gRPC) on loopback ports, serving real ONNX
 * add_sub models, and identities and a held model on the in-memory test
 * backends (test/helpers/test-backends.ts).
 */
import { addSubModel, ORT_DATA_TYPES } from '../../generator/models.ts';
import type { DataType } from '../../engine/tensor.ts';
import { addSubConfig } from '../helpers/fixture-configs.ts';
import { makeRepository, removeRepository, startBoth, type DualFixture } from '../helpers/fixture-repository.ts';
import { EchoBackend, SlowBackend, withTestBackends } from '../helpers/test-backends.ts';

const configType = (t: DataType): string => (t === 'BYTES' ? 'TYPE_STRING' : `TYPE_${t}`);

/** add_sub with a config that sets maps, enums, int64 fields and nested messages, to compare config over both transports. */
export const ADD_SUB_CONFIG = addSubConfig('add_sub', `
version_policy: { all { } }
dynamic_batching { preferred_batch_size: [ 2, 4 ] max_queue_delay_microseconds: 100 }
instance_group [ { count: 2 kind: KIND_CPU } ]
parameters { key: "intra_op_thread_count" value: { string_value: "1" } }
`);

/** An identity model's config on the echo test backend: IN_<T> -> OUT_<T> for each datatype, shape [batch, -1]. */
function identityConfig(name: string, datatypes: readonly DataType[]): string {
  const tensors = (prefix: string): string => datatypes.map((t) => `  { name: "${prefix}_${t}" data_type: ${configType(t)} dims: [ -1 ] }`).join(',\n');
  return `name: "${name}"\nbackend: "test_echo"\nmax_batch_size: 4\ninput [\n${tensors('IN')}\n]\noutput [\n${tensors('OUT')}\n]\n`;
}

const identity = (name: string, datatypes: readonly DataType[]) =>
  ({ config: identityConfig(name, datatypes), versions: { 1: null } });

/** Rows of a full batch of `heavy`. */
export const HEAVY_ROWS = 64;
/** Width of `heavy`'s INPUT and OUTPUT. */
export const HEAVY_WIDTH = 16;

/** `heavy` on the slow test backend: each execution waits until the test lets it through (ClientFixture.heavy), so requests wait behind it. */
const HEAVY_CONFIG = `name: "heavy"\nbackend: "test_slow"\nmax_batch_size: ${HEAVY_ROWS}
input [ { name: "INPUT" data_type: TYPE_FP32 dims: [ ${HEAVY_WIDTH} ] } ]
output [ { name: "OUTPUT" data_type: TYPE_FP32 dims: [ ${HEAVY_WIDTH} ] } ]
`;

export interface ClientFixture extends DualFixture {
  /** grpc://127.0.0.1:<port> */
  readonly grpcUrl: string;
  /** The gate of `heavy`'s executions; open unless a test closes it. */
  readonly heavy: SlowBackend;
  cleanup(): Promise<void>;
}

/**
 * Starts both frontends over add_sub (versions 1 and 2), an INT64 add_sub,
 * identity models (every datatype at once, and INT64/UINT64, BYTES, FP16
 * alone), a model held by the test (heavy), and a model that fails to
 * load (readiness is not strict, so the server is still ready).
 */
export async function startClientFixture(): Promise<ClientFixture> {
  const root = await makeRepository({
    add_sub: { config: ADD_SUB_CONFIG, versions: { 1: addSubModel('INT32', 16), 2: addSubModel('INT32', 16) } },
    add_sub_int64: { config: 'max_batch_size: 8\n', versions: { 1: addSubModel('INT64', 4) } },
    identity: identity('identity', ORT_DATA_TYPES),
    identity_int64: identity('identity_int64', ['INT64', 'UINT64']),
    identity_bytes: identity('identity_bytes', ['BYTES']),
    identity_fp16: identity('identity_fp16', ['FP16']),
    heavy: { config: HEAVY_CONFIG, versions: { 1: null } },
    broken: { config: 'name: "broken"\nplatform: "onnxruntime_onnx"\n', versions: { 1: new Uint8Array([1, 2, 3]) } },
  });
  const heavy = new SlowBackend();
  heavy.open();
  const both = await startBoth(root, { strictReadiness: false, backends: withTestBackends(new EchoBackend(), heavy) });
  return {
    ...both,
    grpcUrl: `grpc://${both.grpcAddress}`,
    heavy,
    async cleanup() {
      heavy.open();
      await both.close();
      await removeRepository(root);
    },
  };
}
