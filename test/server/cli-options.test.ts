import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { test } from 'node:test';
import { addSubModel } from '../../generator/models.ts';
import { CliError, parseCliOptions } from '../../server/cli-options.ts';
import { makeRepository, removeRepository } from '../helpers/fixture-repository.ts';

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

  const custom = parseCliOptions([
    '--model-repository', '/a', '--model-repository=/b', '--http-port=9000', '--exit-on-error=false',
    '--strict-readiness', 'false', '--log-verbose=1', '--model-control-mode=explicit', '--load-model=m1', '--load-model=m2',
    '--http-max-input-size=1024', '--allow-grpc=false', '--allow-metrics=false',
    '--grpc-port=9001', '--grpc-address=127.0.0.1', '--grpc-max-message-size=4096',
  ]);
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

test('flags this build cannot honour yet are refused with a reason, never ignored', () => {
  const refused: Array<[string[], RegExp]> = [
    [['--metrics-port=8002'], /--metrics-port is not supported yet: the Prometheus metrics endpoint/],
    [['--disable-auto-complete-config'], /auto-complete/],
  ];
  for (const [flags, message] of refused) {
    assert.throws(() => parseCliOptions(['--model-repository=/m', ...flags]), (err: Error) => err instanceof CliError && message.test(err.message));
  }
});

test('bad flags get clear errors', () => {
  const cases: Array<[string[], RegExp]> = [
    [['--model-repositry=/m'], /unknown flag --model-repositry; did you mean --model-repository\?/],
    [[], /--model-repository is required/],
    [['--model-repository=/m', '--http-port=abc'], /--http-port=abc: expected an integer/],
    [['--model-repository=/m', '--http-port=70000'], /expected a value from 0 to 65535/],
    [['--model-repository=/m', '--exit-on-error=maybe'], /expected true or false/],
    [['--model-repository=/m', '--load-model=a'], /--load-model only applies with --model-control-mode=explicit/],
    [['--model-repository=/m', '--model-control-mode=explicit', '--load-model=*', '--load-model=a'], /must be the only --load-model/],
    [['--model-repository=/m', '--model-control-mode=sometimes'], /expected none, poll or explicit/],
    [['--model-repository=/m', '--repository-poll-secs=5'], /--repository-poll-secs only applies with --model-control-mode=poll/],
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

/** Runs the real CLI until it prints `until` or exits; returns its exit code (null if it was stopped) and output. */
function runCli(args: string[], until?: RegExp): Promise<{ code: number | null; output: string }> {
  return new Promise((resolve) => {
    const child = spawn(process.execPath, ['--import', 'tsx', CLI, ...args], { stdio: ['ignore', 'pipe', 'pipe'] });
    let output = '';
    const onData = (chunk: Buffer): void => {
      output += chunk.toString();
      if (until?.test(output)) child.kill('SIGTERM');
    };
    child.stdout.on('data', onData);
    child.stderr.on('data', onData);
    child.on('exit', (code) => resolve({ code, output }));
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

    const lenient = await runCli([`--model-repository=${root}`, '--http-port=0', '--grpc-port=0', '--exit-on-error=false'], /Started GRPCInferenceService/);
    assert.match(lenient.output, /\| good +\| 1 +\| READY/);
    assert.match(lenient.output, /\| broken +\| 1 +\| UNAVAILABLE: /);
    assert.match(lenient.output, /Started HTTPService at 0\.0\.0\.0:\d+/);
    assert.match(lenient.output, /Started GRPCInferenceService at 0\.0\.0\.0:\d+/);

    const badFlag = await runCli([`--model-repository=${root}`, '--metrics-port=8002']);
    assert.equal(badFlag.code, 1);
    assert.match(badFlag.output, /error: --metrics-port is not supported yet/);
  } finally {
    await removeRepository(root);
  }
});
