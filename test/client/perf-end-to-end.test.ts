/**
 * The perf tool against real Switchyard servers on loopback ports, real
 * ONNX models, over HTTP and gRPC (unary and streaming): reports, CSV,
 * input-data files, every datatype's generated data, and the failures a
 * user meets (unknown model, bad flags for the model, a server that
 * rejects every request).
 */
import assert from 'node:assert/strict';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { runPerf } from '../../client/perf/main.ts';
import { addSubModel, identityModel, ORT_DATA_TYPES } from '../../generator/models.ts';
import { addSubConfig } from '../helpers/fixture-configs.ts';
import {
  makeRepository, removeRepository, startBoth, startHttp, type DualFixture, type HttpFixture,
} from '../helpers/fixture-repository.ts';

interface Captured {
  readonly code: number;
  readonly stdout: string;
  readonly stderr: string;
}

async function perf(...argv: string[]): Promise<Captured> {
  let stdout = '';
  let stderr = '';
  const code = await runPerf(argv, {
    stdout: { write: (s: string) => (stdout += s) },
    stderr: { write: (s: string) => (stderr += s) },
  });
  return { code, stdout, stderr };
}

interface JsonStep {
  concurrency?: number;
  requestRate?: number;
  stable: boolean;
  trials: number;
  client: {
    requestCount: number;
    failedRequestCount: number;
    inferPerSec: number;
    latencyUs: Record<string, number>;
    stabilizingLatencyUs: number;
  };
  server: unknown;
}

interface JsonReport {
  model: string;
  protocol: string;
  streaming: boolean;
  mode: string;
  serverStatistics: { available: boolean; message: string | null };
  steps: JsonStep[];
}

function jsonReport(run: Captured): JsonReport {
  assert.equal(run.code, 0, run.stderr);
  return JSON.parse(run.stdout) as JsonReport;
}

function checkStep(step: JsonStep, percentiles = ['p50', 'p90', 'p95', 'p99']): void {
  assert.ok(step.client.requestCount > 0, 'requests completed');
  assert.equal(step.client.failedRequestCount, 0);
  assert.ok(step.client.inferPerSec > 0, 'positive throughput');
  const values = percentiles.map((p) => step.client.latencyUs[p]);
  assert.ok(values.every((v) => typeof v === 'number' && v >= 0), JSON.stringify(step.client.latencyUs));
  for (let i = 1; i < values.length; i++) assert.ok(values[i - 1]! <= values[i]!, `percentiles ordered: ${JSON.stringify(step.client.latencyUs)}`);
}

const FAST = ['-p', '150', '--max-trials', '4'];

const CSV_HEADER = 'Concurrency,Inferences/Second,Client Send,Network+Server Send/Recv,Server Queue,Server Compute Input,Server Compute Infer,Server Compute Output,Client Recv,p50 latency,p90 latency,p95 latency,p99 latency';

