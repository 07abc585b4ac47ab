import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { fileURLToPath } from 'node:url';
import { test } from 'node:test';
import { addSubModel } from '../../generator/models.ts';
import { acceptedFlagsLine, startServer } from '../../server/cli.ts';
import { CLI_FLAG_NAMES, CliError, parseCliOptions } from '../../server/cli-options.ts';
import { addSubConfig } from '../helpers/fixture-configs.ts';
import { makeRepository, removeRepository } from '../helpers/fixture-repository.ts';
import { pollFor, tail } from '../helpers/wait.ts';
import { mkdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';

test('tritonserver flags parse with Triton\'s defaults', () => {
  const options = parseCliOptions(['--model-repository=/models']);
  assert.deepEqual(options.modelRepositories, ['/models']);
  assert.equal(options.httpPort, 8000);
  assert.equal(options.exitOnError, true);
  assert.equal(options.strictReadiness, true);
  assert.equal(options.modelControlMode, 'none');
  assert.equal(options.httpMaxInputSize, 64 * 1024 * 1024);
  assert.equal(options.allowGrpc, true);
  assert.equal(options.grpcPort, 8001);
  assert.equal(options.grpcAddress, '0.0.0.0');
  assert.equal(options.grpcMaxMessageSize, 2147483647);
  assert.equal(options.maxBytesElements, 1048576);
  assert.equal(options.grpcMaxRequestFields, 65536);

  const custom = parseCliOptions([
    '--model-repository', '/a', '--model-repository=/b', '--http-port=9000', '--exit-on-error=false',
    '--strict-readiness', 'false', '--log-verbose=1', '--model-control-mode=explicit', '--load-model=m1', '--load-model=m2',
    '--http-max-input-size=1024', '--allow-grpc=false', '--allow-metrics=false',
    '--grpc-port=9001', '--grpc-address=127.0.0.1', '--grpc-max-message-size=4096', '--max-bytes-elements=16',
    '--grpc-max-request-fields=100',
  ]);
  assert.equal(custom.grpcMaxRequestFields, 100);
  assert.throws(() => parseCliOptions(['--model-repository=/m', '--grpc-max-request-fields=15']), /grpc-max-request-fields/);
  assert.equal(custom.maxBytesElements, 16);
  assert.throws(() => parseCliOptions(['--model-repository=/m', '--max-bytes-elements=0']), /max-bytes-elements/);
  assert.equal(custom.allowGrpc, false);
  assert.equal(custom.grpcPort, 9001);
  assert.equal(custom.grpcAddress, '127.0.0.1');
  assert.equal(custom.grpcMaxMessageSize, 4096);
  assert.deepEqual(custom.modelRepositories, ['/a', '/b']);
  assert.equal(custom.httpPort, 9000);
  assert.equal(custom.exitOnError, false);
  assert.equal(custom.strictReadiness, false);
  assert.deepEqual(custom.loadModels, ['m1', 'm2']);
  assert.equal(custom.httpMaxInputSize, 1024);
  assert.equal(parseCliOptions(['--exit-on-error'], '/default').exitOnError, true);
  assert.deepEqual(parseCliOptions([], '/default').modelRepositories, ['/default']);
  assert.deepEqual(parseCliOptions(['--model-repository=/x'], '/default').modelRepositories, ['/x']);
});

test('model control and shutdown flags: poll mode with its interval, and the exit timeout (Triton\'s defaults 15 s and 30 s)', () => {
  const defaults = parseCliOptions(['--model-repository=/m']);
  assert.equal(defaults.repositoryPollSecs, 15);
  assert.equal(defaults.exitTimeoutSecs, 30);
  const poll = parseCliOptions(['--model-repository=/m', '--model-control-mode=poll', '--repository-poll-secs=2', '--exit-timeout-secs=5']);
  assert.equal(poll.modelControlMode, 'poll');
  assert.equal(poll.repositoryPollSecs, 2);
  assert.equal(poll.exitTimeoutSecs, 5);
});

test('--cache-config local,size=N sets up the response cache, as tritonserver takes it; none by default', () => {
  assert.equal(parseCliOptions(['--model-repository=/m']).responseCache, undefined);
  assert.deepEqual(parseCliOptions(['--model-repository=/m', '--cache-config', 'local,size=1048576']).responseCache, { sizeBytes: 1048576 });
  assert.deepEqual(parseCliOptions(['--model-repository=/m', '--cache-config=local,size=4096']).responseCache, { sizeBytes: 4096 });
  assert.deepEqual(parseCliOptions(['--model-repository=/m', '--response-cache-byte-size=2048']).responseCache, { sizeBytes: 2048 },
    'the flag Triton had before --cache-config means the local cache');
  assert.equal(parseCliOptions(['--model-repository=/m', '--response-cache-byte-size=0']).responseCache, undefined, 'its default, 0, means none');
});

test('--cache-config mistakes and caches this build does not have are refused, naming the flag', () => {
  const cases: Array<[string[], RegExp]> = [
    [['--cache-config=redis,host=localhost'], /--cache-config=redis,host=localhost: cache 'redis' is not available; this build has only the local cache \(--cache-config local,size=<bytes>\)/],
    [['--cache-config=local,capacity=10'], /--cache-config=local,capacity=10: the local cache has no setting 'capacity'; its only setting is size=<bytes>/],
    [['--cache-config=local'], /--cache-config=local: expected <cache>,<key>=<value>, e.g. --cache-config local,size=1048576/],
    [['--cache-config=local,size'], /expected <cache>,<key>=<value>/],
    [['--cache-config=local,size=0'], /--cache-config=local,size=0: expected the cache size as a positive whole number of bytes, got '0'/],
    [['--cache-config=local,size=1MB'], /got '1MB'/],
    [['--cache-config=local,size=-5'], /got '-5'/],
    [['--cache-config=local,size=1', '--cache-config=local,size=2'], /--cache-config=local,size=2: the cache size is already set by --cache-config=local,size=1/],
    [['--cache-config=local,size=1', '--response-cache-byte-size=2'], /--response-cache-byte-size and --cache-config both set the response cache/],
    [['--cache-config'], /--cache-config needs a value/],
  ];
  for (const [flags, message] of cases) {
    assert.throws(() => parseCliOptions(['--model-repository=/m', ...flags]), (err: Error) => err instanceof CliError && message.test(err.message), flags.join(' '));
  }
});

test('flags whose value would promise a missing feature are refused with a reason; their off value is accepted', () => {
  const refused: Array<[string, RegExp]> = [
    ['--grpc-use-ssl=true', /--grpc-use-ssl is not supported yet: gRPC over TLS/],
    ['--grpc-use-ssl-mutual', /--grpc-use-ssl-mutual is not supported yet: gRPC over mutual TLS/],
    ['--allow-sagemaker=true', /SageMaker frontend/],
    ['--allow-vertex-ai=1', /Vertex AI frontend/],
  ];
  for (const [flag, message] of refused) {
    assert.throws(() => parseCliOptions(['--model-repository=/m', flag]), (err: Error) => err instanceof CliError && message.test(err.message), flag);
    const off = parseCliOptions(['--model-repository=/m', `${flag.split('=')[0]}=false`]);
    assert.deepEqual(off.acceptedWithoutEffect, [], `${flag}=false changes nothing and is not listed`);
  }
});

/**
 * Every long option of tritonserver's src/command_line_parser.cc (r26.09),
 * with a value of the kind it takes.
 */
const TRITON_FLAGS: ReadonlyArray<readonly [flag: string, value: string | undefined]> = [
  ['help', undefined], ['id', 'triton'], ['exit-timeout-secs', '5'], ['model-store', '/m2'], ['model-repository', '/m'],
  ['exit-on-error', 'false'], ['disable-auto-complete-config', undefined], ['strict-readiness', 'true'],
  ['model-control-mode', 'explicit'], ['repository-poll-secs', '15'], ['load-model', 'add_sub'], ['model-config-name', 'h100'],
  ['model-load-thread-count', '4'], ['model-load-retry-count', '1'], ['model-namespacing', 'false'], ['enable-peer-access', 'true'],
  ['allow-http', 'true'], ['http-address', '127.0.0.1'], ['http-port', '0'], ['reuse-http-port', 'false'],
  ['http-header-forward-pattern', '^x-.*'], ['http-thread-count', '8'], ['http-max-input-size', '1048576'],
  ['http-restricted-api', 'model-repository:admin-key=admin-value'], ['allow-grpc', 'true'], ['grpc-address', '127.0.0.1'],
  ['grpc-port', '0'], ['reuse-grpc-port', 'false'], ['grpc-header-forward-pattern', '^x-.*'], ['grpc-infer-thread-count', '2'],
  ['grpc-infer-allocation-pool-size', '8'], ['grpc-max-response-pool-size', '16'], ['grpc-use-ssl', 'false'],
  ['grpc-use-ssl-mutual', 'false'], ['grpc-server-cert', '/certs/server.crt'], ['grpc-server-key', '/certs/server.key'],
  ['grpc-root-cert', '/certs/ca.crt'], ['grpc-infer-response-compression-level', 'high'], ['grpc-keepalive-time', '7200000'],
  ['grpc-keepalive-timeout', '20000'], ['grpc-keepalive-permit-without-calls', 'false'], ['grpc-http2-max-pings-without-data', '2'],
  ['grpc-http2-min-recv-ping-interval-without-data', '300000'], ['grpc-http2-max-ping-strikes', '2'],
  ['grpc-max-connection-age', '60000'], ['grpc-max-connection-age-grace', '5000'],
  ['grpc-restricted-protocol', 'shared-memory:proto-key=proto-value'], ['log-verbose', '1'], ['log-info', 'true'],
  ['log-warning', 'true'], ['log-error', 'true'], ['log-format', 'ISO8601'], ['log-file', ''], ['allow-sagemaker', 'false'],
  ['sagemaker-port', '8080'], ['sagemaker-safe-port-range', '8081-9000'], ['sagemaker-thread-count', '8'],
  ['allow-vertex-ai', 'false'], ['vertex-ai-port', '8080'], ['vertex-ai-thread-count', '8'], ['vertex-ai-default-model', 'add_sub'],
  ['allow-metrics', 'false'], ['allow-gpu-metrics', 'false'], ['allow-cpu-metrics', 'true'], ['metrics-address', '127.0.0.1'],
  ['metrics-port', '0'], ['metrics-interval-ms', '2000'], ['metrics-config', 'summary_latencies=true'],
  ['trace-config', 'triton,file=/tmp/trace.json'], ['cache-config', 'local,size=1048576'], ['cache-directory', '/opt/tritonserver/caches'],
  ['rate-limit', 'execution_count'], ['rate-limit-resource', 'R1:10:0'], ['pinned-memory-pool-byte-size', '268435456'],
  ['cuda-memory-pool-byte-size', '0:67108864'], ['cuda-virtual-address-size', '0:1073741824'],
  ['min-supported-compute-capability', '6.0'], ['buffer-manager-thread-count', '0'], ['host-policy', 'gpu_0,numa-node=0'],
  ['model-load-gpu-limit', '0:0.8'], ['allow-client-shm', 'false'], ['backend-directory', '/opt/tritonserver/backends'],
  ['backend-config', 'onnxruntime,default-max-batch-size=4'], ['repoagent-directory', '/opt/tritonserver/repoagents'],
  ['strict-model-config', 'false'], ['response-cache-byte-size', undefined], ['trace-file', '/tmp/trace.json'],
  ['trace-level', 'TIMESTAMPS'], ['trace-rate', '1000'], ['trace-count', '-1'], ['trace-log-frequency', '0'],
];

test('every tritonserver flag is known and parses with a value of its kind', () => {
  assert.equal(TRITON_FLAGS.length, 91);
  for (const [flag] of TRITON_FLAGS) assert.ok(CLI_FLAG_NAMES.includes(flag), `--${flag} is known`);
  // The old cache flag excludes --cache-config, so it parses alone.
  const alone = new Set(['response-cache-byte-size']);
  const all = TRITON_FLAGS.filter(([flag]) => !alone.has(flag)).map(([flag, value]) => (value === undefined ? `--${flag}` : `--${flag}=${value}`));
  const options = parseCliOptions(all);
  assert.equal(options.help, true);
  assert.deepEqual(options.configCompletion, { enabled: false, defaultMaxBatchSize: 4 });
  assert.equal(parseCliOptions(['--model-repository=/m', '--model-control-mode=poll', '--repository-poll-secs=3']).repositoryPollSecs, 3);
  // Outside poll mode tritonserver checks the poll interval and then ignores it; a start line that carries it still starts.
  assert.equal(parseCliOptions(['--model-repository=/m', '--repository-poll-secs=5']).modelControlMode, 'none');
  assert.throws(() => parseCliOptions(['--model-repository=/m', '--repository-poll-secs=-1']), /expected a value from 0 to 86400/);
  assert.deepEqual(parseCliOptions(['--model-repository=/m', '--response-cache-byte-size=1024']).responseCache, { sizeBytes: 1024 });
  // The space-separated form tritonserver also takes.
  assert.deepEqual(parseCliOptions(['--model-repository', '/m', '--backend-directory', '/b', '--pinned-memory-pool-byte-size', '0']).acceptedWithoutEffect,
    ['--backend-directory', '--pinned-memory-pool-byte-size']);
});

test('accepted flags are listed once, as given, when they have no effect on this build', () => {
  const options = parseCliOptions([
    '--model-repository=/m', '--backend-directory=/opt/tritonserver/backends', '--pinned-memory-pool-byte-size=268435456',
    '--cuda-memory-pool-byte-size=0:67108864', '--cuda-memory-pool-byte-size=1:67108864', '--cache-directory=/opt/tritonserver/caches',
    '--backend-config=python,shm-default-byte-size=1048576', '--backend-config=onnxruntime,default-max-batch-size=8',
    '--trace-level=TIMESTAMPS', '--grpc-infer-response-compression-level=low', '--trace-rate=10',
  ]);
  assert.deepEqual(options.acceptedWithoutEffect, [
    '--backend-directory', '--pinned-memory-pool-byte-size', '--cuda-memory-pool-byte-size', '--cache-directory',
    '--grpc-infer-response-compression-level', '--backend-config=python,shm-default-byte-size=1048576',
  ]);
  assert.equal(acceptedFlagsLine(options),
    'accepted without effect on this build: --backend-directory, --pinned-memory-pool-byte-size, --cuda-memory-pool-byte-size, '
    + '--cache-directory, --grpc-infer-response-compression-level, --backend-config=python,shm-default-byte-size=1048576');
  assert.equal(acceptedFlagsLine(parseCliOptions(['--model-repository=/m', '--http-port=1'])), undefined, 'no line when nothing is accepted without effect');
  assert.equal(acceptedFlagsLine(parseCliOptions(['--model-repository=/m', '--trace-rate=10'])), undefined, 'the trace flags have their effect');
});

test('auto-complete and default-max-batch-size: tritonserver\'s flags and precedence', () => {
  const config = (...flags: string[]) => parseCliOptions(['--model-repository=/m', ...flags]).configCompletion;
  assert.deepEqual(config(), { enabled: true, defaultMaxBatchSize: 4 });
  assert.equal(config('--disable-auto-complete-config').enabled, false);
  assert.equal(config('--strict-model-config=true').enabled, false);
  assert.equal(config('--strict-model-config').enabled, false);
  assert.equal(config('--strict-model-config=false').enabled, true);
  assert.equal(config('--strict-model-config=false', '--disable-auto-complete-config').enabled, false, '--disable-auto-complete-config wins');
  assert.equal(config('--backend-config=onnxruntime,default-max-batch-size=16').defaultMaxBatchSize, 16);
  assert.equal(config('--backend-config=default-max-batch-size=0').defaultMaxBatchSize, 0, 'the every-backend form, and 0');
  assert.equal(config('--backend-config=default-max-batch-size=2', '--backend-config=onnxruntime,default-max-batch-size=3').defaultMaxBatchSize, 3);
  assert.equal(config('--backend-config=default-max-batch-size=2147483647').defaultMaxBatchSize, 2147483647);
  const other = parseCliOptions(['--model-repository=/m', '--backend-config=tensorrt,default-max-batch-size=9', '--backend-config=onnxruntime,enable-global-threadpool=1']);
  assert.equal(other.configCompletion.defaultMaxBatchSize, 4);
  assert.deepEqual(other.acceptedWithoutEffect, ['--backend-config=tensorrt,default-max-batch-size=9', '--backend-config=onnxruntime,enable-global-threadpool=1']);
});

test('repository flags: --model-config-name, --model-load-retry-count, --model-load-thread-count, --model-namespacing', () => {
  const parse = (...flags: string[]) => parseCliOptions(['--model-repository=/m', ...flags]);
  const defaults = parse();
  assert.deepEqual(
    [defaults.modelConfigName, defaults.modelLoadRetryCount, defaults.modelLoadThreadCount, defaults.modelNamespacing],
    [undefined, 0, 4, false], "Triton's defaults: config.pbtxt, no retry, 4 loads at once, no namespacing",
  );
  const set = parse('--model-config-name=h100', '--model-load-retry-count=100', '--model-load-thread-count=256', '--model-namespacing=true');
  assert.deepEqual([set.modelConfigName, set.modelLoadRetryCount, set.modelLoadThreadCount, set.modelNamespacing], ['h100', 100, 256, true]);
  assert.equal(parse('--model-load-thread-count=1').modelLoadThreadCount, 1);
  assert.deepEqual(set.acceptedWithoutEffect, [], 'all four have their effect');
  for (const [flag, message] of [
    ['--model-config-name=', /--model-config-name=: empty argument/],
    ['--model-config-name=h 100', /should not contain a space character/],
    ['--model-config-name=../h100', /a file name is expected, with no '\/', '\\' or '\.\.'/],
    ['--model-config-name=..', /a file name is expected/],
    ['--model-config-name=a\\b', /a file name is expected/],
    [`--model-config-name=${'x'.repeat(201)}`, /longer than 200 characters/],
    ['--model-load-retry-count=-1', /--model-load-retry-count=-1: expected a value from 0 to 100/],
    ['--model-load-retry-count=101', /expected a value from 0 to 100/],
    ['--model-load-thread-count=0', /--model-load-thread-count=0: expected a value from 1 to 256/],
    ['--model-load-thread-count=-4', /expected a value from 1 to 256/],
    ['--model-load-thread-count=257', /expected a value from 1 to 256/],
    ['--model-namespacing=perhaps', /--model-namespacing=perhaps: expected true or false/],
  ] as const) {
    assert.throws(() => parse(flag), (err: unknown) => err instanceof CliError && message.test(err.message), flag);
  }
  assert.equal(parse(`--model-config-name=${'x'.repeat(200)}`).modelConfigName!.length, 200, 'the longest name taken');
});

test('--backend-config onnxruntime thread counts become session defaults; enable-global-threadpool is accepted without effect', () => {
  const parse = (...flags: string[]) => parseCliOptions(['--model-repository=/m', ...flags]);
  assert.deepEqual(parse().onnxBackendSettings, {});
  const tuned = parse('--backend-config=onnxruntime,intra_op_thread_count=4', '--backend-config=inter_op_thread_count=2',
    '--backend-config=onnxruntime,enable-global-threadpool=1', '--backend-config=onnxruntime,default-max-batch-size=8');
  assert.deepEqual(tuned.onnxBackendSettings, { intraOpThreadCount: 4, interOpThreadCount: 2 }, 'the every-backend form reaches onnxruntime too');
  assert.equal(tuned.configCompletion.defaultMaxBatchSize, 8);
  assert.deepEqual(tuned.acceptedWithoutEffect, ['--backend-config=onnxruntime,enable-global-threadpool=1']);
  assert.deepEqual(parse('--backend-config=python,intra_op_thread_count=4').onnxBackendSettings, {}, "another backend's setting");
  assert.deepEqual(parse('--backend-config=onnxruntime,enable-mem-arena=1').acceptedWithoutEffect, ['--backend-config=onnxruntime,enable-mem-arena=1']);
  for (const [flag, message] of [
    ['--backend-config=onnxruntime,intra_op_thread_count=-1', /--backend-config=onnxruntime,intra_op_thread_count=-1: expected a thread count from 0 to 1024/],
    ['--backend-config=onnxruntime,inter_op_thread_count=1025', /inter_op_thread_count=1025: expected a thread count from 0 to 1024/],
    ['--backend-config=onnxruntime,enable-global-threadpool=2', /enable-global-threadpool=2: expected true or false/],
  ] as const) {
    assert.throws(() => parse(flag), (err: unknown) => err instanceof CliError && message.test(err.message), flag);
  }
});

test('malformed values of tritonserver\'s flags are refused naming the flag; typos get a suggestion', () => {
  const cases: Array<[string, RegExp]> = [
    ['--backend-directroy=/b', /unknown flag --backend-directroy; did you mean --backend-directory\?/],
    ['--pinned-memory-pool-bytesize=1', /did you mean --pinned-memory-pool-byte-size\?/],
    ['--pinned-memory-pool-byte-size=lots', /--pinned-memory-pool-byte-size=lots: expected an integer/],
    ['--model-load-thread-count=2.5', /--model-load-thread-count=2\.5: expected an integer/],
    ['--enable-peer-access=sometimes', /--enable-peer-access=sometimes: expected true or false/],
    ['--strict-model-config=maybe', /--strict-model-config=maybe: expected true or false/],
    ['--min-supported-compute-capability=six', /--min-supported-compute-capability=six: expected a number/],
    ['--cuda-memory-pool-byte-size=67108864', /--cuda-memory-pool-byte-size=67108864: expected <integer>:<integer>/],
    ['--cuda-virtual-address-size=0:big', /expected <integer>:<integer>/],
    ['--model-load-gpu-limit=0:most', /--model-load-gpu-limit=0:most: expected <device_id>:<fraction>/],
    ['--host-policy=gpu_0', /--host-policy=gpu_0: expected <policy name>,<setting>=<value>/],
    ['--sagemaker-safe-port-range=8080', /expected <integer>-<integer>/],
    ['--backend-config=,default-max-batch-size=4', /no backend named/],
    ['--backend-config=onnxruntime,default-max-batch-size', /expected <backend name>,<setting>=<value> or <setting>=<value>/],
    ['--backend-config=onnxruntime,default-max-batch-size=', /expected <backend name>,<setting>=<value>/],
    ['--backend-config=onnxruntime,default-max-batch-size=-1', /--backend-config=onnxruntime,default-max-batch-size=-1: expected default-max-batch-size from 0 to 2147483647/],
    ['--backend-config=default-max-batch-size=2147483648', /expected default-max-batch-size from 0 to 2147483647/],
    ['--grpc-infer-response-compression-level=max', /expected none, low, medium, high/],
    ['--rate-limit=sometimes', /--rate-limit=sometimes: expected execution_count, off/],
    ['--rate-limit-resource=R1', /--rate-limit-resource=R1: expected '<resource_name>:<count>:<device>' or '<resource_name>:<count>'/],
    ['--http-header-forward-pattern=(', /--http-header-forward-pattern=\(: not a regular expression/],
    ['--trace-level=everything', /^--trace-level=everything: invalid value for trace level option: everything$/],
    ['--trace-config=rate', /^--trace-config option format is '<trace mode>,<setting>=<value>'. Got rate$/],
    ['--backend-directory', /--backend-directory needs a value/],
  ];
  for (const [flag, message] of cases) {
    assert.throws(() => parseCliOptions(['--model-repository=/m', flag]), (err: Error) => err instanceof CliError && message.test(err.message), flag);
  }
});

test('rate limiter flags: off by default, the mode in any case, resources per device or for every device', () => {
  const defaults = parseCliOptions(['--model-repository=/m']);
  assert.deepEqual(defaults.rateLimiter, { mode: 'off', resources: [] });
  const on = parseCliOptions([
    '--model-repository=/m', '--rate-limit=EXECUTION_COUNT', '--rate-limit-resource=R1:10', '--rate-limit-resource', 'R2:5:0',
    '--rate-limit-resource=R2:8:1', '--rate-limit-resource=gpu_mem:0:2147483647',
  ]);
  assert.deepEqual(on.rateLimiter, {
    mode: 'execution_count',
    resources: [
      { name: 'R1', count: 10 }, { name: 'R2', count: 5, device: 0 }, { name: 'R2', count: 8, device: 1 }, { name: 'gpu_mem', count: 0, device: 2147483647 },
    ],
  });
  assert.deepEqual(on.acceptedWithoutEffect, []);
  // With the limiter off, tritonserver ignores pool sizes: said once at start.
  assert.deepEqual(parseCliOptions(['--model-repository=/m', '--rate-limit-resource=R1:1']).acceptedWithoutEffect, ['--rate-limit-resource (with --rate-limit=off)']);
  assert.equal(parseCliOptions(['--model-repository=/m', '--rate-limit=Off']).rateLimiter.mode, 'off');
  for (const bad of ['R1', ':3', 'R1:', 'R1:x', 'R1:-1', 'R1:1:', 'R1:1:-1', 'R1:1:0:0', 'R1:2147483648', 'R1:1:2147483648', 'R1:99999999999']) {
    assert.throws(() => parseCliOptions(['--model-repository=/m', '--rate-limit=execution_count', `--rate-limit-resource=${bad}`]),
      (err: Error) => err instanceof CliError && err.message.startsWith(`--rate-limit-resource=${bad}: expected '<resource_name>:<count>:<device>'`), bad);
  }
  assert.throws(() => parseCliOptions(['--model-repository=/m', '--rate-limit=execution_count', '--rate-limit=off']), /--rate-limit is given more than once/);
});

test('metrics flags: tritonserver\'s defaults, and each one read', () => {
  const defaults = parseCliOptions(['--model-repository=/m']);
  assert.equal(defaults.allowMetrics, true);
  assert.equal(defaults.metricsPort, 8002);
  assert.equal(defaults.metricsAddress, '0.0.0.0');
  assert.deepEqual(defaults.metrics, { intervalMs: 2000, cpuMetrics: true });

  const custom = parseCliOptions([
    '--model-repository=/m', '--metrics-port=9102', '--metrics-address=127.0.0.1', '--metrics-interval-ms', '500',
    '--metrics-config=summary_latencies=true', '--metrics-config', 'summary_quantiles=0.5:0.05,0.9:0.01,0.99:0.001',
    '--metrics-config=counter_latencies=false', '--allow-cpu-metrics=false', '--metrics-config=histogram_latencies=true',
  ]);
  assert.equal(custom.metricsPort, 9102);
  assert.equal(custom.metricsAddress, '127.0.0.1');
  assert.deepEqual(custom.metrics, {
    summaryLatencies: true, counterLatencies: false, histogramLatencies: true, intervalMs: 500, cpuMetrics: false,
    summaryQuantiles: [{ quantile: 0.5, error: 0.05 }, { quantile: 0.9, error: 0.01 }, { quantile: 0.99, error: 0.001 }],
  });
  assert.equal(parseCliOptions(['--model-repository=/m', '--allow-metrics=false']).allowMetrics, false);
  assert.equal(parseCliOptions(['--model-repository=/m', '--metrics-port=0']).metricsPort, 0);
  // A later setting of the same key wins, as with any repeated config.
  assert.equal(parseCliOptions(['--model-repository=/m', '--metrics-config=summary_latencies=true', '--metrics-config=summary_latencies=0'])
    .metrics.summaryLatencies, false);
});

test('bad metrics flags get clear errors', () => {
  const cases: Array<[string[], RegExp]> = [
    [['--metrics-port=70000'], /--metrics-port=70000: expected a value from 0 to 65535/],
    [['--metrics-port=x'], /--metrics-port=x: expected an integer/],
    [['--metrics-interval-ms=0'], /--metrics-interval-ms=0: expected a value from 1 to 86400000/],
    [['--allow-metrics=perhaps'], /--allow-metrics=perhaps: expected true or false/],
    [['--metrics-config=summary_latency=true'], /--metrics-config=summary_latency=true: unknown key 'summary_latency'; did you mean 'summary_latencies'\?/],
    [['--metrics-config=gpu_stuff=1'], /unknown key 'gpu_stuff' \(keys: summary_latencies, summary_quantiles, counter_latencies, histogram_latencies, histogram_buckets\)/],
    [['--metrics-config=summary_latencies'], /expected <key>=<value>/],
    [['--metrics-config=summary_latencies=sure'], /summary_latencies=sure: expected true or false/],
    [['--metrics-config=summary_quantiles='], /summary_quantiles is empty/],
    [['--metrics-config=summary_quantiles=0.5'], /'0\.5' is not <quantile>:<error>/],
    [['--metrics-config=summary_quantiles=0.5:x'], /'0\.5:x' is not <quantile>:<error>/],
    [['--metrics-config=summary_quantiles=1.5:0.01'], /quantile 1\.5 in '1\.5:0\.01' is outside \(0, 1\]/],
    [['--metrics-config=summary_quantiles=0:0.01'], /quantile 0 in '0:0\.01' is outside \(0, 1\]/],
    [['--metrics-config=summary_quantiles=0.5:1'], /error 1 in '0\.5:1' is outside \[0, 1\)/],
    [['--metrics-config=summary_quantiles=0.5:0.05,0.5:0.01'], /quantile 0\.5 appears twice/],
    [['--metrics-address=a', '--metrics-address=b'], /--metrics-address is given more than once/],
    [['--metrics-prot=1'], /did you mean --metrics-port\?/],
  ];
  for (const [flags, message] of cases) {
    assert.throws(() => parseCliOptions(['--model-repository=/m', ...flags]), (err: Error) => err instanceof CliError && message.test(err.message), flags.join(' '));
  }
});

test('--metrics-config histogram_buckets: milliseconds, positive, finite, strictly increasing, 1 to 64 of them', () => {
  const buckets = (value: string): readonly number[] | undefined =>
    parseCliOptions(['--model-repository=/m', `--metrics-config=histogram_buckets=${value}`]).metrics.histogramBuckets;
  assert.deepEqual(buckets('1, 2.5 ,10,1e3'), [1, 2.5, 10, 1000]);
  assert.deepEqual(buckets('0.001'), [0.001], 'one bucket is enough');
  const sixtyFour = Array.from({ length: 64 }, (_, i) => i + 1);
  assert.deepEqual(buckets(sixtyFour.join(',')), sixtyFour, '64 at the bound');
  assert.equal(parseCliOptions(['--model-repository=/m']).metrics.histogramBuckets, undefined, 'unset unless given');

  const cases: Array<[string, RegExp]> = [
    [[...sixtyFour, 65].join(','), /^--metrics-config=histogram_buckets=1,2,.*,65: histogram_buckets: 65 bounds given, at most 64$/],
    ['', /^--metrics-config=histogram_buckets=: histogram_buckets is empty: give bucket upper bounds in milliseconds, e\.g\. histogram_buckets=1,5,10,50,100$/],
    ['0', /^--metrics-config=histogram_buckets=0: histogram_buckets: bound 0 is not positive$/],
    ['0,1,2', /histogram_buckets: bound 0 is not positive/],
    ['1,-5', /^--metrics-config=histogram_buckets=1,-5: histogram_buckets: bound -5 is not positive$/],
    ['1,10,5', /^--metrics-config=histogram_buckets=1,10,5: histogram_buckets: 5 follows 10; bounds must strictly increase$/],
    ['1,2,2', /histogram_buckets: 2 follows 2; bounds must strictly increase/],
    ['1,fast,10', /^--metrics-config=histogram_buckets=1,fast,10: histogram_buckets: 'fast' is not a number of milliseconds, e\.g\. histogram_buckets=1,5,10,50,100$/],
    ['1,2,', /histogram_buckets: '' is not a number of milliseconds/],
    ['5ms', /histogram_buckets: '5ms' is not a number of milliseconds/],
    ['Infinity', /histogram_buckets: 'Infinity' is not a number of milliseconds/],
    ['1,1e999', /histogram_buckets: bound Infinity is not a finite number/],
    [`1,${'9'.repeat(100)}x`, /histogram_buckets: '9{40}\.\.\.' is not a number of milliseconds/],
  ];
  for (const [value, message] of cases) {
    assert.throws(() => buckets(value), (err: Error) => err instanceof CliError && message.test(err.message), value);
  }
});

test('bad flags get clear errors', () => {
  const cases: Array<[string[], RegExp]> = [
    [['--model-repositry=/m'], /unknown flag --model-repositry; did you mean --model-repository\?/],
    [[], /--model-repository is required/],
    [['--model-repository=/m', '--http-port=abc'], /--http-port=abc: expected an integer/],
    [['--model-repository=/m', '--http-port=70000'], /expected a value from 0 to 65535/],
    [['--model-repository=/m', '--exit-on-error=maybe'], /expected true or false/],
    [['--model-repository=s3://bucket/models'], /--model-repository=s3:\/\/bucket\/models: cloud storage repositories \(s3:\/\/, gs:\/\/, as:\/\/\) are not supported by this build; copy or mount/],
    [['--model-repository=/m', '--model-store=gs://bucket/models'], /--model-repository=gs:\/\/bucket\/models: cloud storage/],
    [['--model-repository=as://account/container/models'], /not supported by this build/],
    [['--model-repository=/m', '--load-model=a'], /^Use of '--load-model' requires setting '--model-control-mode=explicit' as well\.$/],
    [['--model-repository=/m', '--model-control-mode=explicit', '--load-model=*', '--load-model=a'], /must be the only --load-model/],
    [['--model-repository=/m', '--model-control-mode=sometimes'], /expected none, poll or explicit/],
    [['--model-repository=/m', '--model-control-mode=poll', '--repository-poll-secs=-1'], /expected a value from 0 to 86400/],
    [['--model-repository=/m', '--exit-timeout-secs=soon'], /--exit-timeout-secs=soon: expected an integer/],
    [['--model-repository=/m', '--http-port=1', '--http-port=2'], /given more than once/],
    [['--model-repository=/m', '--grpc-port=-1'], /--grpc-port=-1: expected a value from 0 to 65535/],
    [['--model-repository=/m', '--grpc-max-message-size=0'], /--grpc-max-message-size=0: expected a value from 1 to 2147483647/],
    [['--model-repository=/m', '--grpc-prot=1'], /did you mean --grpc-port\?/],
    [['/m'], /unexpected argument '\/m'/],
  ];
  for (const [flags, message] of cases) {
    assert.throws(() => parseCliOptions(flags), (err: Error) => err instanceof CliError && message.test(err.message), flags.join(' '));
  }
});

const CLI = fileURLToPath(new URL('../../server/cli.ts', import.meta.url));

/** How long one run of the real CLI may take (start-up on a loaded 2-core machine included). */
const CLI_RUN_LIMIT_MS = 60_000;

/**
 * Runs the real CLI until it prints `until` or exits; returns its exit code (null if it was stopped) and output.
 * Fails, showing the output so far, if neither happens within CLI_RUN_LIMIT_MS (and then kills it).
 */
function runCli(args: string[], until?: RegExp): Promise<{ code: number | null; output: string }> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, ['--import', 'tsx', CLI, ...args], { stdio: ['ignore', 'pipe', 'pipe'] });
    let output = '';
    let timedOut = false;
    const timer = setTimeout(() => {
      timedOut = true;
      child.kill('SIGKILL');
    }, CLI_RUN_LIMIT_MS);
    const onData = (chunk: Buffer): void => {
      output += chunk.toString();
      if (until?.test(output)) child.kill('SIGTERM');
    };
    child.stdout.on('data', onData);
    child.stderr.on('data', onData);
    child.on('exit', (code) => {
      clearTimeout(timer);
      if (timedOut) {
        reject(new Error(`timed out after ${CLI_RUN_LIMIT_MS} ms waiting for the CLI ${until ? `to print ${until}` : 'to exit'}; output so far:\n${tail(output)}`));
      } else {
        resolve({ code, output });
      }
    });
  });
}

