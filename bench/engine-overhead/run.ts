/**
 * The engine's own cost per request, in-process: engine.infer() from a
 * caller that already holds decoded tensors (what a frontend hands over) to
 * the answer, with the response's lease released as the HTTP route does.
 * No sockets, no codec: what is left is the facade, the normalizer, the
 * scheduler, the backend instance's bookkeeping, statistics and the pool.
 *
 *   npm run bench:engine
 *   npm run bench:engine -- --root /work/other-checkout   (the same bench against another tree, for before/after)
 *
 * Two models with add_sub's signature (FP32 [1,16] x2 -> x2, max_batch_size
 * 8, no dynamic batching, one instance): `add_sub` on ONNX Runtime with
 * execution_thread inline, and `echo` on the in-memory echo backend of the
 * tests. Each cell runs `c` callers, each sending its next request when its
 * last one is answered, for BENCH_REQUESTS requests in all after a warm-up.
 * It prints CPU µs per request (process.cpuUsage: the whole process, which
 * here is only the engine), garbage collections per 10k requests (and their
 * time), and pool buffers allocated per request after the warm-up (0 when
 * steady traffic reuses the pool's buffers).
 *
 * Environment:
 *   BENCH_REQUESTS     measured requests per cell (default 20000)
 *   BENCH_ROUNDS       rounds; each cell reports its median round (default 3)
 *   BENCH_CONCURRENCY  comma-separated concurrencies (default 1,32)
 *   BENCH_MODELS       comma-separated, add_sub and/or echo (default both)
 */
import { PerformanceObserver } from 'node:perf_hooks';
import { pathToFileURL } from 'node:url';
import { resolve } from 'node:path';
import { envIntegers, envNumber, table } from '../report.ts';

const SIZE = 16;
const REQUESTS = envNumber('BENCH_REQUESTS', 20000);
const ROUNDS = envNumber('BENCH_ROUNDS', 3);
const CONCURRENCY = envIntegers('BENCH_CONCURRENCY', '1,32');
const MODELS = (process.env['BENCH_MODELS'] ?? 'add_sub,echo').split(',').map((m) => m.trim()).filter(Boolean);

const rootArg = process.argv.indexOf('--root');
const ROOT = rootArg >= 0 ? resolve(process.argv[rootArg + 1]!) : resolve(import.meta.dirname, '../..');
const from = (path: string): Promise<any> => import(pathToFileURL(resolve(ROOT, path)).href);

function config(name: string, backend: string, extra = ''): string {
  const tensor = (n: string): string => `  { name: "${n}" data_type: TYPE_FP32 dims: [ ${SIZE} ] }`;
  return [
    `name: "${name}"`, backend, 'max_batch_size: 8',
    `input [\n${tensor('INPUT0')},\n${tensor('INPUT1')}\n]`,
    `output [\n${tensor('OUTPUT0')},\n${tensor('OUTPUT1')}\n]`,
    'instance_group [ { count: 1, kind: KIND_CPU } ]', extra, '',
  ].join('\n');
}

interface Cell { model: string; c: number; cpuUs: number; gcs: number; gcMs: number; allocated: number; reqPerS: number }

async function main(): Promise<void> {
  const { makeRepository, removeRepository } = await from('test/helpers/fixture-repository.ts');
  const { addSubModel } = await from('generator/models.ts');
  const { EchoBackend, withTestBackends } = await from('test/helpers/test-backends.ts');
  const { InferenceEngine } = await from('engine/inference-engine.ts');
  const { silentLogger } = await from('engine/logger.ts');
  const repository: string = await makeRepository({
    add_sub: {
      config: config('add_sub', 'platform: "onnxruntime_onnx"', 'parameters { key: "execution_thread" value: { string_value: "inline" } }'),
      versions: { 1: addSubModel('FP32', SIZE) },
    },
    echo: { config: config('echo', 'backend: "test_echo"'), versions: { 1: null } },
  });
  const engine = await InferenceEngine.create({ modelRepositories: [repository], backends: withTestBackends(new EchoBackend()), logger: silentLogger });

  // Inputs as a frontend hands them over: views into one received body, not the pool's.
  const body = Buffer.alloc(2 * SIZE * 4);
  const a = new Float32Array(body.buffer, body.byteOffset, SIZE);
  const b = new Float32Array(body.buffer, body.byteOffset + SIZE * 4, SIZE);
  for (let i = 0; i < SIZE; i++) { a[i] = i + 0.5; b[i] = 1 - i * 0.25; }
  const request = (model: string) => ({
    modelName: model,
    inputs: [
      { name: 'INPUT0', datatype: 'FP32', shape: [1, SIZE], raw: new Uint8Array(body.buffer, body.byteOffset, SIZE * 4) },
      { name: 'INPUT1', datatype: 'FP32', shape: [1, SIZE], raw: new Uint8Array(body.buffer, body.byteOffset + SIZE * 4, SIZE * 4) },
    ],
  });

  let gcs = 0;
  let gcMs = 0;
  const observer = new PerformanceObserver((list) => {
    for (const entry of list.getEntries()) { gcs++; gcMs += entry.duration; }
  });
  observer.observe({ entryTypes: ['gc'] });

  async function drive(model: string, c: number, total: number): Promise<void> {
    let left = total;
    const caller = async (): Promise<void> => {
      while (left > 0) {
        left--;
        const response = await engine.infer(request(model));
        response.lease?.release();
      }
    };
    await Promise.all(Array.from({ length: c }, caller));
  }

  const cells: Cell[] = [];
  for (const model of MODELS) {
    for (const c of CONCURRENCY) {
      await drive(model, c, Math.min(REQUESTS, 5000));
      const rounds: Cell[] = [];
      for (let round = 0; round < ROUNDS; round++) {
        await new Promise((r) => setImmediate(r));
        const gcBefore = gcs;
        const gcMsBefore = gcMs;
        const pool = engine.bufferPoolStats().allocated;
        const cpu = process.cpuUsage();
        const start = performance.now();
        await drive(model, c, REQUESTS);
        const wallMs = performance.now() - start;
        const used = process.cpuUsage(cpu);
        // GC entries arrive asynchronously: let the observer hear of the last ones.
        await new Promise((r) => setImmediate(r));
        rounds.push({
          model, c, cpuUs: (used.user + used.system) / REQUESTS, gcs: ((gcs - gcBefore) * 10000) / REQUESTS,
          gcMs: ((gcMs - gcMsBefore) * 10000) / REQUESTS, allocated: (engine.bufferPoolStats().allocated - pool) / REQUESTS,
          reqPerS: (REQUESTS * 1000) / wallMs,
        });
      }
      rounds.sort((x, y) => x.cpuUs - y.cpuUs);
      cells.push(rounds[Math.floor(rounds.length / 2)]!);
    }
  }
  observer.disconnect();
  await engine.close();
  await removeRepository(repository);

  console.log(`tree: ${ROOT}; ${REQUESTS} requests per round, median of ${ROUNDS} rounds by CPU`);
  console.log(table(['model', 'c', 'CPU µs/req', 'req/s', 'GCs/10k req', 'GC ms/10k req', 'pool allocs/req'], cells.map((cell) => [
    cell.model, String(cell.c), cell.cpuUs.toFixed(1), cell.reqPerS.toFixed(0), cell.gcs.toFixed(1), cell.gcMs.toFixed(1), cell.allocated.toFixed(3),
  ])));
}

await main();