describe('perf over HTTP', () => {
  let root: string;
  let fixture: HttpFixture;
  let scratch: string;

  before(async () => {
    root = await makeRepository({
      add_sub: { config: addSubConfig('add_sub', 'dynamic_batching { }\n'), versions: { 1: addSubModel('INT32', 16) } },
      // No config: the server completes it from the model (max_batch_size 4, dims [-1]).
      identity: { versions: { 1: identityModel() } },
    });
    fixture = await startHttp(root);
    scratch = await mkdtemp(join(tmpdir(), 'switchyard-perf-'));
  });

  after(async () => {
    await fixture.close();
    await removeRepository(root);
    await rm(scratch, { recursive: true, force: true });
  });

  test('--json over a concurrency range: one step per level, positive throughput, ordered percentiles', async () => {
    const run = await perf('-m', 'add_sub', '-u', fixture.url, ...FAST, '--concurrency-range', '1:2', '--json', '--warmup-request-count', '5');
    const report = jsonReport(run);
    assert.equal(report.model, 'add_sub');
    assert.equal(report.protocol, 'http');
    assert.equal(report.mode, 'concurrency');
    assert.deepEqual(report.steps.map((s) => s.concurrency), [1, 2]);
    report.steps.forEach((s) => checkStep(s));
    assert.deepEqual(report.serverStatistics, { available: true, message: null }, 'Switchyard has the statistics extension');
    for (const step of report.steps) {
      const server = step.server as { successCount: number; failCount: number; avgRequestUs: number } | null;
      assert.ok(server, 'every step has the server-side figures');
      assert.ok(server.successCount > 0 && server.failCount === 0, JSON.stringify(server));
      assert.ok(server.avgRequestUs > 0, JSON.stringify(server));
    }
    assert.match(run.stderr, /^concurrency 1 · trial 1\/4 · \d+ infer\/s · avg [\d.]+ ms$/m, 'one progress line per trial when stderr is no terminal');
    assert.match(run.stderr, /^concurrency 2 · trial 1\/4/m);
  });

  test('text report, -v windows, and -f CSV with perf_analyzer\'s columns', async () => {
    const csv = join(scratch, 'add_sub.csv');
    const run = await perf('-m', 'add_sub', '-u', fixture.url, ...FAST, '--concurrency-range', '1:2', '-b', '2', '-f', csv, '-v', '--sequence-length', '4');
    assert.equal(run.code, 0, run.stderr);
    assert.match(run.stderr, /^warning: model 'add_sub' has no sequence_batching; sequence options are ignored$/m);
    assert.match(run.stdout, /^ {2}Pass \[1\] throughput: [\d.]+ infer\/sec\. Avg latency: \d+ usec \(std \d+ usec\)$/m, '-v prints every window');
    assert.match(run.stdout, /^\*\*\* Measurement Settings \*\*\*$/m);
    assert.match(run.stdout, /^ {2}Batch size: 2$/m);
    assert.match(run.stdout, /^Request concurrency: 1$/m);
    assert.match(run.stdout, /^Request concurrency: 2$/m);
    assert.match(run.stdout, /^ {4}Throughput: [\d.]+ infer\/sec$/m);
    assert.match(run.stdout, /^Inferences\/Second vs\. Client Average Batch Latency$/m);
    assert.match(run.stdout, /^Concurrency: 2, throughput: [\d.]+ infer\/sec, latency \d+ usec$/m);
    const lines = (await readFile(csv, 'utf8')).trimEnd().split('\n');
    assert.equal(lines[0], CSV_HEADER);
    assert.equal(lines.length, 3);
    const levels = lines.slice(1).map((l) => l.split(',')[0]).sort();
    assert.deepEqual(levels, ['1', '2']);
    for (const line of lines.slice(1)) {
      const cells = line.split(',');
      assert.equal(cells.length, 13);
      assert.ok(Number(cells[1]) > 0, 'throughput');
    }
  });

  test('request-rate mode with --percentile stabilises on and reports that percentile', async () => {
    const report = jsonReport(await perf(
      '-m', 'add_sub', '-u', fixture.url, ...FAST, '--request-rate-range', '100:200:100', '--request-distribution', 'poisson', '--percentile', '85', '--json',
    ));
    assert.equal(report.mode, 'request_rate');
    assert.deepEqual(report.steps.map((s) => s.requestRate), [100, 200]);
    for (const step of report.steps) {
      checkStep(step, ['p50', 'p85', 'p90', 'p95', 'p99']);
      assert.equal(step.client.stabilizingLatencyUs, step.client.latencyUs['p85']);
    }
  });

  test('every datatype gets data the server accepts (identity model, JSON tensors)', async () => {
    const shapes = ORT_DATA_TYPES.flatMap((t) => ['--shape', `IN_${t}:3`]);
    const report = jsonReport(await perf('-m', 'identity', '-u', fixture.url, ...FAST, '-b', '2', ...shapes, '--input-tensor-format', 'json', '--json'));
    checkStep(report.steps[0]!);
  });

  test('perf_analyzer input-data files, flat and {"content", "shape"}', async () => {
    const file = join(scratch, 'data.json');
    const row = (k: number): number[] => Array.from({ length: 16 }, (_, i) => k + i);
    await writeFile(file, JSON.stringify({
      data: [
        { INPUT0: row(0), INPUT1: row(100) },
        { INPUT0: { content: row(1), shape: [16] }, INPUT1: { content: row(2), shape: [16] } },
        { INPUT0: row(3), INPUT1: row(4) },
      ],
    }));
    checkStep(jsonReport(await perf('-m', 'add_sub', '-u', fixture.url, ...FAST, '-b', '2', '--input-data', file, '--json')).steps[0]!);

    await writeFile(file, JSON.stringify({ data: [{ INPUT0: row(0) }] }));
    const missing = await perf('-m', 'add_sub', '-u', fixture.url, '--input-data', file);
    assert.equal(missing.code, 1);
    assert.equal(missing.stderr, `error: ${file}: data[0]: no data for input 'INPUT1'\n`);
  });

  test('an unknown model fails with the server\'s message', async () => {
    const run = await perf('-m', 'no_such_model', '-u', fixture.url, '-p', '100');
    assert.equal(run.code, 1);
    assert.equal(run.stderr, "error: Request for unknown model: 'no_such_model' is not found\n");
    assert.equal(run.stdout, '');
  });

  test('flags that do not fit the model fail before any load', async () => {
    const tooBig = await perf('-m', 'add_sub', '-u', fixture.url, '-b', '9');
    assert.equal(tooBig.code, 1);
    assert.match(tooBig.stderr, /^error: -b 9: model 'add_sub' takes batches of at most 8 \(max_batch_size\)\n$/);
    const unknownInput = await perf('-m', 'add_sub', '-u', fixture.url, '--shape', 'INPUT9:16');
    assert.equal(unknownInput.code, 1);
    assert.match(unknownInput.stderr, /no input 'INPUT9'/);
    const variable = await perf('-m', 'identity', '-u', fixture.url);
    assert.equal(variable.code, 1);
    assert.match(variable.stderr, /give its shape with --shape IN_BOOL:N/);
  });

  test('bad usage exits 1 with one line and no server contact', async () => {
    const run = await perf('-m', 'add_sub', '--concurency-range', '1:2');
    assert.equal(run.code, 1);
    assert.equal(run.stderr, "error: unknown option '--concurency-range'; did you mean '--concurrency-range'?\n");
    const help = await perf('--help');
    assert.equal(help.code, 0);
    assert.match(help.stdout, /^Usage: switchyard perf -m <model>/);
  });
});

