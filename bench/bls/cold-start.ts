/**
 * Cold start of a TypeScript model: from asking for it to its first answer.
 *
 * Whole path, per repetition: a fresh repository holding only one echo
 * script, InferenceEngine.create on it (read the repository, compile the
 * config, transpile model.ts, start the isolate, run initialize), then the
 * first engine.infer. Measured twice:
 *   new source     the script differs every repetition (a comment), so
 *                  esbuild transpiles it every time: a model never seen
 *   cached source  the same text every time, so the transpile cache answers:
 *                  a reload, or a second version with unchanged code
 *
 * Then the stages alone, to see where the time goes: esbuild on a new
 * source, an isolate with its context, a whole sandbox (isolate, script
 * compiled into it, bootstrap, initialize), and the sandbox's first
 * execute().
 *
 * Repetitions run one after another in this process. The first repetition of
 * a stage pays one-off costs of the process (esbuild's service starting, code
 * not yet optimized), so it is reported on its own as well as in the max.
 */
import { isolatedVm as ivm } from '../../scripts-runtime/isolated-vm-line.ts';
import { LatencyRecorder, nowMs, type LatencySummary } from '../latencies.ts';
import { ECHO_SOURCE, INPUTS, SIZE, scriptConfig, writeScriptModel } from './bls-repository.ts';

export interface ColdStartRow {
  readonly stage: string;
  readonly what: string;
  readonly first: number;
  readonly summary: LatencySummary;
}

const COLD_MODEL = 'cold_echo';

/** A source that is new to the transpile cache. */
const uniqueSource = (tag: string): string => `${ECHO_SOURCE}\n// ${tag}\n`;

const INPUT_BYTES = new Uint8Array(new Float32Array(SIZE).fill(1).buffer);

/** Repetitions of one stage, in milliseconds, keeping the first apart too. */
class Series {
  private readonly recorder = new LatencyRecorder();
  private first = Number.NaN;

  record(ms: number): void {
    if (Number.isNaN(this.first)) this.first = ms;
    this.recorder.record(ms);
  }

  result(): { first: number; summary: LatencySummary } {
    return { first: this.first, summary: this.recorder.summary() };
  }
}

async function timed(reps: number, one: (rep: number) => Promise<number>): Promise<{ first: number; summary: LatencySummary }> {
  const series = new Series();
  for (let rep = 0; rep < reps; rep++) series.record(await one(rep));
  return series.result();
}

/**
 * InferenceEngine.create on a one-script repository, then the first request.
 * Returns the two parts; the repository is built before and removed after,
 * outside the timing, and so is the server's close.
 */
async function serverColdStart(source: string): Promise<{ createMs: number; firstInferMs: number }> {
  const { makeRepository, removeRepository } = await import('../../test/helpers/fixture-repository.ts');
  const { silentLogger } = await import('../../engine/logger.ts');
  const { createEngine } = await import('../../server/composition-root.ts');
  const root = await makeRepository({});
  await writeScriptModel(root, COLD_MODEL, scriptConfig(COLD_MODEL, 1, false), source);
  try {
    const t0 = nowMs();
    const engine = await createEngine({ modelRepositories: [root], logger: silentLogger });
    const t1 = nowMs();
    try {
      const failures = engine.loadFailures();
      if (failures.length > 0) throw new Error(`${COLD_MODEL} failed to load: ${JSON.stringify(failures)}`);
      const response = await engine.infer({
        modelName: COLD_MODEL,
        inputs: INPUTS.map((name) => ({ name, datatype: 'FP32' as const, shape: [1, SIZE], raw: INPUT_BYTES })),
      });
      const t2 = nowMs();
      if (response.outputs.length !== 2) throw new Error(`${COLD_MODEL} answered ${response.outputs.length} outputs, expected 2`);
      return { createMs: t1 - t0, firstInferMs: t2 - t1 };
    } finally {
      await engine.close();
    }
  } finally {
    await removeRepository(root);
  }
}

