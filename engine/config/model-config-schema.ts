/**
 * The reflected `inference.ModelConfig` schema, read once from
 * proto/model_config.proto with Triton's snake_case field names kept.
 */
import { fileURLToPath } from 'node:url';
import protobuf from 'protobufjs';

const PROTO_FILE = fileURLToPath(new URL('../../proto/model_config.proto', import.meta.url));

let root: protobuf.Root | undefined;

export function modelConfigRoot(): protobuf.Root {
  if (!root) {
    root = new protobuf.Root();
    root.loadSync(PROTO_FILE, { keepCase: true });
    root.resolveAll();
  }
  return root;
}

export function modelConfigType(): protobuf.Type {
  return modelConfigRoot().lookupType('inference.ModelConfig');
}

/** Plain-object form of a ModelConfig: snake_case keys, enums as names, int64 as numbers. */
export type ModelConfigObject = Record<string, unknown>;

export function toPlainObject(message: protobuf.Message, withDefaults = false): ModelConfigObject {
  return modelConfigType().toObject(message, {
    enums: String,
    longs: Number,
    arrays: true,
    objects: true,
    oneofs: false,
    defaults: withDefaults,
  }) as ModelConfigObject;
}
