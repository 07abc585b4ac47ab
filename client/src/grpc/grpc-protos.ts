/**
 * The gRPC schema, reflected from grpc_service.proto (which imports
 * model_config.proto) with Triton's snake_case field names kept. The built
 * package carries the .proto files in dist/proto; the source tree reads the
 * repository's proto/ folder.
 */
import { existsSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import protobuf from 'protobufjs';

/** Where the .proto files are: beside the built package first, then the repository's proto/. */
const PROTO_DIR_CANDIDATES = [new URL('../../proto/', import.meta.url), new URL('../../../proto/', import.meta.url)]
  .map((url) => fileURLToPath(url));

let root: protobuf.Root | undefined;

function protoDir(): string {
  const found = PROTO_DIR_CANDIDATES.find((dir) => existsSync(path.join(dir, 'grpc_service.proto')));
  if (!found) throw new Error(`grpc_service.proto not found in ${PROTO_DIR_CANDIDATES.join(' or ')}`);
  return found;
}

/** The loaded and resolved schema, read once. */
export function grpcRoot(): protobuf.Root {
  if (!root) {
    const dir = protoDir();
    const loaded = new protobuf.Root();
    loaded.resolvePath = (_origin, target) => path.join(dir, path.basename(target));
    loaded.loadSync('grpc_service.proto', { keepCase: true });
    loaded.resolveAll();
    root = loaded;
  }
  return root;
}

/** A message type of the `inference` package, e.g. 'ModelInferRequest'. */
export function inferenceType(name: string): protobuf.Type {
  return grpcRoot().lookupType(`inference.${name}`);
}