test('--exit-on-error stops start-up when a model fails, and =false serves the others', async () => {
  const root = await makeRepository({
    good: { config: 'max_batch_size: 8\n', versions: { 1: addSubModel() } },
    broken: { config: 'max_batch_size: 8\ndynamic_batching { preferred_batch_size: [ 16 ] }\n', versions: { 1: addSubModel() } },
  });
  try {
    const strict = await runCli([`--model-repository=${root}`, '--http-port=0']);
    assert.equal(strict.code, 1);
    assert.match(strict.output, /error: creating server: Internal - failed to load all models/);
    assert.match(strict.output, /broken\/config\.pbtxt:2: dynamic_batching\.preferred_batch_size: 16 is outside 1\.\.max_batch_size \(8\)/);

    const lenient = await runCli([`--model-repository=${root}`, '--http-port=0', '--grpc-port=0', '--metrics-port=0', '--exit-on-error=false'],
      /Started Metrics Service/);
    assert.match(lenient.output, /\| good +\| 1 +\| READY/);
    assert.match(lenient.output, /\| broken +\| 1 +\| UNAVAILABLE: /);
    assert.match(lenient.output, /Started HTTPService at 0\.0\.0\.0:\d+/);
    assert.match(lenient.output, /Started GRPCInferenceService at 0\.0\.0\.0:\d+/);
    assert.match(lenient.output, /Started Metrics Service at 0\.0\.0\.0:\d+/);

    const badFlag = await runCli([`--model-repository=${root}`, '--metrics-config=summary_latency=true']);
    assert.equal(badFlag.code, 1);
    assert.match(badFlag.output, /error: --metrics-config=summary_latency=true: unknown key 'summary_latency'/);
  } finally {
    await removeRepository(root);
  }
});

