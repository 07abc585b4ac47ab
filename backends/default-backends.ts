/**
 * The backends this build ships, in one registry: the one place that names
 * them. The composition root (server/composition-root.ts) serves with it;
 * tests that read configs without a server use it too.
 */
import { BackendRegistry } from '../engine/backend-registry.ts';
import type { OnnxBackendSettings } from './onnxruntime/onnx-backend-settings.ts';
import { OnnxBackend } from './onnxruntime/onnx-backend.ts';
import { TypeScriptBackend } from './typescript/typescript-backend.ts';

/** --backend-config settings of the backends this build ships. */
export interface DefaultBackendSettings {
  readonly onnxruntime?: OnnxBackendSettings;
}

/**
 * ONNX Runtime (`backend: "onnxruntime"`, `platform: "onnxruntime_onnx"`,
 * and what a config naming neither gets) and TypeScript scripts
 * (`backend: "typescript"`).
 */
export function defaultBackends(settings: DefaultBackendSettings = {}): BackendRegistry {
  return BackendRegistry.of([new OnnxBackend(settings.onnxruntime), new TypeScriptBackend()], { defaultBackend: 'onnxruntime' });
}
