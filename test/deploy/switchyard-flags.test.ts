/**
 * The flags that deploy/ passes to switchyard are flags its parser
 * accepts, with the values the manifests around them assume: the
 * Deployment's args, the KServe runtime's args and the Dockerfile's
 * default CMD all go through parseCliOptions.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { parseCliOptions, type CliOptions } from '../../server/cli-options.ts';
import { manifestOf, readDeployFile } from './deploy-files.ts';
import { lastOf, parseDockerfile } from './dockerfile.ts';

interface ContainerSpec { name: string; args?: string[]; ports?: { name?: string; containerPort: number }[] }

function firstContainer(kind: string): ContainerSpec {
  const object = manifestOf(kind).object as { spec: { template?: { spec: { containers: ContainerSpec[] } }; containers?: ContainerSpec[] } };
  const container = (object.spec.template?.spec.containers ?? object.spec.containers ?? [])[0];
  assert.ok(container?.args && container.args.length > 0, `${kind}: the first container has args`);
  return container;
}

function parse(args: readonly string[]): CliOptions {
  try {
    return parseCliOptions(args);
  } catch (err) {
    assert.fail(`switchyard refuses ${JSON.stringify(args)}: ${(err as Error).message}`);
  }
}

test('the Deployment\'s args parse, matching its ports, volume and grace period', () => {
  const deployment = manifestOf('Deployment').object as { spec: { template: { spec: { terminationGracePeriodSeconds: number } } } };
  const container = firstContainer('Deployment');
  const options = parse(container.args!);
  const port = (name: string): number | undefined => container.ports?.find((p) => p.name === name)?.containerPort;
  assert.deepEqual(options.modelRepositories, ['/models']);
  assert.equal(options.modelControlMode, 'none');
  assert.equal(options.httpPort, port('http'));
  assert.equal(options.grpcPort, port('grpc'));
  assert.equal(options.allowMetrics, true);
  assert.equal(options.metricsPort, port('metrics'));
  assert.equal(options.metrics.summaryLatencies, true, 'the dashboard\'s p50/p99 panel reads the latency summaries');
  assert.ok(options.exitTimeoutSecs < deployment.spec.template.spec.terminationGracePeriodSeconds);
  assert.equal(options.strictReadiness, true);
});

test('the KServe ServingRuntime\'s args parse: /mnt/models, HTTP 8080 and gRPC 9000 as KServe routes', () => {
  const options = parse(firstContainer('ServingRuntime').args!);
  assert.deepEqual(options.modelRepositories, ['/mnt/models']);
  assert.equal(options.httpPort, 8080);
  assert.equal(options.grpcPort, 9000);
  assert.equal(options.allowHttp, true);
  assert.equal(options.allowGrpc, true);
  assert.ok(options.exitTimeoutSecs < 30, 'drains within the default 30 s grace period');
});

test('the Dockerfile\'s default CMD parses and serves /models on 8000 and 8001', () => {
  const stages = parseDockerfile(readDeployFile('Dockerfile')).stages;
  const cmd = lastOf(stages.at(-1)!, 'CMD');
  assert.ok(cmd?.execForm, 'CMD in exec form');
  const options = parse(cmd.words);
  assert.deepEqual(options.modelRepositories, ['/models']);
  assert.equal(options.httpPort, 8000);
  assert.equal(options.grpcPort, 8001);
  assert.equal(options.metricsPort, 8002);
});

test('the check bites: a misspelt or ill-typed flag is refused', () => {
  assert.throws(() => parseCliOptions(['--model-repository=/models', '--metrics-prot=8002']), /unknown flag --metrics-prot/);
  assert.throws(() => parseCliOptions(['--model-repository=/models', '--http-port=http']), /expected an integer/);
});
