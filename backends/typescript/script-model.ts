/**
 * One version of a TypeScript model: `<version>/model.ts` compiled once, with
 * the files of the model's folder it imports (a syntax error, or an import
 * out of the folder, fails the load with file:line:column), its signature taken
 * from the config (a script has no model file to read one from), and one
 * ScriptInstance, with its own isolate, per instance_group count.
 *
 * Limits come from the config's parameters:
 *   memory_limit_mb            heap of each isolate, ArrayBuffers included (default 128)
 *   execute_timeout_ms         wall time of one execute(), awaits included (default 5000);
 *                              initialize() and finalize() get the same
 *   max_transfer_mb            the most one value leaving the isolate may hold: execute()'s answer,
 *                              a ctx.infer request, one send() (default: memory_limit_mb)
 *   log_line_max_chars         ctx.log lines are cut past this (default 4096)
 *   log_lines_per_execute      ctx.log lines one execute() may write; the rest are dropped and counted (default 1000)
 *   allow_webassembly          'true' keeps WebAssembly, whose memory the heap limit does not bound (default false)
 *   max_infer_calls_in_flight  ctx.infer calls one execute() may have unanswered (default 64)
 *   max_concurrent_executes    batches one instance runs at once, all but one waiting on ctx.infer (default 16)
 *   inline_slice_ms            above 0, execute() runs on the event loop's thread rather than the isolate's, no
 *                              thread hand-off per call or per ctx.infer answer, each synchronous part of it at
 *                              most this long (default 0: off; not for decoupled models)
 *
 * And how inputs arrive:
 *   binary_inputs              BYTES inputs (comma-separated names) execute() receives byte for byte, each element
 *                              a Uint8Array, rather than decoded as UTF-8 strings: images, audio, any binary payload
 */
import { readFile } from 'node:fs/promises';
import { dirname } from 'node:path';
import type { CompiledModelConfig, InstanceGroupSpec } from '../../engine/config/compiled-model-config.ts';
import { signatureFromConfig, type ModelSignature } from '../../engine/config/model-signature.ts';
import { silentLogger } from '../../engine/logger.ts';
import { compileScript, type CompiledScript } from '../../scripts-runtime/compile.ts';
import type { SandboxLimits } from '../../scripts-runtime/sandbox.ts';
import type { BackendInstance, BackendModel, ModelLoadContext } from '../../engine/backend.ts';
import { modelFileOf } from '../model-file.ts';
import { ScriptInstance } from './script-instance.ts';

export const DEFAULT_MEMORY_LIMIT_MB = 128;
export const DEFAULT_EXECUTE_TIMEOUT_MS = 5000;
export const DEFAULT_LOG_LINE_MAX_CHARS = 4096;
export const DEFAULT_LOG_LINES_PER_EXECUTE = 1000;
/** Every sandbox limit at its default: what a config with no parameters gets. */
export const DEFAULT_SCRIPT_LIMITS: SandboxLimits = {
  memoryLimitMb: DEFAULT_MEMORY_LIMIT_MB, executeTimeoutMs: DEFAULT_EXECUTE_TIMEOUT_MS, maxTransferMb: DEFAULT_MEMORY_LIMIT_MB,
  logLineMaxChars: DEFAULT_LOG_LINE_MAX_CHARS, logLinesPerExecute: DEFAULT_LOG_LINES_PER_EXECUTE, allowWebAssembly: false,
  inlineSliceMs: 0,
};
export const DEFAULT_MAX_INFER_CALLS_IN_FLIGHT = 64;
export const DEFAULT_MAX_CONCURRENT_EXECUTES = 16;
/** The longest an inline execute may hold the event loop in one slice (parameters.inline_slice_ms). */
export const MAX_INLINE_SLICE_MS = 1000;
/** isolated-vm refuses smaller heaps. */
const MIN_MEMORY_LIMIT_MB = 8;

export class ScriptModel implements BackendModel {
  private readonly instances: ScriptInstance[] = [];

  private constructor(
    private readonly context: ModelLoadContext,
    private readonly script: CompiledScript,
    private readonly limits: ScriptLimits,
    readonly signature: ModelSignature,
  ) {}

  static async create(context: ModelLoadContext): Promise<ScriptModel> {
    const file = await modelFileOf(context);
    const source = await readFile(file, 'utf8').catch((err: NodeJS.ErrnoException) => {
      throw new Error(err.code === 'ENOENT'
        ? `version ${context.version} has no ${context.settings.defaultModelFilename}: expected the script at ${file}`
        : `cannot read ${file} (${err.code ?? 'error'})`);
    });
    // The script may import its model's own files (lib/*.ts), never a file outside the model's folder.
    const script = await compileScript(`${context.modelName}/${context.version}/${context.settings.defaultModelFilename}`, source, {
      modelDir: context.modelDir, scriptDir: dirname(file), name: context.modelName,
    });
    return new ScriptModel(context, script, limitsOf(context), signatureFromConfig(context.config, 'TypeScript', `${context.modelName}/${context.version}/${context.settings.defaultModelFilename}`));
  }

