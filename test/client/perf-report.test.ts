/**
 * What the perf tool prints and writes: perf_analyzer's CSV columns and row
 * order, the JSON report's shape, the text blocks and summary, and the
 * progress line on a terminal and off one.
 */
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { parseArgs, type PerfOptions } from '../../client/perf/args.ts';
import type { LevelResult } from '../../client/perf/profiler.ts';
import {
  buildJsonReport, formatCsv, formatLevel, formatProgress, formatSettings, formatSummary, Progress, sig6, type RunReport,
} from '../../client/perf/report.ts';
import { summarizeServer, ZERO_COUNTERS } from '../../client/perf/server-stats.ts';
import { mergeWindows, summarizeLatency, summarizeWindow } from '../../client/perf/stats.ts';

function options(...argv: string[]): PerfOptions {
  const parsed = parseArgs(['-m', 'add_sub', ...argv]);
  assert.equal(parsed.kind, 'run');
  return (parsed as { options: PerfOptions }).options;
}

/** A level result with `count` successes of latencies base, 2*base, ... over one second. */
function level(count: number, baseNs: number, withServer: boolean, percentile?: number): LevelResult {
  const records = Array.from({ length: count }, (_, i) => ({
    startNs: 0n, endNs: BigInt(baseNs * (i + 1)), ok: true, error: undefined, sequenceEnd: false, delayed: false,
  }));
  const client = mergeWindows([summarizeWindow([...records, { ...records[0]!, ok: false, error: 'bad' }], 0n, 1_000_000_000n)]);
  const latency = summarizeLatency(client.latenciesNs, percentile);
  return {
    stable: true,
    trials: 3,
    client,
    latency,
    inferPerSec: count,
    sequencesPerSec: 0,
    stabilizingLatencyNs: percentile === undefined ? latency?.avgNs : latency?.percentilesNs.get(percentile),
    server: withServer
      ? summarizeServer({ ...ZERO_COUNTERS, successCount: 10n, successNs: 100_000n, queueCount: 10n, queueNs: 20_000n,
          computeInputCount: 10n, computeInputNs: 10_000n, computeInferCount: 10n, computeInferNs: 50_000n, computeOutputCount: 10n, computeOutputNs: 5_000n,
          inferenceCount: 10n, executionCount: 5n })
      : undefined,
    serverStatsError: undefined,
  };
}

const CONCURRENCY_HEADER = 'Concurrency,Inferences/Second,Client Send,Network+Server Send/Recv,Server Queue,Server Compute Input,Server Compute Infer,Server Compute Output,Client Recv,p50 latency,p90 latency,p95 latency,p99 latency';

describe('CSV report', () => {
  test("perf_analyzer's columns, rows by ascending throughput, times in usec", () => {
    const report: RunReport = {
      options: options('--concurrency-range', '1:2'),
      sequenceModel: false,
      serverStats: { available: true, message: undefined },
      levels: [{ level: 1, result: level(200, 100_000, true) }, { level: 2, result: level(100, 200_000, true) }],
    };
    const lines = formatCsv(report).trimEnd().split('\n');
    assert.equal(lines[0], CONCURRENCY_HEADER);
    assert.equal(lines.length, 3);
    const rows = lines.slice(1).map((l) => l.split(','));
    assert.deepEqual(rows.map((r) => r[0]), ['2', '1'], 'slower level first');
    const [row] = rows;
    assert.equal(row!.length, 13);
    assert.equal(row![1], '100');
    assert.equal(row![2], '', 'client send is not measured');
    // avg latency of 200k..20M ns is 10.1 ms; the server accounts for 8.5 us of it.
    assert.equal(row![3], String(Math.floor((10_100_000 - 8_500) / 1000)));
    assert.deepEqual(row!.slice(4, 8), ['2', '1', '5', '0']);
    assert.equal(row![8], '', 'client recv is not measured');
    assert.deepEqual(row!.slice(9), ['10200', '18000', '19000', '19800']);
  });

  test('request-rate mode names its first column so; --percentile adds its column in order; no statistics leave the server cells empty', () => {
    const report: RunReport = {
      options: options('--request-rate-range', '50', '--percentile', '85'),
      sequenceModel: false,
      serverStats: { available: false, message: 'not implemented' },
      levels: [{ level: 50, result: level(50, 1_000_000, false, 85) }],
    };
    const [header, row] = formatCsv(report).trimEnd().split('\n');
    assert.equal(
      header,
      'Request Rate,Inferences/Second,Client Send,Network+Server Send/Recv,Server Queue,Server Compute Input,Server Compute Infer,Server Compute Output,Client Recv,p50 latency,p85 latency,p90 latency,p95 latency,p99 latency',
    );
    const cells = row!.split(',');
    assert.equal(cells[0], '50');
    assert.deepEqual(cells.slice(4, 9), ['', '', '', '', '']);
    assert.equal(cells[3], '25500', 'with nothing accounted by the server, the whole average latency');
  });
});