test('restricted API flags: tritonserver\'s <apis>:<key>=<value> groups, per frontend', () => {
  const options = parseCliOptions([
    '--model-repository=/m',
    '--http-restricted-api=model-repository,model-config:Admin-Key=s3cr:et=x',
    '--http-restricted-api', 'inference:infer-key=v',
    '--grpc-restricted-protocol=model-repository,logging:admin-key=a',
    '--grpc-restricted-api=health:probe-key=p',
  ]);
  assert.deepEqual(options.httpRestrictedApis, {
    'model-repository': { header: 'admin-key', value: 's3cr:et=x' },
    'model-config': { header: 'admin-key', value: 's3cr:et=x' },
    'inference': { header: 'infer-key', value: 'v' },
  });
  assert.deepEqual(options.grpcRestrictedApis, {
    'model-repository': { header: 'triton-grpc-protocol-admin-key', value: 'a' },
    'logging': { header: 'triton-grpc-protocol-admin-key', value: 'a' },
    'health': { header: 'probe-key', value: 'p' },
  });
  const none = parseCliOptions(['--model-repository=/m']);
  assert.deepEqual(none.httpRestrictedApis, {});
  assert.deepEqual(none.grpcRestrictedApis, {});
  // Every one of Triton's categories is known.
  const all = 'health,metadata,inference,shared-memory,model-config,model-repository,statistics,trace,logging';
  assert.equal(Object.keys(parseCliOptions(['--model-repository=/m', `--http-restricted-api=${all}:k=v`]).httpRestrictedApis).length, 9);
});

