/**
 * The sequences the benchmark sends, and what each step must answer. Every
 * (sequence, step) has its own INPUT row of small integers, so the running
 * sum (OUTPUT) is exact in FP32 and differs between sequences: a step that
 * saw another sequence's state, a stale state or a lost update answers a
 * wrong OUTPUT. FEATURES is checked against onnxruntime-node run directly on
 * the expected states, within a small tolerance (batched and unbatched Gemm
 * need not round alike).
 *
 * A round runs every sequence once, all at the same time, each step sent as
 * soon as the previous step's answer is checked (START on the first step,
 * END on the last), through `engine.infer` in this process.
 */
import type { InferenceEngine } from '../../engine/inference-engine.ts';
import { bytesOf, typedView, type FixedTensor, type Tensor } from '../../engine/tensor.ts';
import { seededRandom } from '../../generator/onnx-builder.ts';
import { LatencyRecorder, nowMs, type LatencySummary } from '../latencies.ts';
import { FEATURES, STATE_WIDTH } from './state-mlp-repository.ts';

/** Inputs are integers in [-INPUT_RANGE, INPUT_RANGE]: 20 steps stay far inside FP32's exact integers. */
const INPUT_RANGE = 15;
/** |answer - reference| <= FEATURE_TOLERANCE * (1 + |reference|). */
const FEATURE_TOLERANCE = 1e-3;

export class SequenceWorkload {
  private constructor(
    readonly sequences: number,
    readonly steps: number,
    private readonly inputRows: readonly FixedTensor[],
    /** The running sum after each step, [sequence][step][STATE_WIDTH]. */
    private readonly running: Float32Array,
    /** FEATURES of each step, [sequence][step][FEATURES], from onnxruntime-node directly. */
    private readonly features: Float32Array,
  ) {}

  static async create(sequences: number, steps: number, modelPath: string): Promise<SequenceWorkload> {
    const rows = sequences * steps;
    const random = seededRandom(101);
    const inputs = new Float32Array(rows * STATE_WIDTH).map(() => Math.floor(random() * (2 * INPUT_RANGE + 1)) - INPUT_RANGE);
    const running = new Float32Array(rows * STATE_WIDTH);
    const before = new Float32Array(rows * STATE_WIDTH);
    for (let s = 0; s < sequences; s++) {
      for (let k = 0; k < steps; k++) {
        const at = (s * steps + k) * STATE_WIDTH;
        for (let j = 0; j < STATE_WIDTH; j++) {
          const previous = k === 0 ? 0 : running[at - STATE_WIDTH + j]!;
          before[at + j] = previous;
          running[at + j] = previous + inputs[at + j]!;
        }
      }
    }
    const inputRows = Array.from({ length: rows }, (_, r): FixedTensor => ({
      name: 'INPUT', datatype: 'FP32', shape: [1, STATE_WIDTH], raw: bytesOf(inputs.subarray(r * STATE_WIDTH, (r + 1) * STATE_WIDTH)),
    }));
    return new SequenceWorkload(sequences, steps, inputRows, running, await referenceFeatures(modelPath, inputs, before, rows));
  }

  /** The client's input for step `k` of sequence `s` (the server copies it, so one tensor serves every round). */
  input(s: number, k: number): Tensor {
    return this.inputRows[s * this.steps + k]!;
  }

