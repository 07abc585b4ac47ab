/**
 * Fixtures for sequence batcher tests: a stateful model's config compiled
 * from text against a declared signature (an accumulator with implicit state
 * and echoed controls, like generator/models.ts stateAccumulatorControlsModel),
 * and an in-memory instance whose executions the test finishes by hand, with
 * the model's arithmetic. With a ManualClock every delay, idle timeout and
 * batch composition is exact.
 */
import type { BackendInstance, ExecuteOutcome, ExecuteRequest } from '../../../engine/backend.ts';
import { compileModelConfig, readModelSettings } from '../../../engine/config/compile-model-config.ts';
import type { CompiledModelConfig } from '../../../engine/config/compiled-model-config.ts';
import type { SignatureTensor } from '../../../engine/config/model-signature.ts';
import { parseModelConfig } from '../../../engine/config/parse-model-config.ts';
import { serverError } from '../../../engine/errors.ts';
import type { InferenceRequest, ParameterValue } from '../../../engine/inference-request.ts';
import { silentLogger, type Logger } from '../../../engine/logger.ts';
import { ModelStats } from '../../../engine/observability/model-stats.ts';
import { normalizeRequest } from '../../../engine/request-normalizer.ts';
import { ManualClock } from '../../../engine/scheduling/clock.ts';
import { SequenceBatcher } from '../../../engine/sequence/sequence-batcher.ts';
import type { InstanceGate } from '../../../engine/scheduling/rate-limiter.ts';
import { bytesOf, typedView, type DataType, type Tensor } from '../../../engine/tensor.ts';
import { bytesStrings } from '../../../engine/bytes-tensor.ts';
import { defaultBackends } from '../../../backends/default-backends.ts';

/** The backends `switchyard` serves with, which configs are read against. */
const BACKENDS = defaultBackends();

export const CONTROLS_TEXT = `
  control_input [
    { name: "START" control [ { kind: CONTROL_SEQUENCE_START int32_false_true: [ 0, 1 ] } ] },
    { name: "END" control [ { kind: CONTROL_SEQUENCE_END int32_false_true: [ 0, 1 ] } ] },
    { name: "READY" control [ { kind: CONTROL_SEQUENCE_READY int32_false_true: [ 0, 1 ] } ] },
    { name: "CORRID" control [ { kind: CONTROL_SEQUENCE_CORRID data_type: TYPE_UINT64 } ] }
  ]
  state [ { input_name: "STATE_IN" output_name: "STATE_OUT" data_type: TYPE_FP32 dims: [ 1 ] } ]`;

/** A sequence_batching config over the accumulator with every control: `strategy` is e.g. 'direct { }' or 'oldest { ... }'. */
export function sequenceConfig(maxBatchSize: number, strategy = '', extra = ''): string {
  return `max_batch_size: ${maxBatchSize}\nsequence_batching {${CONTROLS_TEXT}\n  ${strategy}\n  ${extra}\n}\n`;
}

const tensor = (name: string, datatype: DataType, batched: boolean): SignatureTensor =>
  ({ name, datatype, modelType: datatype.toLowerCase(), shape: batched ? [-1, 1] : [1] });

/** The accumulator's signature: INPUT, STATE_IN, START, END, READY, CORRID -> OUTPUT, STATE_OUT and the echoed controls. */
export function accumulatorSignature(batched: boolean, corridType: DataType = 'UINT64') {
  return {
    file: 'm/1/model.onnx',
    inputs: [
      tensor('INPUT', 'FP32', batched), tensor('STATE_IN', 'FP32', batched),
      tensor('START', 'INT32', batched), tensor('END', 'INT32', batched), tensor('READY', 'INT32', batched), tensor('CORRID', corridType, batched),
    ],
    outputs: [
      tensor('OUTPUT', 'FP32', batched), tensor('STATE_OUT', 'FP32', batched),
      tensor('START_OUT', 'INT32', batched), tensor('END_OUT', 'INT32', batched), tensor('READY_OUT', 'INT32', batched), tensor('CORRID_OUT', corridType, batched),
    ],
  };
}

export function compileSequenceConfig(text: string, corridType: DataType = 'UINT64', dir = '/repo/m'): CompiledModelConfig {
  const parsed = parseModelConfig(`${dir}/config.pbtxt`, text);
  const settings = readModelSettings('m', dir, parsed, BACKENDS);
  const batched = !/max_batch_size:\s*0\b/.test(text);
  return compileModelConfig('m', dir, parsed, settings, accumulatorSignature(batched, corridType));
}

/** One row of an execution, decoded. */
export interface Row {
  readonly input: number;
  readonly state: number;
  readonly start: number | undefined;
  readonly end: number | undefined;
  readonly ready: number | undefined;
  /** The CORRID value as text (a number's digits, or the string). */
  readonly corrid: string | undefined;
}

export interface Execution {
  readonly instance: string;
  readonly requests: readonly ExecuteRequest[];
  /** Every row decoded, fillers included. */
  readonly rows: readonly Row[];
  /** Answers with the accumulator's arithmetic: OUTPUT = STATE_OUT = STATE_IN + INPUT, controls echoed. */
  finish(): void;
  failAll(message: string): void;
}


function valueOf(t: Tensor | undefined): string | undefined {
  if (!t) return undefined;
  if (t.datatype === 'BYTES') return bytesStrings(t)[0];
  return String(typedView(t.datatype, t.raw)[0]);
}