test('bad restricted API flags are refused, naming the flag and the problem', () => {
  const cases: Array<[string[], RegExp]> = [
    [['--http-restricted-api=inference'], /--http-restricted-api option format is '<api>\[,<api>\.\.\.\]:<key>=<value>'\. Got inference$/],
    [['--http-restricted-api=inference:key'], /option format is .* Got inference:key$/],
    [['--http-restricted-api=inference=key:v'], /option format is/],
    [['--http-restricted-api=inference:=v'], /option format is/],
    [['--http-restricted-api=inference:k='], /option format is/],
    [['--http-restricted-api=:k=v'], /option format is/],
    [['--http-restricted-api=inference,,health:k=v'], /option format is/],
    [['--http-restricted-api=model-reposit:k=v'], /--http-restricted-api: unknown restricted api 'model-reposit'; did you mean 'model-repository'\?/],
    [['--http-restricted-api=metrics:k=v'], /unknown restricted api 'metrics' \(one of health, metadata, inference, shared-memory, model-config, model-repository, statistics, trace, logging\)/],
    [['--grpc-restricted-protocol=inferenc:k=v'], /--grpc-restricted-protocol: unknown restricted protocol 'inferenc'; did you mean 'inference'\?/],
    [['--http-restricted-api=model-repository,health:k1=v1', '--http-restricted-api=metadata,health:k2=v2'],
      /--http-restricted-api: restricted api 'health' can not be specified in multiple config groups/],
    [['--http-restricted-api=inference,inference:k=v'], /restricted api 'inference' can not be specified in multiple config groups/],
    [['--grpc-restricted-protocol=health:k1=v1', '--grpc-restricted-api=health:k2=v2'],
      /--grpc-restricted-api: restricted api 'health' can not be specified in multiple config groups/],
    [['--http-restricted-api=inference:bad key=v'], /'bad key' cannot be a header name/],
    [['--grpc-restricted-api=inference:grpc-timeout=v'], /'grpc-timeout' cannot be a gRPC metadata key/],
    [['--grpc-restricted-api=inference:token-bin=v'], /cannot be a gRPC metadata key/],
    [['--grpc-restricted-api=inference:a/b=v'], /cannot be a gRPC metadata key/],
    [['--http-restricted-api'], /--http-restricted-api needs a value/],
  ];
  for (const [flags, message] of cases) {
    assert.throws(() => parseCliOptions(['--model-repository=/m', ...flags]), (err: Error) => err instanceof CliError && message.test(err.message), flags.join(' '));
  }
  // The same category for HTTP and for gRPC is two frontends, not two groups.
  assert.doesNotThrow(() => parseCliOptions(['--model-repository=/m', '--http-restricted-api=health:k=v', '--grpc-restricted-api=health:k=v']));
});