export async function measureColdStart(reps: number): Promise<ColdStartRow[]> {
  const { compileScript } = await import('../../scripts-runtime/compile.ts');
  const { IsolatedVmSandbox } = await import('../../scripts-runtime/isolated-vm-sandbox.ts');
  const { DEFAULT_MEMORY_LIMIT_MB, DEFAULT_SCRIPT_LIMITS } = await import('../../backends/typescript/script-model.ts');
  const rows: ColdStartRow[] = [];
  const runId = `${process.pid}-${Date.now()}`;

  for (const cached of [false, true]) {
    const parts = { create: new Series(), infer: new Series() };
    const whole = await timed(reps, async (rep) => {
      const { createMs, firstInferMs } = await serverColdStart(cached ? ECHO_SOURCE : uniqueSource(`server ${runId} ${rep}`));
      parts.create.record(createMs);
      parts.infer.record(firstInferMs);
      return createMs + firstInferMs;
    });
    const kind = cached ? 'cached source' : 'new source';
    rows.push({ stage: `load + first answer, ${kind}`, what: 'InferenceEngine.create + first engine.infer', ...whole });
    rows.push({ stage: '  of which create', what: 'InferenceEngine.create', ...parts.create.result() });
    rows.push({ stage: '  of which first infer', what: 'first engine.infer', ...parts.infer.result() });
  }

  rows.push({
    stage: 'esbuild transpile', what: 'compileScript, new source',
    ...await timed(reps, async (rep) => {
      const t0 = nowMs();
      await compileScript('cold/1/model.ts', uniqueSource(`transpile ${runId} ${rep}`));
      return nowMs() - t0;
    }),
  });

  rows.push({
    stage: 'isolate + context', what: `new ivm.Isolate (${DEFAULT_MEMORY_LIMIT_MB} MB) + createContext`,
    ...await timed(reps, async () => {
      const t0 = nowMs();
      const isolate = new ivm.Isolate({ memoryLimit: DEFAULT_MEMORY_LIMIT_MB });
      const context = await isolate.createContext();
      const ms = nowMs() - t0;
      context.release();
      isolate.dispose();
      return ms;
    }),
  });

  const script = await compileScript('cold/1/model.ts', ECHO_SOURCE);
  const limits = DEFAULT_SCRIPT_LIMITS;
  const bridge = {
    infer: async () => ({ error: 'no ctx.infer in the cold-start bench' }),
    stream: async () => ({ error: 'no ctx.inferStream in the cold-start bench' }),
    log: () => {},
  };
  const firstExecute = new Series();
  rows.push({
    stage: 'sandbox', what: 'IsolatedVmSandbox.create: isolate, script, bootstrap, initialize',
    ...await timed(reps, async (rep) => {
      const t0 = nowMs();
      const sandbox = await IsolatedVmSandbox.create(script, { name: COLD_MODEL, version: '1', instance: `cold_${rep}`, config: {}, inferLimit: { max: 1, code: 'INFER_CALLS_IN_FLIGHT', message: 'no ctx.infer in the cold-start bench' } }, limits, bridge);
      const t1 = nowMs();
      const input = (): Float32Array => new Float32Array(SIZE).fill(1);
      const a = input();
      const b = input();
      await sandbox.execute([{ inputs: { INPUT0: { datatype: 'FP32', shape: [1, SIZE], data: a }, INPUT1: { datatype: 'FP32', shape: [1, SIZE], data: b } }, parameters: {} }],
        [a.buffer as ArrayBuffer, b.buffer as ArrayBuffer], 1);
      firstExecute.record(nowMs() - t1);
      await sandbox.dispose();
      return t1 - t0;
    }),
  });
  rows.push({ stage: 'first execute', what: 'sandbox.execute, first call', ...firstExecute.result() });
  return rows;
}
