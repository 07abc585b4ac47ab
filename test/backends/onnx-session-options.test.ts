/**
 * The ONNX Runtime session options an instance gets from its config:
 * Triton's `optimization { graph { level } }` and execution accelerators,
 * as its onnxruntime backend reads them, and the repository-agent and
 * custom-operator fields refused at load rather than silently skipped.
 */
import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import type { ModelLoadContext } from '../../engine/backend.ts';
import { sessionOptions } from '../../backends/onnxruntime/onnx-model.ts';
import { readModelSettings } from '../../engine/config/compile-model-config.ts';
import { parseModelConfig } from '../../engine/config/parse-model-config.ts';
import type { InferenceEngine } from '../../engine/inference-engine.ts';
import { addSubModel } from '../../generator/models.ts';
import { addSubConfig } from '../helpers/fixture-configs.ts';
import { makeRepository, removeRepository, startEngine } from '../helpers/fixture-repository.ts';
import { defaultBackends } from '../../backends/default-backends.ts';

/** The backends `switchyard` serves with, which configs are read against. */
const BACKENDS = defaultBackends();

function optionsFor(pbtxt: string) {
  const parsed = parseModelConfig('/r/m/config.pbtxt', pbtxt);
  const settings = readModelSettings('m', '/r/m', parsed, BACKENDS);
  const context: ModelLoadContext = { modelName: 'm', version: 1, modelDir: '/r/m', versionDir: '/r/m/1', settings, config: parsed.config };
  return (): ReturnType<typeof sessionOptions> => sessionOptions(context, {}, settings.instanceGroups[0]!);
}

test('optimization.graph.level maps as Triton\'s onnxruntime backend maps it; the parameter wins over it', () => {
  const cases: ReadonlyArray<[string, string]> = [
    ['', 'all'], ['optimization { graph { level: -1 } }', 'basic'], ['optimization { graph { level: 0 } }', 'all'],
    ['optimization { graph { level: 1 } }', 'extended'], ['optimization { graph { level: 2 } }', 'disabled'],
    ['optimization { graph { level: 7 } }', 'all'],
    ['optimization { graph { level: 1 } } parameters { key: "graph_optimization_level" value: { string_value: "basic" } }', 'basic'],
  ];
  for (const [config, level] of cases) assert.equal(optionsFor(config)().graphOptimizationLevel, level, config);
});

test('allow_spinning: true by default (ONNX Runtime\'s own), false turns spinning off in both pools; anything else is refused', async () => {
  const spin = (value?: string) => optionsFor(value === undefined ? '' : `parameters { key: "allow_spinning" value: { string_value: "${value}" } }`)();
  assert.equal(spin().allowSpinning, true);
  assert.equal(spin('true').allowSpinning, true);
  assert.equal(spin('false').allowSpinning, false);
  for (const bad of ['0', 'no', 'FALSE', '']) {
    assert.throws(() => spin(bad), /parameters 'allow_spinning' is '[^']*': use 'true' .* or 'false'/);
  }
  const { ortSessionOptions } = await import('../../backends/onnxruntime/ort-run.mjs');
  assert.deepEqual((ortSessionOptions(spin('false')) as { extra?: unknown }).extra,
    { session: { intra_op: { allow_spinning: '0' }, inter_op: { allow_spinning: '0' } } });
  assert.equal((ortSessionOptions(spin()) as { extra?: unknown }).extra, undefined);
});

test('execution accelerators: none on this build for CPU, only CUDA for GPU instances, with Triton\'s wording', () => {
  assert.throws(optionsFor('optimization { execution_accelerators { cpu_execution_accelerator [ { name: "openvino" } ] } }'),
    /^Error: unknown Execution Accelerator 'openvino' is requested \(optimization\.execution_accelerators\): onnxruntime-node has no OpenVINO/);
  // GPU accelerators concern GPU instances only: a CPU instance ignores them, as in Triton.
  assert.equal(optionsFor('optimization { execution_accelerators { gpu_execution_accelerator [ { name: "tensorrt" } ] } }')().executionProvider, 'cpu');
  const gpu = 'instance_group [ { kind: KIND_GPU gpus: [ 1 ] } ] ';
  assert.throws(optionsFor(`${gpu}optimization { execution_accelerators { gpu_execution_accelerator [ { name: "tensorrt" } ] } }`),
    /unknown Execution Accelerator 'tensorrt' is requested .*CUDA execution provider only/);
  const cuda = optionsFor(`${gpu}optimization { execution_accelerators { gpu_execution_accelerator [ { name: "cuda" } ] } }`)();
  assert.deepEqual([cuda.executionProvider, cuda.deviceId], ['cuda', 1]);
});

let root: string;
let engine: InferenceEngine;

before(async () => {
  root = await makeRepository({
    agents: { config: addSubConfig('agents', 'model_repository_agents { agents [ { name: "checksum" } ] }\n'), versions: { 1: addSubModel() } },
    custom_ops: { config: addSubConfig('custom_ops', 'model_operations { op_library_filename: [ "libcustom.so" ] }\n'), versions: { 1: addSubModel() } },
    openvino: {
      config: addSubConfig('openvino', 'optimization { execution_accelerators { cpu_execution_accelerator [ { name: "openvino" } ] } }\n'),
      versions: { 1: addSubModel() },
    },
    fine: { config: addSubConfig('fine', 'optimization { graph { level: 2 } }\n'), versions: { 1: addSubModel() } },
  });
  engine = await startEngine(root);
});

after(async () => {
  await engine?.close();
  await removeRepository(root);
});

test('a model whose config needs a repository agent, a custom-op library or OpenVINO stays unavailable and says why; the rest serve', () => {
  const reason = (name: string): string => engine.repositoryIndex().find((e) => e.name === name)?.reason ?? '';
  const state = (name: string): string | undefined => engine.repositoryIndex().find((e) => e.name === name)?.state;
  assert.equal(state('agents'), 'UNAVAILABLE');
  assert.match(reason('agents'), /model_repository_agents\.agents: names 'checksum', but this Switchyard build runs no repository agents/);
  assert.equal(state('custom_ops'), 'UNAVAILABLE');
  assert.match(reason('custom_ops'), /model_operations\.op_library_filename: names custom operator libraries/);
  assert.equal(state('openvino'), 'UNAVAILABLE');
  assert.match(reason('openvino'), /unknown Execution Accelerator 'openvino' is requested/);
  assert.equal(state('fine'), 'READY', 'graph level 2 (no optimization) loads and serves');
});