describe('JSON report', () => {
  test('one step per level with client and server figures', () => {
    const report: RunReport = {
      options: options('--concurrency-range', '1:2', '-b', '2'),
      sequenceModel: false,
      serverStats: { available: false, message: 'the statistics extension is not implemented yet' },
      levels: [{ level: 1, result: level(10, 1000, false) }, { level: 2, result: level(20, 1000, true) }],
    };
    const json = JSON.parse(JSON.stringify(buildJsonReport(report)));
    assert.equal(json.model, 'add_sub');
    assert.equal(json.batchSize, 2);
    assert.equal(json.mode, 'concurrency');
    assert.equal(json.percentile, null);
    assert.deepEqual(json.serverStatistics, { available: false, message: 'the statistics extension is not implemented yet' });
    assert.equal(json.steps.length, 2);
    const [first, second] = json.steps;
    assert.equal(first.concurrency, 1);
    assert.equal(first.stable, true);
    assert.equal(first.client.requestCount, 10);
    assert.equal(first.client.failedRequestCount, 1);
    assert.deepEqual(first.client.errors, [{ message: 'bad', count: 1 }]);
    assert.deepEqual(Object.keys(first.client.latencyUs), ['avg', 'std', 'p50', 'p90', 'p95', 'p99']);
    assert.equal(first.server, null);
    assert.equal(second.server.avgQueueUs, 2);
    assert.equal(second.server.avgComputeInferUs, 5);
    const rate = buildJsonReport({ ...report, options: options('--request-rate-range', '5') }) as { mode: string; steps: Record<string, unknown>[] };
    assert.equal(rate.mode, 'request_rate');
    assert.equal(rate.steps[0]!['requestRate'], 1);
  });
});

describe('text report', () => {
  test('settings, one block per level, and the closing summary', () => {
    const o = options('--percentile', '95');
    const settings = formatSettings(o, false, { available: false, message: 'UNIMPLEMENTED here' });
    assert.match(settings, /Stabilizing using p95 latency/);
    assert.match(settings, /^Server-side statistics: not available \(UNIMPLEMENTED here\)$/m);
    const result = level(10, 1000, true, 95);
    const block = formatLevel(o, { level: 3, result }, false);
    assert.match(block, /^Request concurrency: 3$/m);
    assert.match(block, /Request count: 10\n/);
    assert.match(block, /Failed request count: 1 \(first: bad\)/);
    assert.doesNotMatch(block, /Avg latency:/, 'a percentile replaces the average');
    assert.match(block, /p95 latency: \d+ usec/);
    assert.match(block, /Avg request latency: 10 usec \(overhead 1 usec \+ queue 2 usec \+ compute input 1 usec \+ compute infer 5 usec \+ compute output 0 usec\)/);
    const summary = formatSummary({ options: o, sequenceModel: false, serverStats: { available: true, message: undefined }, levels: [{ level: 3, result }] });
    assert.match(summary, /^Inferences\/Second vs\. Client p95 Batch Latency$/m);
    assert.match(summary, /^Concurrency: 3, throughput: 10 infer\/sec, latency \d+ usec$/m);
    assert.match(summary, /Concurrency {2}Inferences\/Second {2}Avg latency {2}p50 latency {2}p90 latency {2}p95 latency {2}p99 latency/);
  });

  test('numbers print as C++ streams print them', () => {
    assert.equal(sig6(1407.8412), '1407.84');
    assert.equal(sig6(266.6666666), '266.667');
    assert.equal(sig6(12), '12');
  });
});

describe('progress line', () => {
  const trial = { trial: 2, maxTrials: 10, inferPerSec: 1234.4, latency: undefined, stabilizingLatencyNs: 2_100_000, errorCount: 0 };

  test('names the level, trial, throughput and the latency being stabilised on', () => {
    assert.equal(formatProgress(options('--percentile', '95'), 8, trial), 'concurrency 8 · trial 2/10 · 1234 infer/s · p95 2.10 ms');
    assert.equal(formatProgress(options('--request-rate-range', '50'), 50, { ...trial, errorCount: 3 }), 'rate 50/s · trial 2/10 · 1234 infer/s · avg 2.10 ms · 3 failed');
  });

  test('rewrites itself on a terminal, and writes whole lines elsewhere', () => {
    const written: string[] = [];
    const tty = new Progress({ write: (s: string) => written.push(s), isTTY: true });
    tty.update('one');
    tty.update('two');
    tty.clear();
    assert.deepEqual(written, ['\r\x1b[Kone', '\r\x1b[Ktwo', '\r\x1b[K']);
    const lines: string[] = [];
    const pipe = new Progress({ write: (s: string) => lines.push(s) });
    pipe.update('one');
    pipe.update('two');
    pipe.clear();
    assert.deepEqual(lines, ['one\n', 'two\n']);
  });
});
