/**
 * The perf tool's command line: perf_analyzer's flag names and defaults,
 * ranges, and one-line errors with did-you-mean hints.
 */
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { DEFAULTS, loadLevels, parseArgs, usage, UsageError, type PerfOptions } from '../../client/perf/args.ts';

function options(...argv: string[]): PerfOptions {
  const parsed = parseArgs(argv);
  assert.equal(parsed.kind, 'run');
  return (parsed as { options: PerfOptions }).options;
}

function usageError(argv: string[], pattern: RegExp): void {
  assert.throws(() => parseArgs(argv), (error: unknown) => {
    assert.ok(error instanceof UsageError, String(error));
    assert.match(error.message, pattern);
    assert.doesNotMatch(error.message, /\n/, 'usage errors are one line');
    return true;
  });
}

describe('perf arguments', () => {
  test('defaults are perf_analyzer\'s', () => {
    const o = options('-m', 'add_sub');
    assert.equal(o.model, 'add_sub');
    assert.equal(o.modelVersion, undefined);
    assert.equal(o.protocol, 'http');
    assert.equal(o.url, 'localhost:8000');
    assert.equal(o.batchSize, 1);
    assert.deepEqual(o.inputData, { kind: 'random' });
    assert.deepEqual(o.load, { kind: 'concurrency', start: 1, end: 1, step: 1 });
    assert.equal(o.measurementIntervalMs, 5000);
    assert.equal(o.stabilityPercentage, 10);
    assert.equal(o.maxTrials, 10);
    assert.equal(o.percentile, undefined);
    assert.equal(o.latencyThresholdMs, 0);
    assert.equal(o.stringLength, 128);
    assert.deepEqual(o.sequence, { length: undefined, lengthVariation: 20, idStart: 1, idEnd: undefined, numSequences: 4 });
    assert.equal(o.streaming, false);
    assert.equal(o.json, false);
    assert.equal(o.csvFile, undefined);
    assert.equal(o.binaryTensors, true);
    assert.equal(o.warmupRequests, 0);
    assert.equal(DEFAULTS.sequenceLength, 20);
  });

  test('gRPC defaults to port 8001, and the protocol name is case-insensitive', () => {
    assert.equal(options('-m', 'm', '-i', 'gRPC').url, 'localhost:8001');
    assert.equal(options('-m', 'm', '-i', 'grpc').protocol, 'grpc');
    assert.equal(options('-m', 'm', '-u', 'grpc://host:9001').protocol, 'grpc');
    usageError(['-m', 'm', '-u', 'grpc://host:9001', '-i', 'http'], /grpc URL but -i says http/);
  });

  test('values attach with a space, with = for long flags, or directly after a short flag', () => {
    const o = options('-madd_sub', '-x', '2', '-b4', '--measurement-interval=250', '-s', '5', '-r', '7', '--percentile=95');
    assert.equal(o.model, 'add_sub');
    assert.equal(o.modelVersion, '2');
    assert.equal(o.batchSize, 4);
    assert.equal(o.measurementIntervalMs, 250);
    assert.equal(o.stabilityPercentage, 5);
    assert.equal(o.maxTrials, 7);
    assert.equal(o.percentile, 95);
    assert.equal(options('-m', 'm', '-p', '300').measurementIntervalMs, 300);
    assert.equal(options('-m', 'm', '--percentile', '-1').percentile, undefined);
  });

  test('concurrency and request-rate ranges', () => {
    assert.deepEqual(options('-m', 'm', '--concurrency-range', '4').load, { kind: 'concurrency', start: 4, end: 4, step: 1 });
    assert.deepEqual(options('-m', 'm', '--concurrency-range', '1:8:2').load, { kind: 'concurrency', start: 1, end: 8, step: 2 });
    assert.deepEqual(
      options('-m', 'm', '--request-rate-range', '10.5:20', '--request-distribution', 'poisson').load,
      { kind: 'request-rate', start: 10.5, end: 20, step: 1, distribution: 'poisson' },
    );
    assert.deepEqual([...loadLevels(options('-m', 'm', '--concurrency-range', '1:8:2').load)], [1, 3, 5, 7]);
    assert.deepEqual([...loadLevels(options('-m', 'm', '--request-rate-range', '0.1:0.3:0.1').load)], [0.1, 0.2, 0.3]);
    usageError(['-m', 'm', '--concurrency-range', '1:2', '--request-rate-range', '5'], /cannot be used together/);
    usageError(['-m', 'm', '--concurrency-range', '4:2'], /end must be >= start/);
    usageError(['-m', 'm', '--concurrency-range', '1:2:0'], /step must be > 0/);
    usageError(['-m', 'm', '--concurrency-range', '1:x'], /expected an integer/);
    usageError(['-m', 'm', '--concurrency-range', '1:2:3:4'], /start\[:end\[:step\]\]/);
    usageError(['-m', 'm', '--concurrency-range', '1:0'], /needs --latency-threshold/);
    const open = options('-m', 'm', '--concurrency-range', '1:0:2', '-l', '50').load;
    const levels = loadLevels(open);
    assert.deepEqual([levels.next().value, levels.next().value, levels.next().value], [1, 3, 5]);
  });

  test('--shape, --input-data and headers', () => {
    const o = options('-m', 'm', '--shape', 'INPUT0:3,224,224', '--shape=ns:name:5', '-H', 'Authorization: Bearer x', '--input-data', 'a.json', '--input-data', 'b.json');
    assert.deepEqual(o.shapes.get('INPUT0'), [3, 224, 224]);
    assert.deepEqual(o.shapes.get('ns:name'), [5]);
    assert.deepEqual(o.headers, { Authorization: 'Bearer x' });
    assert.deepEqual(o.inputData, { kind: 'files', paths: ['a.json', 'b.json'] });
    assert.deepEqual(options('-m', 'm', '--input-data', 'zero').inputData, { kind: 'zero' });
    usageError(['-m', 'm', '--shape', 'INPUT0'], /NAME:d1,d2/);
    usageError(['-m', 'm', '--shape', 'INPUT0:3,-1'], /non-negative integer dims/);
    usageError(['-m', 'm', '--shape', 'A:1', '--shape', 'A:2'], /more than once/);
    usageError(['-m', 'm', '--input-data', 'zero', '--input-data', 'a.json'], /cannot be combined/);
    usageError(['-m', 'm', '-H', 'novalue'], /Name:Value/);
  });

  test('sequence options', () => {
    const o = options('-m', 'm', '--sequence-length', '5', '--sequence-length-variation', '0', '--sequence-id-range', '100:200', '--num-of-sequences', '2');
    assert.deepEqual(o.sequence, { length: 5, lengthVariation: 0, idStart: 100, idEnd: 200, numSequences: 2 });
    assert.equal(o.sequenceLengthGiven, true);
    usageError(['-m', 'm', '--sequence-id-range', '5:5'], /must be > start/);
    usageError(['-m', 'm', '--sequence-length', '0'], /integer >= 1/);
  });

  test('flag combinations that cannot work are refused', () => {
    usageError(['-m', 'm', '--streaming'], /needs the gRPC protocol/);
    assert.equal(options('-m', 'm', '-i', 'grpc', '--streaming').streaming, true);
    usageError(['-m', 'm', '--input-tensor-format', 'json', '--output-tensor-format', 'binary'], /must match/);
    assert.equal(options('-m', 'm', '--input-tensor-format', 'json').binaryTensors, false);
    usageError(['-m', 'm', '-i', 'grpc', '--input-tensor-format', 'json'], /HTTP only/);
    usageError(['-m', 'm', '--percentile', '100'], /1\.\.99/);
    usageError(['-m', 'm', '-b', '0'], /-b: expected an integer >= 1, got '0'/);
    usageError(['-m', 'm', '-m', 'n'], /given more than once/);
  });

  test('missing, unknown and unsupported flags say what to do', () => {
    usageError([], /-m <model> is required/);
    usageError(['-m'], /-m needs a value/);
    usageError(['-m', 'm', '--concurency-range', '1:2'], /unknown option '--concurency-range'; did you mean '--concurrency-range'\?/);
    usageError(['-m', 'm', '--measurment-interval=100'], /did you mean '--measurement-interval'/);
    usageError(['-m', 'm', '-q'], /unknown option '-q'/);
    usageError(['-m', 'm', '--shared-memory=system'], /--shared-memory is not supported by switchyard perf/);
    usageError(['-m', 'm', '-z'], /use --input-data=zero/);
    usageError(['-m', 'm', 'extra'], /unexpected argument 'extra'/);
    usageError(['-m', 'm', '--json=yes'], /takes no value/);
  });

  test('help', () => {
    assert.deepEqual(parseArgs(['--help']), { kind: 'help' });
    assert.deepEqual(parseArgs(['-m', 'm', '-h']), { kind: 'help' });
    const text = usage();
    for (const flag of ['-m <model>', '--concurrency-range', '--request-rate-range', '--percentile', '--streaming', '--json', '-f <out.csv>']) {
      assert.ok(text.includes(flag), `usage mentions ${flag}`);
    }
  });

  test('an unknown option names the near one, and only a near one', () => {
    usageError(['-m', 'm', '--jsno'], /^unknown option '--jsno'; did you mean '--json'\?$/);
    usageError(['-m', 'm', '--completely-different'], /^unknown option '--completely-different'$/);
  });
});
