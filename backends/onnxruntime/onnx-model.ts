/**
 * One version of an ONNX model. Opening it starts the first instance's
 * worker, whose session reports the model's signature; that worker then
 * serves as the first instance, so the model is read once per instance.
 */
import { stat } from 'node:fs/promises';
import type { CompiledModelConfig, InstanceGroupSpec } from '../../engine/config/compiled-model-config.ts';
import type { ModelSignature } from '../../engine/config/model-signature.ts';
import { BufferPool } from '../../engine/memory/buffer-pool.ts';
import type { BackendInstance, BackendModel, ModelLoadContext } from '../../engine/backend.ts';
import { MODEL_PACKAGE_FILE, modelFileOf } from '../model-file.ts';
import { OnnxInstance } from './onnx-instance.ts';
import type { OnnxBackendSettings } from './onnx-backend-settings.ts';
import { systemClock, type Clock } from '../../engine/scheduling/clock.ts';
import type { WorkerSessionOptions } from './worker-protocol.ts';
import { readExecutionThread } from './execution-thread.ts';

const OPTIMIZATION_LEVELS = ['disabled', 'basic', 'extended', 'all'] as const;

export class OnnxModel implements BackendModel {
  private spare: OnnxInstance | undefined;
  private readonly instances: OnnxInstance[] = [];

  private constructor(
    private readonly context: ModelLoadContext,
    private readonly defaults: OnnxBackendSettings,
    private readonly modelPath: string,
    private readonly modelBytes: number,
    private readonly pool: BufferPool,
    readonly signature: ModelSignature,
    first: OnnxInstance,
    private readonly clock: Clock,
  ) {
    this.spare = first;
  }

  static async create(context: ModelLoadContext, defaults: OnnxBackendSettings = {}, clock: Clock = systemClock): Promise<OnnxModel> {
    const modelPath = await modelFileOf(context);
    const found = await stat(modelPath).catch(() => undefined);
    if (!found?.isFile()) {
      throw new Error(`version ${context.version} has no ${context.settings.defaultModelFilename}: expected the model file at ${modelPath}`);
    }
    // Every instance shares one pool, so memory released by one run serves the next on any instance.
    const pool = context.bufferPool ?? new BufferPool();
    const firstGroup = context.settings.instanceGroups[0]!;
    const first = await startInstance(context, defaults, modelPath, found.size, pool, firstGroup, 0, clock);
    const file = context.settings.parameters.get(MODEL_PACKAGE_FILE) ?? `${context.modelName}/${context.version}/${context.settings.defaultModelFilename}`;
    return new OnnxModel(context, defaults, modelPath, found.size, pool, { file, ...first.signature }, first, clock);
  }

  async createInstance(config: CompiledModelConfig, group: InstanceGroupSpec, indexInGroup: number): Promise<BackendInstance> {
    const reuse = this.spare && group === this.context.settings.instanceGroups[0] && indexInGroup === 0;
    const instance = reuse ? this.spare! : await startInstance(this.context, this.defaults, this.modelPath, this.modelBytes, this.pool, group, indexInGroup, this.clock);
    if (reuse) this.spare = undefined;
    instance.configure(config);
    this.instances.push(instance);
    return instance;
  }

  async finalize(): Promise<void> {
    const all = this.spare ? [...this.instances, this.spare] : this.instances;
    this.spare = undefined;
    await Promise.all(all.map((i) => i.finalize()));
  }
}

/** The session options of one instance: the model's parameters, else the backend's settings, else one thread each; optimization and accelerators checked. */
export function sessionOptions(context: ModelLoadContext, defaults: OnnxBackendSettings, group: InstanceGroupSpec): WorkerSessionOptions {
  const parameters = context.settings.parameters;
  const count = (key: string, fallback: number): number => {
    const value = parameters.get(key);
    if (value === undefined || value === '') return fallback;
    const parsed = Number(value);
    if (!Number.isInteger(parsed) || parsed < 0) {
      throw new Error(`parameters '${key}' is '${value}': use a non-negative integer thread count (0 lets ONNX Runtime choose)`);
    }
    return parsed;
  };
  const level = parameters.get('graph_optimization_level') ?? graphLevel(context.config) ?? 'all';
  if (!(OPTIMIZATION_LEVELS as readonly string[]).includes(level)) {
    throw new Error(`parameters 'graph_optimization_level' is '${level}': use one of ${OPTIMIZATION_LEVELS.join(', ')}`);
  }
  checkAccelerators(context.config, group);
  const spinning = parameters.get('allow_spinning') ?? 'true';
  if (spinning !== 'true' && spinning !== 'false') {
    throw new Error(`parameters 'allow_spinning' is '${spinning.slice(0, 40)}': use 'true' (ONNX Runtime's default: idle intra-op threads spin) or 'false' (they sleep)`);
  }
  return {
    allowSpinning: spinning === 'true',
    intraOpNumThreads: count('intra_op_thread_count', defaults.intraOpThreadCount ?? 1),
    interOpNumThreads: count('inter_op_thread_count', defaults.interOpThreadCount ?? 1),
    executionProvider: group.kind === 'GPU' ? 'cuda' : 'cpu',
    deviceId: group.gpus[0] ?? 0,
    graphOptimizationLevel: level as WorkerSessionOptions['graphOptimizationLevel'],
  };
}