test('log flags: tritonserver\'s names and defaults, plus --log-format=json', () => {
  const defaults = parseCliOptions(['--model-repository=/m']);
  assert.deepEqual(
    [defaults.logVerbose, defaults.logInfo, defaults.logWarning, defaults.logError, defaults.logFile, defaults.logFormat],
    [0, true, true, true, '', 'default'],
  );
  const custom = parseCliOptions([
    '--model-repository=/m', '--log-verbose=2', '--log-info=false', '--log-warning', 'false', '--log-error=0',
    '--log-file=/var/log/switchyard.log', '--log-format=ISO8601',
  ]);
  assert.deepEqual(
    [custom.logVerbose, custom.logInfo, custom.logWarning, custom.logError, custom.logFile, custom.logFormat],
    [2, false, false, false, '/var/log/switchyard.log', 'ISO8601'],
  );
  assert.equal(parseCliOptions(['--model-repository=/m', '--log-format=json']).logFormat, 'json');
  const cases: Array<[string[], RegExp]> = [
    [['--log-format=iso8601'], /--log-format=iso8601: expected default, ISO8601, json/],
    [['--log-info=loud'], /--log-info=loud: expected true or false/],
    [['--log-verbose=-1'], /--log-verbose=-1: expected a value from 0/],
    [['--log-file=a', '--log-file=b'], /--log-file is given more than once/],
  ];
  for (const [flags, message] of cases) {
    assert.throws(() => parseCliOptions(['--model-repository=/m', ...flags]), (err: Error) => err instanceof CliError && message.test(err.message), flags.join(' '));
  }
});