export function decodeRow(request: ExecuteRequest): Row {
  const find = (name: string): Tensor | undefined => request.inputs.find((t) => t.name === name);
  const num = (name: string): number | undefined => {
    const v = valueOf(find(name));
    return v === undefined ? undefined : Number(v);
  };
  return {
    input: num('INPUT') ?? NaN, state: num('STATE_IN') ?? NaN,
    start: num('START'), end: num('END'), ready: num('READY'), corrid: valueOf(find('CORRID')),
  };
}

function answer(request: ExecuteRequest): Tensor[] {
  const row = decodeRow(request);
  const sum = bytesOf(Float32Array.of(row.input + row.state));
  const made: Tensor[] = [
    { name: 'OUTPUT', datatype: 'FP32', shape: [1, 1], raw: sum },
    { name: 'STATE_OUT', datatype: 'FP32', shape: [1, 1], raw: sum.slice() },
  ];
  for (const control of ['START', 'END', 'READY', 'CORRID']) {
    const input = request.inputs.find((t) => t.name === control);
    if (input) made.push({ ...input, name: `${control}_OUT` });
  }
  return request.outputs.map((name) => made.find((t) => t.name === name)!);
}

/** Records each execute() call; answers when the test says so, or by itself after `autoFinish()` event-loop turns. */
export class ScriptedSequenceInstance implements BackendInstance {
  readonly executions: Execution[] = [];

  constructor(readonly name: string, private readonly autoFinish?: () => number) {}

  execute(requests: readonly ExecuteRequest[]): Promise<ExecuteOutcome> {
    return new Promise((resolve) => {
      const timing = { inputNs: 1000, inferNs: 5000, outputNs: 2000 };
      const execution: Execution = {
        instance: this.name,
        requests,
        rows: requests.map(decodeRow),
        finish: () => resolve({ results: requests.map((r) => ({ ok: true, outputs: answer(r) })), timing }),
        failAll: (message) => {
          const error = serverError('INFERENCE_FAILED', { model: 'm', detail: message });
          resolve({ results: requests.map(() => ({ ok: false, error })), timing });
        },
      };
      this.executions.push(execution);
      if (this.autoFinish) {
        let ticks = this.autoFinish();
        const step = (): void => {
          if (ticks-- <= 0) execution.finish();
          else setImmediate(step);
        };
        setImmediate(step);
      }
    });
  }

  async finalize(): Promise<void> {}
}

export interface Harness {
  readonly clock: ManualClock;
  readonly stats: ModelStats;
  readonly config: CompiledModelConfig;
  readonly instances: ScriptedSequenceInstance[];
  readonly scheduler: SequenceBatcher;
  /** Every execution across instances, in the order they started. */
  readonly executions: Execution[];
  /** Enqueues as InferenceEngine.infer does; resolves with the outputs or the error, never rejects. */
  send(value: number, parameters: Readonly<Record<string, ParameterValue>>, options?: { signal?: AbortSignal; rows?: number }): Promise<readonly Tensor[] | Error>;
  /** Lets promise callbacks run. */
  settle(): Promise<void>;
}

export interface HarnessOptions {
  readonly instances?: number;
  readonly corridType?: DataType;
  readonly logger?: Logger;
  /** Instances answer by themselves after this many event-loop turns. */
  readonly autoFinish?: () => number;
  /** The rate limiter's gates of the instances (--rate-limit=execution_count), in order. */
  readonly gates?: readonly InstanceGate[];
}

export function sequenceHarness(configText: string, options: HarnessOptions = {}): Harness {
  const config = compileSequenceConfig(configText, options.corridType);
  if (config.scheduling.kind !== 'sequence') throw new Error('not a sequence model');
  const clock = new ManualClock();
  const stats = new ModelStats();
  const executions: Execution[] = [];
  const instances = Array.from({ length: options.instances ?? 1 }, (_, i) => {
    const instance = new ScriptedSequenceInstance(`i${i}`, options.autoFinish);
    const original = instance.execute.bind(instance);
    instance.execute = (requests) => {
      const promise = original(requests);
      executions.push(instance.executions[instance.executions.length - 1]!);
      return promise;
    };
    return instance;
  });
  const scheduler = new SequenceBatcher({
    config, instances, logger: options.logger ?? silentLogger, stats, clock, ...(options.gates ? { gates: options.gates } : {}),
  }, config.scheduling.batching);
  return {
    clock, stats, config, instances, scheduler, executions,
    send: (value, parameters, sendOptions = {}) => {
      const rows = sendOptions.rows ?? 1;
      const batched = config.maxBatchSize > 0;
      const request: InferenceRequest = {
        modelName: 'm',
        inputs: [{ name: 'INPUT', datatype: 'FP32', shape: batched ? [rows, 1] : [1], raw: bytesOf(new Float32Array(rows).fill(value)) }],
        parameters,
        ...(sendOptions.signal ? { signal: sendOptions.signal } : {}),
      };
      try {
        return scheduler.enqueue(request, normalizeRequest(config, request)).catch((err: Error) => err);
      } catch (err) {
        return Promise.resolve(err as Error);
      }
    },
    settle: () => new Promise((resolve) => setImmediate(resolve)),
  };
}

/** The first value of the named output (OUTPUT by default). */
export function outputValue(outcome: readonly Tensor[] | Error, name = 'OUTPUT'): number {
  if (outcome instanceof Error) throw outcome;
  const t = outcome.find((o) => o.name === name);
  if (!t) throw new Error(`no output ${name} among ${outcome.map((o) => o.name).join(', ')}`);
  return Number(valueOf(t));
}