  async createInstance(config: CompiledModelConfig, group: InstanceGroupSpec, indexInGroup: number): Promise<BackendInstance> {
    if (!this.context.infer) throw new Error('TypeScript models need the server\'s infer entry for ctx.infer');
    if (config.decoupled && this.limits.sandbox.inlineSliceMs > 0) {
      throw new Error('parameters \'inline_slice_ms\' does not apply to a decoupled model: its send() waits for the host, which an inline execute cannot');
    }
    const instance = await ScriptInstance.create({
      name: `${group.name}_${indexInGroup}`,
      version: this.context.version,
      script: this.script,
      config,
      limits: this.limits.sandbox,
      maxConcurrentExecutes: this.limits.maxConcurrentExecutes,
      maxInferCallsInFlight: this.limits.maxInferCallsInFlight,
      infer: this.context.infer,
      ...(this.context.inferStream ? { inferStream: this.context.inferStream } : {}),
      logger: this.context.logger ?? silentLogger,
      ...(this.context.bufferPool ? { bufferPool: this.context.bufferPool } : {}),
      binaryInputs: binaryInputsOf(this.context, config),
    });
    this.instances.push(instance);
    return instance;
  }

  async finalize(): Promise<void> {
    await Promise.all(this.instances.map((i) => i.finalize()));
  }
}

/** The BYTES inputs named by parameters.binary_inputs; a name that is not a BYTES input of the config is refused. */
function binaryInputsOf(context: ModelLoadContext, config: CompiledModelConfig): ReadonlySet<string> {
  const text = context.settings.parameters.get('binary_inputs') ?? '';
  const names = new Set(text.split(',').map((n) => n.trim()).filter((n) => n !== ''));
  for (const name of names) {
    const spec = config.inputByName.get(name);
    const shown = name.length > 64 ? `${name.slice(0, 64)}...` : name;
    if (!spec) {
      const known = config.inputs.filter((i) => i.datatype === 'BYTES').map((i) => i.name);
      throw new Error(`parameters 'binary_inputs' names '${shown}', which is not an input of the model: name BYTES inputs (${known.length > 0 ? known.join(', ') : 'the config has none'})`);
    }
    if (spec.datatype !== 'BYTES') {
      throw new Error(`parameters 'binary_inputs' names '${shown}', whose datatype is ${spec.datatype}: only BYTES (TYPE_STRING) inputs arrive as text, so only they need it`);
    }
  }
  return names;
}

interface ScriptLimits {
  readonly sandbox: SandboxLimits;
  readonly maxConcurrentExecutes: number;
  readonly maxInferCallsInFlight: number;
}

function limitsOf(context: ModelLoadContext): ScriptLimits {
  const number = (key: string, fallback: number, min: number): number => {
    const text = context.settings.parameters.get(key);
    if (text === undefined || text === '') return fallback;
    const value = Number(text);
    if (!Number.isInteger(value) || value < min) {
      throw new Error(`parameters '${key}' is '${text}': use a whole number of at least ${min}`);
    }
    return value;
  };
  const flag = (key: string): boolean => {
    const text = context.settings.parameters.get(key);
    if (text === undefined || text === '' || text === 'false') return false;
    if (text === 'true') return true;
    throw new Error(`parameters '${key}' is '${text}': use 'true' or 'false'`);
  };
  const memoryLimitMb = number('memory_limit_mb', DEFAULT_MEMORY_LIMIT_MB, MIN_MEMORY_LIMIT_MB);
  const inlineSliceMs = number('inline_slice_ms', 0, 0);
  if (inlineSliceMs > MAX_INLINE_SLICE_MS) {
    throw new Error(`parameters 'inline_slice_ms' is '${inlineSliceMs}': at most ${MAX_INLINE_SLICE_MS}, since each slice holds the event loop`);
  }
  return {
    sandbox: {
      memoryLimitMb,
      executeTimeoutMs: number('execute_timeout_ms', DEFAULT_EXECUTE_TIMEOUT_MS, 1),
      maxTransferMb: number('max_transfer_mb', memoryLimitMb, 1),
      logLineMaxChars: number('log_line_max_chars', DEFAULT_LOG_LINE_MAX_CHARS, 1),
      logLinesPerExecute: number('log_lines_per_execute', DEFAULT_LOG_LINES_PER_EXECUTE, 0),
      allowWebAssembly: flag('allow_webassembly'),
      inlineSliceMs,
    },
    maxConcurrentExecutes: number('max_concurrent_executes', DEFAULT_MAX_CONCURRENT_EXECUTES, 1),
    maxInferCallsInFlight: number('max_infer_calls_in_flight', DEFAULT_MAX_INFER_CALLS_IN_FLIGHT, 1),
  };
}