describe('perf against a server that rejects every inference', () => {
  let root: string;
  let fixture: HttpFixture;

  before(async () => {
    root = await makeRepository({ add_sub: { config: addSubConfig(), versions: { 1: addSubModel('INT32', 16) } } });
    // Metadata and config are GETs without a body; every infer body is over the limit.
    fixture = await startHttp(root, { maxInputSize: 16 });
  });

  after(async () => {
    await fixture.close();
    await removeRepository(root);
  });

  test('the run stops with the server\'s message and exit code 1', async () => {
    const run = await perf('-m', 'add_sub', '-u', fixture.url, '-p', '100', '--input-tensor-format', 'json');
    assert.equal(run.code, 1);
    assert.match(run.stderr, /^error: every request failed: request JSON size of \d+ bytes exceeds the maximum allowed input size of 16 bytes/m);
    assert.doesNotMatch(run.stdout, /Inferences\/Second vs\./, 'no summary for a failed run');
  });
});

describe('perf over gRPC', () => {
  let root: string;
  let fixture: DualFixture;

  before(async () => {
    root = await makeRepository({ add_sub: { config: addSubConfig('add_sub', 'dynamic_batching { }\n'), versions: { 1: addSubModel('INT32', 16) } } });
    fixture = await startBoth(root);
  });

  after(async () => {
    await fixture.close();
    await removeRepository(root);
  });

  test('unary calls over a concurrency range', async () => {
    const report = jsonReport(await perf('-m', 'add_sub', '-i', 'grpc', '-u', fixture.grpcAddress, ...FAST, '--concurrency-range', '1:2', '--json'));
    assert.equal(report.protocol, 'grpc');
    assert.deepEqual(report.steps.map((s) => s.concurrency), [1, 2]);
    report.steps.forEach((s) => checkStep(s));
  });

  test('--streaming, closed loop and open loop', async () => {
    const closed = jsonReport(await perf('-m', 'add_sub', '-i', 'grpc', '-u', fixture.grpcAddress, ...FAST, '--streaming', '--concurrency-range', '3', '-b', '4', '--json'));
    assert.equal(closed.streaming, true);
    checkStep(closed.steps[0]!);
    const open = jsonReport(await perf('-m', 'add_sub', '-u', `grpc://${fixture.grpcAddress}`, ...FAST, '--streaming', '--request-rate-range', '150', '--json'));
    assert.equal(open.protocol, 'grpc');
    checkStep(open.steps[0]!);
  });

  test('an unknown model fails with the server\'s message', async () => {
    const run = await perf('-m', 'no_such_model', '-i', 'grpc', '-u', fixture.grpcAddress);
    assert.equal(run.code, 1);
    assert.match(run.stderr, /^error: Request for unknown model: 'no_such_model' is not found\n$/);
  });
});