  /** undefined when step `k` of sequence `s` answered what it should, else what differs. */
  check(s: number, k: number, outputs: readonly Tensor[]): string | undefined {
    const row = s * this.steps + k;
    const output = outputs.find((t) => t.name === 'OUTPUT');
    const features = outputs.find((t) => t.name === 'FEATURES');
    if (!output || output.datatype !== 'FP32' || !features || features.datatype !== 'FP32') {
      return `sequence ${s} step ${k + 1}: outputs ${outputs.map((t) => t.name).join(', ')}`;
    }
    const got = typedView('FP32', output.raw);
    for (let j = 0; j < STATE_WIDTH; j++) {
      const want = this.running[row * STATE_WIDTH + j]!;
      if (got[j] !== want) return `sequence ${s} step ${k + 1}: OUTPUT[${j}] = ${got[j]}, expected the running sum ${want}`;
    }
    const gotFeatures = typedView('FP32', features.raw);
    for (let j = 0; j < FEATURES; j++) {
      const want = this.features[row * FEATURES + j]!;
      const value = Number(gotFeatures[j]);
      if (!(Math.abs(value - want) <= FEATURE_TOLERANCE * (1 + Math.abs(want)))) {
        return `sequence ${s} step ${k + 1}: FEATURES[${j}] = ${value}, expected ${want}`;
      }
    }
    return undefined;
  }
}

/** FEATURES for every row at once: one batched run of the model on the expected states. */
async function referenceFeatures(modelPath: string, inputs: Float32Array, states: Float32Array, rows: number): Promise<Float32Array> {
  const ort = await import('onnxruntime-node');
  const session = await ort.InferenceSession.create(modelPath, { intraOpNumThreads: 2, graphOptimizationLevel: 'all', logSeverityLevel: 3 });
  try {
    const result = await session.run({
      INPUT: new ort.Tensor('float32', inputs, [rows, STATE_WIDTH]),
      STATE_IN: new ort.Tensor('float32', states, [rows, STATE_WIDTH]),
    }, ['FEATURES']);
    return Float32Array.from(result['FEATURES']!.data as Float32Array);
  } finally {
    await session.release();
  }
}

export interface RoundsSpec {
  /** Rounds continue until this many seconds have passed; at least one runs. */
  readonly minSeconds: number;
  /** Sequence IDs start above this; callers give each call its own range. */
  readonly idBase: number;
}

export interface RoundsResult {
  readonly rounds: number;
  /** Steps answered and checked correct. */
  readonly steps: number;
  readonly seconds: number;
  readonly stepsPerSecond: number;
  readonly latency: LatencySummary;
  /** The same without each sequence's first step, whose wait for a free slot the START latency includes. */
  readonly continuingLatency: LatencySummary;
  /** Steps that failed or answered wrong; a sequence stops at its first. */
  readonly errors: number;
  readonly firstError?: string;
}

/** Runs whole rounds of the workload on `model`, one after another. */
export async function runRounds(engine: InferenceEngine, model: string, workload: SequenceWorkload, spec: RoundsSpec): Promise<RoundsResult> {
  const latencies = new LatencyRecorder();
  const continuing = new LatencyRecorder();
  let errors = 0;
  let firstError: string | undefined;
  let steps = 0;

  const sequence = async (round: number, s: number): Promise<void> => {
    const id = spec.idBase + round * workload.sequences + s + 1;
    for (let k = 0; k < workload.steps; k++) {
      const t0 = nowMs();
      let problem: string | undefined;
      try {
        const response = await engine.infer({
          modelName: model,
          inputs: [workload.input(s, k)],
          parameters: { sequence_id: id, sequence_start: k === 0, sequence_end: k === workload.steps - 1 },
        });
        problem = workload.check(s, k, response.outputs);
      } catch (err) {
        problem = `sequence ${s} step ${k + 1}: ${err instanceof Error ? err.message : String(err)}`;
      }
      if (problem !== undefined) {
        errors++;
        firstError ??= problem;
        return;
      }
      const ms = nowMs() - t0;
      latencies.record(ms);
      if (k > 0) continuing.record(ms);
      steps++;
    }
  };

  const start = nowMs();
  let rounds = 0;
  do {
    await Promise.all(Array.from({ length: workload.sequences }, (_, s) => sequence(rounds, s)));
    rounds++;
  } while (nowMs() - start < spec.minSeconds * 1000);
  const seconds = (nowMs() - start) / 1000;
  return {
    rounds, steps, seconds, stepsPerSecond: steps / seconds, latency: latencies.summary(), continuingLatency: continuing.summary(), errors,
    ...(firstError !== undefined ? { firstError } : {}),
  };
}