type Obj = Record<string, unknown>;
const objectAt = (value: unknown, key: string): Obj | undefined => {
  const child = (value as Obj | undefined)?.[key];
  return typeof child === 'object' && child !== null && !Array.isArray(child) ? child as Obj : undefined;
};

/**
 * Triton's onnxruntime backend reads `optimization { graph { level } }`:
 * -1 basic, 1 extended, 2 none, anything else all. The
 * graph_optimization_level parameter, when given, wins.
 */
function graphLevel(config: Obj | undefined): (typeof OPTIMIZATION_LEVELS)[number] | undefined {
  const graph = objectAt(objectAt(config, 'optimization'), 'graph');
  if (graph?.['level'] === undefined) return undefined;
  switch (Number(graph['level'])) {
    case -1: return 'basic';
    case 1: return 'extended';
    case 2: return 'disabled';
    default: return 'all';
  }
}

/**
 * `optimization.execution_accelerators`, as Triton's onnxruntime backend
 * treats them: GPU accelerators only concern GPU instances, where CUDA is
 * the one onnxruntime-node has; CPU accelerators (OpenVINO) are not in this
 * build, which Triton answers the same way.
 */
function checkAccelerators(config: Obj | undefined, group: InstanceGroupSpec): void {
  const accelerators = objectAt(objectAt(config, 'optimization'), 'execution_accelerators');
  const names = (key: string): string[] => {
    const list = accelerators?.[key];
    return Array.isArray(list) ? list.map((a) => String((a as Obj | undefined)?.['name'] ?? '')) : [];
  };
  const unknown = (name: string, why: string): Error => new Error(`unknown Execution Accelerator '${name}' is requested ` +
    `(optimization.execution_accelerators): ${why}`);
  const cpu = names('cpu_execution_accelerator');
  if (cpu.length > 0) throw unknown(cpu[0]!, 'onnxruntime-node has no OpenVINO execution provider; remove cpu_execution_accelerator');
  if (group.kind !== 'GPU') return;
  const other = names('gpu_execution_accelerator').find((name) => name !== 'cuda');
  if (other !== undefined) throw unknown(other, 'onnxruntime-node runs GPU instances on its CUDA execution provider only; remove the accelerator or name "cuda"');
}

async function startInstance(
  context: ModelLoadContext, defaults: OnnxBackendSettings, modelPath: string, modelBytes: number,
  pool: BufferPool, group: InstanceGroupSpec, index: number, clock: Clock,
): Promise<OnnxInstance> {
  const options = sessionOptions(context, defaults, group);
  const threading = { ...readExecutionThread(context.settings.parameters, group), modelBytes };
  try {
    return await OnnxInstance.create(`${group.name}_${index}`, context.modelName, { modelPath, options }, pool, context.logger, clock, threading);
  } catch (err) {
    const detail = err instanceof Error ? err.message : String(err);
    if (detail.startsWith('parameters ')) throw err;
    if (options.executionProvider === 'cuda') {
      throw new Error(`instance_group '${group.name}' has kind KIND_GPU, which needs ONNX Runtime's CUDA execution provider, ` +
        `and it could not start here (${detail.trim()}). onnxruntime-node only carries its CUDA libraries when installed on a CUDA machine ` +
        `without ONNXRUNTIME_NODE_INSTALL=skip; on a CPU-only machine set kind: KIND_CPU`);
    }
    throw new Error(`ONNX Runtime could not open ${modelPath}: ${detail.trim()}`);
  }
}
