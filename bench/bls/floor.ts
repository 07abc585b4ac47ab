/**
 * The floor under the bls rows: what a script calling a model must cost
 * with nothing of Switchyard's around it. One isolated-vm isolate (the
 * same library and line the sandbox uses, with a per-call `timeout` as
 * every slice has), driven synchronously from this thread, as inline
 * executes are:
 *
 * - floor direct: add_sub run with ONNX Runtime's native binding on this
 *   thread (inputs copied into fresh tensors, outputs preallocated), no
 *   isolate: the model's own cost.
 * - floor echo: the request's two tensors copied into the isolate, the
 *   script answers them back, copied out: a script-only execute.
 * - floor bls: the same, but the script hands its tensors to the host
 *   (a synchronous host call), the host runs add_sub as above and the
 *   answer is copied back in, then out: one execute with one ctx.infer.
 *
 * floor bridge = bls - echo - direct is the least a ctx.infer can add
 * (the bench's `bridge` row is the same difference for Switchyard). Every
 * figure here runs on one thread; Switchyard's async executes can use a
 * second one (the isolate's own), its inline ones cannot.
 */
import type { Reference } from 'isolated-vm-types';
import { openFloorSession } from '../native-session.ts';
import { percentile } from '../latencies.ts';

interface FloorRow {
  readonly mode: 'floor direct' | 'floor echo' | 'floor bls';
  readonly requestsPerSecond: number;
  readonly p50Us: number;
  readonly cpuUsPerRequest: number;
}

/** Runs `once` `count` times in a row after a warm-up; latency per call and CPU per call. */
function measure(mode: FloorRow['mode'], once: () => void, seconds: number): FloorRow {
  const warmEnd = performance.now() + 500;
  while (performance.now() < warmEnd) once();
  const latencies: number[] = [];
  const cpu0 = process.cpuUsage();
  const start = performance.now();
  const end = start + seconds * 1000;
  let now = start;
  while (now < end) {
    once();
    const after = performance.now();
    latencies.push(after - now);
    now = after;
  }
  const cpu = process.cpuUsage(cpu0);
  const sorted = Float64Array.from(latencies).sort();
  return {
    mode,
    requestsPerSecond: latencies.length / ((now - start) / 1000),
    p50Us: percentile(sorted, 50) * 1000,
    cpuUsPerRequest: (cpu.user + cpu.system) / latencies.length,
  };
}

/** The three floor rows for add_sub (FP32 [1, size]) at `modelPath`, each measured for `seconds`. */
export type { FloorRow };

export async function measureFloor(modelPath: string, size: number, seconds: number): Promise<readonly FloorRow[]> {
  const { isolatedVm } = await import('../../scripts-runtime/isolated-vm-line.ts');
  const session = openFloorSession(modelPath);
  const out0 = new Float32Array(size);
  const out1 = new Float32Array(size);
  const fetches = { OUTPUT0: new session.Tensor('float32', out0, [1, size]), OUTPUT1: new session.Tensor('float32', out1, [1, size]) };
  /** The model on this thread: the inputs copied into tensors of their own, the outputs copied out. */
  const runModel = (a: Float32Array, b: Float32Array): [Float32Array, Float32Array] => {
    session.run({ INPUT0: new session.Tensor('float32', a.slice(), [1, size]), INPUT1: new session.Tensor('float32', b.slice(), [1, size]) }, fetches);
    return [out0.slice(), out1.slice()];
  };

  const isolate = new isolatedVm.Isolate({ memoryLimit: 128 });
  const context = isolate.createContextSync();
  const infer = new isolatedVm.Reference((a: Float32Array, b: Float32Array) => new isolatedVm.ExternalCopy(runModel(a, b)).copyInto({ release: true }));
  await context.global.set('hostInfer', infer);
  const echo = context.evalSync('(function (request) { return { OUTPUT0: request.INPUT0, OUTPUT1: request.INPUT1 }; })', { reference: true }) as Reference;
  const bls = context.evalSync(`(function (request) {
    const [o0, o1] = hostInfer.applySync(undefined, [request.INPUT0, request.INPUT1], { arguments: { copy: true } });
    return { OUTPUT0: o0, OUTPUT1: o1 };
  })`, { reference: true }) as Reference;
  const a = Float32Array.from({ length: size }, (_, i) => i);
  const b = Float32Array.from({ length: size }, () => 1);
  const call = { arguments: { copy: true }, result: { copy: true }, timeout: 50 } as const;
  const check = bls.applySync(undefined, [{ INPUT0: a, INPUT1: b }], call) as { OUTPUT0: Float32Array };
  if (check.OUTPUT0[3] !== 4) throw new Error(`the floor's bls answered ${check.OUTPUT0[3]} for 3 + 1`);
  try {
    return [
      measure('floor direct', () => { runModel(a, b); }, seconds),
      measure('floor echo', () => { echo.applySync(undefined, [{ INPUT0: a, INPUT1: b }], call); }, seconds),
      measure('floor bls', () => { bls.applySync(undefined, [{ INPUT0: a, INPUT1: b }], call); }, seconds),
    ];
  } finally {
    isolate.dispose();
  }
}
