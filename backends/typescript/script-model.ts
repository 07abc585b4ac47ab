/**
 * One version of a TypeScript model: `<version>/model.ts` compiled once (a
 * syntax error fails the load with file:line:column), its signature taken
 * from the config (a script has no model file to read one from), and one
 * ScriptInstance, with its own isolate, per instance_group count.
 *
 * Limits come from the config's parameters:
 *   memory_limit_mb     heap of each isolate (default 128)
 *   execute_timeout_ms  wall time of one execute(), awaits included (default 5000);
 *                       initialize() and finalize() get the same
 */
import { readFile } from 'node:fs/promises';
import type { CompiledModelConfig, InstanceGroupSpec } from '../../engine/config/compiled-model-config.ts';
import type { ModelSignature, SignatureTensor } from '../../engine/config/model-signature.ts';
import { silentLogger } from '../../engine/logger.ts';
import { fromConfigDataType } from '../../engine/tensor.ts';
import { compileScript, type CompiledScript } from '../../scripts-runtime/compile.ts';
import type { SandboxLimits } from '../../scripts-runtime/sandbox.ts';
import type { BackendInstance, BackendModel, ModelLoadContext } from '../backend.ts';
import { modelFileOf } from '../model-file.ts';
import { ScriptInstance } from './script-instance.ts';

export const DEFAULT_MEMORY_LIMIT_MB = 128;
export const DEFAULT_EXECUTE_TIMEOUT_MS = 5000;
/** isolated-vm refuses smaller heaps. */
const MIN_MEMORY_LIMIT_MB = 8;

type Obj = Record<string, unknown>;

export class ScriptModel implements BackendModel {
  private readonly instances: ScriptInstance[] = [];

  private constructor(
    private readonly context: ModelLoadContext,
    private readonly script: CompiledScript,
    private readonly limits: SandboxLimits,
    readonly signature: ModelSignature,
  ) {}

  static async create(context: ModelLoadContext): Promise<ScriptModel> {
    const file = await modelFileOf(context);
    const source = await readFile(file, 'utf8').catch((err: NodeJS.ErrnoException) => {
      throw new Error(err.code === 'ENOENT'
        ? `version ${context.version} has no ${context.settings.defaultModelFilename}: expected the script at ${file}`
        : `cannot read ${file} (${err.code ?? 'error'})`);
    });
    const script = await compileScript(`${context.modelName}/${context.version}/${context.settings.defaultModelFilename}`, source);
    return new ScriptModel(context, script, limitsOf(context), signatureOf(context));
  }

  async createInstance(config: CompiledModelConfig, group: InstanceGroupSpec, indexInGroup: number): Promise<BackendInstance> {
    if (!this.context.infer) throw new Error('TypeScript models need the server\'s infer entry for ctx.infer');
    const instance = await ScriptInstance.create({
      name: `${group.name}_${indexInGroup}`,
      version: this.context.version,
      script: this.script,
      config,
      limits: this.limits,
      infer: this.context.infer,
      logger: this.context.logger ?? silentLogger,
      ...(this.context.bufferPool ? { bufferPool: this.context.bufferPool } : {}),
    });
    this.instances.push(instance);
    return instance;
  }

  async finalize(): Promise<void> {
    await Promise.all(this.instances.map((i) => i.finalize()));
  }
}

function limitsOf(context: ModelLoadContext): SandboxLimits {
  const number = (key: string, fallback: number, min: number): number => {
    const text = context.settings.parameters.get(key);
    if (text === undefined || text === '') return fallback;
    const value = Number(text);
    if (!Number.isInteger(value) || value < min) {
      throw new Error(`parameters '${key}' is '${text}': use a whole number of at least ${min}`);
    }
    return value;
  };
  return {
    memoryLimitMb: number('memory_limit_mb', DEFAULT_MEMORY_LIMIT_MB, MIN_MEMORY_LIMIT_MB),
    executeTimeoutMs: number('execute_timeout_ms', DEFAULT_EXECUTE_TIMEOUT_MS, 1),
  };
}

/** The config's own inputs and outputs, as a model file's signature would give them. */
function signatureOf(context: ModelLoadContext): ModelSignature {
  const config = context.config ?? {};
  const maxBatchSize = Number(config['max_batch_size'] ?? 0);
  const read = (kind: 'input' | 'output'): SignatureTensor[] => {
    const list = Array.isArray(config[kind]) ? config[kind] as Obj[] : [];
    return list.map((t, i) => {
      const typeName = String(t['data_type'] ?? '');
      const datatype = fromConfigDataType(typeName);
      const dims = Array.isArray(t['dims']) ? (t['dims'] as unknown[]).map(Number) : [];
      if (!datatype || dims.length === 0) {
        throw new Error(`${kind}[${i}] ('${String(t['name'] ?? '')}') needs data_type and dims: a TypeScript model has no model file to complete them from`);
      }
      return { name: String(t['name'] ?? ''), datatype, modelType: typeName, shape: maxBatchSize > 0 ? [-1, ...dims] : dims };
    });
  };
  const inputs = read('input');
  const outputs = read('output');
  if (outputs.length === 0) throw new Error('the config declares no output: a TypeScript model lists its inputs and outputs with data_type and dims');
  return { file: `${context.modelName}/${context.version}/${context.settings.defaultModelFilename}`, inputs, outputs };
}