test('the CLI wires --log-file, --log-format and --http-restricted-api through to a running server', async () => {
  const { mkdtemp, readFile, rm } = await import('node:fs/promises');
  const { tmpdir } = await import('node:os');
  const { join } = await import('node:path');
  const root = await makeRepository({ good: { config: 'max_batch_size: 8\n', versions: { 1: addSubModel() } } });
  const dir = await mkdtemp(join(tmpdir(), 'switchyard-cli-log-'));
  const logFile = join(dir, 'server.log');
  const child = spawn(process.execPath, ['--import', 'tsx', CLI, `--model-repository=${root}`, '--http-port=0', '--allow-grpc=false',
    '--allow-metrics=false', `--log-file=${logFile}`, '--log-format=json', '--http-restricted-api=model-config,logging:admin-key=s3cret'],
  { stdio: ['ignore', 'ignore', 'ignore'] });
  try {
    // The file is the only output: read it until the server logs its HTTP port there, as JSON.
    let text = '';
    const port = await pollFor('the server to log its HTTP port to the file, as JSON', CLI_RUN_LIMIT_MS, async () => {
      text = await readFile(logFile, 'utf8').catch(() => '');
      const line = text.split('\n').filter((l) => l.startsWith('{')).map((l) => JSON.parse(l) as { msg: string })
        .find((l) => l.msg.startsWith('Started HTTPService at '));
      return line && Number(/:(\d+)$/.exec(line.msg)![1]);
    }, () => text, 50);
    const url = `http://127.0.0.1:${port}`;
    assert.equal((await fetch(`${url}/v2/models/good/config`)).status, 403);
    assert.equal((await fetch(`${url}/v2/models/good/config`, { headers: { 'admin-key': 's3cret' } })).status, 200);
    assert.equal((await fetch(`${url}/v2/models/good`)).status, 200, 'metadata is not restricted');
    const settings = await (await fetch(`${url}/v2/logging`, { headers: { 'admin-key': 's3cret' } })).json();
    assert.deepEqual(settings, { log_file: logFile, log_info: true, log_warning: true, log_error: true, log_verbose_level: 0, log_format: 'json' });
  } finally {
    child.kill('SIGKILL');
    await removeRepository(root);
    await rm(dir, { recursive: true, force: true });
  }
});

test('connection limits: HTTP timeouts and connection cap, gRPC idle, streams and age, with their defaults and bounds', () => {
  const defaults = parseCliOptions(['--model-repository=/m']);
  assert.deepEqual(defaults.httpConnectionLimits, { headerTimeoutMs: 60_000, requestTimeoutMs: 300_000, keepAliveTimeoutMs: 75_000, maxConnections: 4096 });
  assert.deepEqual(defaults.grpcConnectionLimits, { maxConnectionIdleMs: 300_000, maxConcurrentStreams: 1024, keepaliveTimeMs: 7_200_000, keepaliveTimeoutMs: 20_000 });
  const custom = parseCliOptions([
    '--model-repository=/m', '--http-header-timeout-secs=5', '--http-request-timeout-secs=30', '--http-keepalive-timeout-secs=2',
    '--http-max-connections=100', '--grpc-max-connection-idle=1000', '--grpc-max-concurrent-streams=8',
    '--grpc-max-connection-age=60000', '--grpc-max-connection-age-grace=0',
  ]);
  assert.deepEqual(custom.httpConnectionLimits, { headerTimeoutMs: 5000, requestTimeoutMs: 30_000, keepAliveTimeoutMs: 2000, maxConnections: 100 });
  assert.deepEqual(custom.grpcConnectionLimits, {
    maxConnectionIdleMs: 1000, maxConcurrentStreams: 8, maxConnectionAgeMs: 60_000, maxConnectionAgeGraceMs: 0, keepaliveTimeMs: 7_200_000, keepaliveTimeoutMs: 20_000,
  });
  for (const [flag, bound] of [
    ['--http-header-timeout-secs=0', /from 1 to 86400/], ['--http-request-timeout-secs=86401', /from 1 to 86400/],
    ['--http-keepalive-timeout-secs=0', /from 1 to 86400/], ['--http-max-connections=0', /from 1 to 1000000/],
    ['--grpc-max-connection-idle=0', /from 1 to 2147483647/], ['--grpc-max-concurrent-streams=0', /from 1 to 2147483647/],
    ['--grpc-max-connection-age=0', /from 1 to 2147483647/], ['--http-max-connections=many', /expected an integer/],
  ] as const) {
    assert.throws(() => parseCliOptions(['--model-repository=/m', flag]), (err: unknown) => err instanceof CliError && bound.test(err.message), flag);
  }
});

test('--stream-buffer-responses and --stream-buffer-bytes bound a decoupled stream\'s unread responses', () => {
  assert.deepEqual(parseCliOptions(['--model-repository=/m']).streamBuffer, { maxResponses: 16, maxBytes: 16 * 1024 * 1024 });
  assert.deepEqual(parseCliOptions(['--model-repository=/m', '--stream-buffer-responses=4', '--stream-buffer-bytes=65536']).streamBuffer,
    { maxResponses: 4, maxBytes: 65536 });
  assert.throws(() => parseCliOptions(['--model-repository=/m', '--stream-buffer-responses=0']), /--stream-buffer-responses=0: expected a value from 1/);
  assert.throws(() => parseCliOptions(['--model-repository=/m', '--stream-buffer-bytes=0']), /--stream-buffer-bytes=0: expected a value from 1/);
});

test('JSON codec pool: processes, queue, heap and size threshold, with their defaults and bounds', () => {
  const defaults = parseCliOptions(['--model-repository=/m']);
  assert.deepEqual(defaults.httpJsonCodec, { processes: 1, queue: 8, heapMb: 1024, minBytes: 1024 * 1024 });
  const custom = parseCliOptions([
    '--model-repository=/m', '--http-json-codec-processes=2', '--http-json-codec-queue=0',
    '--http-json-codec-heap-mb=256', '--http-json-codec-min-bytes=0',
  ]);
  assert.deepEqual(custom.httpJsonCodec, { processes: 2, queue: 0, heapMb: 256, minBytes: 0 });
  for (const [flag, bound] of [
    ['--http-json-codec-processes=0', /from 1 to 64/], ['--http-json-codec-processes=65', /from 1 to 64/],
    ['--http-json-codec-queue=-1', /from 0 to 1000000/], ['--http-json-codec-heap-mb=63', /from 64 to 1048576/],
    ['--http-json-codec-min-bytes=-1', /from 0 to/], ['--http-json-codec-queue=many', /expected an integer/],
  ] as const) {
    assert.throws(() => parseCliOptions(['--model-repository=/m', flag]), (err: unknown) => err instanceof CliError && bound.test(err.message), flag);
  }
});

