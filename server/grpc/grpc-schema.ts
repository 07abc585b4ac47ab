/**
 * The reflected gRPC schema: proto/grpc_service.proto (Triton's
 * `inference` package, which imports model_config.proto) and
 * proto/health.proto, loaded once with Triton's snake_case field names.
 */
import { fileURLToPath } from 'node:url';
import path from 'node:path';
import protobuf from 'protobufjs';

const PROTO_DIR = fileURLToPath(new URL('../../proto/', import.meta.url));

export const INFERENCE_SERVICE = 'inference.GRPCInferenceService';
export const HEALTH_SERVICE = 'grpc.health.v1.Health';

let root: protobuf.Root | undefined;

export function grpcRoot(): protobuf.Root {
  if (!root) {
    const loaded = new protobuf.Root();
    loaded.resolvePath = (_origin, target) => path.join(PROTO_DIR, path.basename(target));
    loaded.loadSync(['grpc_service.proto', 'health.proto'], { keepCase: true });
    loaded.resolveAll();
    root = loaded;
  }
  return root;
}

let requestRoot: protobuf.Root | undefined;

/**
 * ModelInferRequest as the server decodes it: without
 * InferInputTensor.contents, which protobufjs then skips whole; the server
 * reads each input's contents off the wire itself (tensor-contents-wire.ts).
 */
export function grpcRequestType(): protobuf.Type {
  if (!requestRoot) {
    const loaded = new protobuf.Root();
    loaded.resolvePath = (_origin, target) => path.join(PROTO_DIR, path.basename(target));
    loaded.loadSync(['grpc_service.proto'], { keepCase: true });
    const input = loaded.lookupType('inference.ModelInferRequest.InferInputTensor');
    input.remove(input.fields['contents']!);
    loaded.resolveAll();
    requestRoot = loaded;
  }
  return requestRoot.lookupType('inference.ModelInferRequest');
}

export function grpcType(name: string): protobuf.Type {
  return grpcRoot().lookupType(name);
}

export function grpcService(name: string): protobuf.Service {
  return grpcRoot().lookupService(name);
}