test('a representative tritonserver start line starts the real CLI, says once what it accepted without effect, and serves an infer', async () => {
  const root = await makeRepository({ add_sub: { config: addSubConfig('add_sub'), versions: { 1: addSubModel() } } });
  const child = spawn(process.execPath, ['--no-node-snapshot', '--import', 'tsx', CLI,
    `--model-repository=${root}`, '--backend-directory=/opt/tritonserver/backends', '--backend-config=onnxruntime,default-max-batch-size=4',
    '--strict-model-config=false', '--log-verbose=0', '--pinned-memory-pool-byte-size=268435456', '--cuda-memory-pool-byte-size=0:67108864',
    '--model-control-mode=explicit', '--load-model=add_sub', '--http-port=0', '--grpc-port=0', '--metrics-port=0', '--allow-metrics=false',
    '--http-address=127.0.0.1', '--grpc-address=127.0.0.1', '--repository-poll-secs=30', '--model-load-thread-count=2',
    '--rate-limit=execution_count', '--http-header-forward-pattern=^x-', '--grpc-keepalive-time=7200000',
    '--grpc-infer-response-compression-level=none', '--allow-client-shm=true', '--exit-timeout-secs=30', '--exit-on-error=true',
    '--grpc-use-ssl=false', '--cache-config=local,size=1048576', '--http-thread-count=8', '--trace-config=rate=1000',
    '--metrics-config=summary_latencies=true',
  ], { stdio: ['ignore', 'pipe', 'pipe'] });
  const exited = once(child, 'exit');
  let output = '';
  try {
    // gRPC starts after HTTP: once it is up, both ports are in the output.
    await new Promise<void>((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`no gRPC listener after 60 s:\n${output}`)), 60_000);
      const onData = (chunk: Buffer): void => {
        output += chunk.toString();
        if (/Started GRPCInferenceService/.test(output)) {
          clearTimeout(timer);
          resolve();
        }
      };
      child.stdout!.on('data', onData);
      child.stderr!.on('data', onData);
      void exited.then(([code]) => {
        clearTimeout(timer);
        reject(new Error(`the CLI exited (${code}) before listening:\n${output}`));
      });
    });
    const lines = output.split('\n').filter((l) => l.includes('accepted without effect on this build'));
    assert.equal(lines.length, 1, output);
    assert.match(lines[0]!, /accepted without effect on this build: --backend-directory, --pinned-memory-pool-byte-size, --cuda-memory-pool-byte-size, --http-thread-count$/);
    assert.match(output, /\| add_sub +\| 1 +\| READY/);
    const port = /Started HTTPService at [^\s:]+:(\d+)/.exec(output)![1];
    const data = Array.from({ length: 16 }, (_, i) => i);
    const res = await fetch(`http://127.0.0.1:${port}/v2/models/add_sub/infer`, {
      method: 'POST',
      body: JSON.stringify({ inputs: ['INPUT0', 'INPUT1'].map((name) => ({ name, datatype: 'INT32', shape: [1, 16], data })) }),
    });
    assert.equal(res.status, 200);
    const body = await res.json() as { outputs: Array<{ name: string; data: number[] }> };
    assert.deepEqual(body.outputs.find((o) => o.name === 'OUTPUT0')!.data, data.map((x) => x * 2));
    // --allow-client-shm=true reached the server: the shared memory routes answer instead of refusing.
    const regions = await fetch(`http://127.0.0.1:${port}/v2/systemsharedmemory/status`);
    assert.equal(regions.status, 200);
    assert.deepEqual(await regions.json(), []);
    const unregister = await fetch(`http://127.0.0.1:${port}/v2/systemsharedmemory/unregister`, { method: 'POST' });
    assert.equal(unregister.status, 200, 'registration is allowed');
  } finally {
    if (child.exitCode === null) child.kill('SIGKILL');
    await exited.catch(() => {});
    await removeRepository(root);
  }
});

test('--help prints the flags and exits 0 without a repository', async () => {
  const { code, output } = await runCli(['--help']);
  assert.equal(code, 0);
  assert.match(output, /usage: switchyard/);
  for (const flag of ['--backend-directory', '--pinned-memory-pool-byte-size', '--disable-auto-complete-config']) assert.ok(output.includes(flag), flag);
});

test('--allow-client-shm is off unless set, as in tritonserver since 2.69; --max-shm-regions bounds the regions registered', () => {
  assert.deepEqual(parseCliOptions(['--model-repository=/m']).sharedMemory, { allowClient: false, maxRegions: 256 });
  for (const on of ['--allow-client-shm=true', '--allow-client-shm', '--allow-client-shm=1']) {
    const options = parseCliOptions(['--model-repository=/m', on]);
    assert.equal(options.sharedMemory.allowClient, true, on);
    assert.deepEqual(options.acceptedWithoutEffect, [], `${on} is implemented, not listed as accepted`);
  }
  assert.equal(parseCliOptions(['--model-repository=/m', '--allow-client-shm=false']).sharedMemory.allowClient, false);
  assert.equal(parseCliOptions(['--model-repository=/m', '--max-shm-regions=1']).sharedMemory.maxRegions, 1);
  assert.equal(parseCliOptions(['--model-repository=/m', '--max-shm-regions=65536']).sharedMemory.maxRegions, 65_536);
  assert.throws(() => parseCliOptions(['--model-repository=/m', '--max-shm-regions=0']), /--max-shm-regions=0: expected a value from 1 to 65536/);
  assert.throws(() => parseCliOptions(['--model-repository=/m', '--max-shm-regions=65537']), /--max-shm-regions=65537: expected a value from 1 to 65536/);
  assert.throws(() => parseCliOptions(['--model-repository=/m', '--allow-client-shm=maybe']), CliError);
});

test('the repository flags reach a real server: a named config and two repositories holding one name', async () => {
  const repoA = await makeRepository({ add_sub: { config: addSubConfig('add_sub'), versions: { 1: addSubModel() } } });
  const repoB = await makeRepository({ add_sub: { config: addSubConfig('add_sub'), versions: { 1: addSubModel() } } });
  await mkdir(join(repoA, 'add_sub', 'configs'));
  await writeFile(join(repoA, 'add_sub', 'configs', 'small.pbtxt'), addSubConfig('add_sub').replace(/max_batch_size: \d+/, 'max_batch_size: 2'));
  const running = await startServer(parseCliOptions([
    `--model-repository=${repoA}`, `--model-repository=${repoB}`, '--model-config-name=small', '--model-namespacing=true',
    '--model-load-thread-count=1', '--model-load-retry-count=1', '--http-port=0', '--http-address=127.0.0.1', '--allow-grpc=false',
    '--allow-metrics=false', '--log-info=false',
  ]));
  try {
    const index = running.engine.repositoryIndex().filter((e) => e.name === 'add_sub');
    assert.deepEqual(index.map((e) => e.state), ['READY', 'READY']);
    const configs = running.engine.readyVersions().map((v) => v.config!.maxBatchSize).sort();
    assert.equal(configs[0], 2, "repository A's copy read configs/small.pbtxt");
    assert.notEqual(configs[1], 2, "repository B's copy has no configs/ folder and read config.pbtxt");
    const res = await fetch(`http://127.0.0.1:${running.httpPort}/v2/models/add_sub`);
    assert.equal(res.status, 400);
    assert.match(((await res.json()) as { error: string }).error, /There are 2 identifiers of model 'add_sub' in global map/);
  } finally {
    await running.close();
    await removeRepository(repoA);
    await removeRepository(repoB);
  }
});

test('header forward patterns: Triton\'s regular expression rules, refused at start when they do not compile', () => {
  const defaults = parseCliOptions(['--model-repository=/m']);
  assert.deepEqual([defaults.httpHeaderForwardPattern, defaults.grpcHeaderForwardPattern], [undefined, undefined]);
  const given = parseCliOptions(['--model-repository=/m', '--http-header-forward-pattern=(?-i)^X-', '--grpc-header-forward-pattern=']);
  assert.deepEqual([given.httpHeaderForwardPattern, given.grpcHeaderForwardPattern], ['(?-i)^X-', '']);
  assert.deepEqual(given.acceptedWithoutEffect, [], 'both work: neither is listed');
  for (const [flag, reason] of [
    ['--http-header-forward-pattern=(', /--http-header-forward-pattern=\(: not a regular expression: .*\(JavaScript syntax; a leading \(\?-i\) makes it case-sensitive\)/],
    ['--grpc-header-forward-pattern=(?s)x', /--grpc-header-forward-pattern=\(\?s\)x: not a regular expression: .*Invalid group/],
  ] as const) {
    assert.throws(() => parseCliOptions(['--model-repository=/m', flag]), (err: unknown) => err instanceof CliError && reason.test(err.message), flag);
  }
});

test('gRPC keepalive: time and timeout reach grpc-js with Triton\'s defaults; the ping policy flags are listed as without effect', () => {
  const custom = parseCliOptions(['--model-repository=/m', '--grpc-keepalive-time=10000', '--grpc-keepalive-timeout=500']);
  assert.deepEqual([custom.grpcConnectionLimits.keepaliveTimeMs, custom.grpcConnectionLimits.keepaliveTimeoutMs], [10_000, 500]);
  assert.deepEqual(custom.acceptedWithoutEffect, []);
  const policy = parseCliOptions([
    '--model-repository=/m', '--grpc-keepalive-permit-without-calls=true', '--grpc-http2-max-pings-without-data=0',
    '--grpc-http2-min-recv-ping-interval-without-data=300000', '--grpc-http2-max-ping-strikes=2',
  ]);
  assert.deepEqual(policy.acceptedWithoutEffect, [
    '--grpc-keepalive-permit-without-calls', '--grpc-http2-max-pings-without-data', '--grpc-http2-min-recv-ping-interval-without-data', '--grpc-http2-max-ping-strikes',
  ]);
  for (const [flag, reason] of [
    ['--grpc-keepalive-time=0', /from 1 to 2147483647/], ['--grpc-keepalive-timeout=2147483648', /from 1 to 2147483647/],
    ['--grpc-http2-max-ping-strikes=-1', /expected 0 or more/], ['--grpc-http2-max-pings-without-data=x', /expected an integer/],
    ['--grpc-keepalive-permit-without-calls=maybe', /expected true or false/],
  ] as const) {
    assert.throws(() => parseCliOptions(['--model-repository=/m', flag]), (err: unknown) => err instanceof CliError && reason.test(err.message), flag);
  }
});

test('response compression level and port reuse: the value this build does is silent, the others are listed as without effect', () => {
  for (const [flags, listed] of [
    [['--grpc-infer-response-compression-level=none'], []],
    [['--grpc-infer-response-compression-level=NONE'], []],
    [['--grpc-infer-response-compression-level=High'], ['--grpc-infer-response-compression-level']],
    [['--reuse-http-port=false', '--reuse-grpc-port=0'], []],
    [['--reuse-http-port', '--reuse-grpc-port=true'], ['--reuse-http-port', '--reuse-grpc-port']],
  ] as const) {
    const options = parseCliOptions(['--model-repository=/m', ...flags]);
    assert.deepEqual(options.acceptedWithoutEffect, listed, flags.join(' '));
  }
  assert.throws(() => parseCliOptions(['--model-repository=/m', '--grpc-infer-response-compression-level=max']),
    (err: unknown) => err instanceof CliError && /expected none, low, medium, high/.test(err.message));
});

test('trace flags reach the options: --trace-config in both forms, the deprecated flags with their warnings, defaults without any', () => {
  const none = parseCliOptions(['--model-repository=/m']);
  assert.deepEqual(none.trace, { mode: 'triton', values: { level: [], rate: 1000, count: -1, logFrequency: 0, file: '' }, modeSettings: [] });
  assert.deepEqual(none.warnings, []);
  const given = parseCliOptions([
    '--model-repository=/m', '--trace-config', 'triton,file=/tmp/trace.json', '--trace-config=level=TIMESTAMPS', '--trace-config', 'rate=1',
    '--trace-count', '5',
  ]);
  assert.deepEqual(given.trace.values, { level: ['TIMESTAMPS'], rate: 1, count: 5, logFrequency: 0, file: '/tmp/trace.json' });
  assert.deepEqual(given.warnings, [
    "Warning: '--trace-count' has been deprecated and will be removed in future releases. Please use '--trace-config count=<count value> instead.",
  ]);
  assert.deepEqual(given.acceptedWithoutEffect, [], 'the trace flags have their effect: not listed at start');
  for (const [flag, message] of [
    ['--trace-config=rate=abc', '--trace-config=rate=abc: Invalid option value. Got abc'],
    ['--trace-config=level=loud', '--trace-config=level=loud: invalid value for trace level option: loud'],
    ['--trace-config=mode=jaeger', '--trace-config=mode=jaeger: invalid value for trace mode option: jaeger. Available options are "triton" and "opentelemetry"'],
    ['--trace-rate=often', '--trace-rate=often: Invalid option value. Got often'],
  ] as const) {
    assert.throws(() => parseCliOptions(['--model-repository=/m', flag]), (err: unknown) => err instanceof CliError && err.message === message, flag);
  }
  assert.throws(() => parseCliOptions(['--model-repository=/m', '--trace-rate=1', '--trace-rate=2']), /--trace-rate is given more than once/);
});

test('a Triton trace start line starts the engine with those settings; a level with no file still starts', async () => {
  const root = await makeRepository({});
  const common = [`--model-repository=${root}`, '--http-port=0', '--http-address=127.0.0.1', '--allow-grpc=false', '--allow-metrics=false', '--log-info=false'];
  const file = join(root, 'trace.json');
  const running = await startServer(parseCliOptions([
    ...common, '--trace-config', `triton,file=${file}`, '--trace-config', 'level=TIMESTAMPS', '--trace-config', 'rate=1',
  ]));
  try {
    assert.deepEqual(running.engine.tracer.settings.view(),
      { trace_level: ['TIMESTAMPS'], trace_rate: '1', trace_count: '-1', log_frequency: '0', trace_file: file, trace_mode: 'triton' });
  } finally {
    await running.close();
  }
  const noFile = await startServer(parseCliOptions([...common, '--trace-config=level=TIMESTAMPS']));
  try {
    assert.deepEqual(noFile.engine.tracer.settings.view(),
      { trace_level: ['TIMESTAMPS'], trace_rate: '1000', trace_count: '-1', log_frequency: '0', trace_file: '', trace_mode: 'triton' });
    assert.equal(noFile.engine.tracer.sample('any'), undefined, 'nothing is traced without a file');
  } finally {
    await noFile.close();
    await removeRepository(root);
  }
});

test('the real CLI: trace warnings once each at start in opentelemetry mode, and a bad trace value exits 1 with its message', async () => {
  const root = await makeRepository({});
  try {
    const started = await runCli([
      `--model-repository=${root}`, '--http-port=0', '--http-address=127.0.0.1', '--allow-grpc=false', '--allow-metrics=false',
      '--trace-config', 'mode=opentelemetry', '--trace-config', 'opentelemetry,url=localhost:4318/v1/traces', '--trace-file=/tmp/ignored.json',
      '--trace-rate=5', '--trace-config=rate=2',
    ], /Started HTTPService/);
    for (const text of [
      "Warning: '--trace-file' has been deprecated", "Warning: '--trace-rate' has been deprecated",
      "Warning: Overriding deprecated '--trace-rate' in favor of provided rate value in --trace-config!",
      "Warning: '--trace-file' is deprecated and will be ignored with opentelemetry tracing mode.",
    ]) {
      assert.equal(started.output.split(text).length - 1, 1, `${text} once in:\n${tail(started.output)}`);
    }
    assert.doesNotMatch(started.output, /not implemented yet/);
    const bad = await runCli([`--model-repository=${root}`, '--trace-config', 'mode=opentelemetry', '--trace-config=opentelemetry,bsp_max_queue_size=bad_value']);
    assert.equal(bad.code, 1);
    assert.match(bad.output, /^error: --trace-config=opentelemetry,bsp_max_queue_size=bad_value: Invalid option value\. Got bad_value$/m);
  } finally {
    await removeRepository(root);
  }
});
