/**
 * The repository's loading flags: --model-config-name (configs/<name>.pbtxt
 * before config.pbtxt), --model-load-retry-count and
 * --model-load-thread-count, through the real ONNX backend wrapped to fail
 * or to hold its loads.
 */
import assert from 'node:assert/strict';
import { mkdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { test } from 'node:test';
import type { Backend, BackendModel, ModelLoadContext } from '../../../engine/backend.ts';
import { OnnxBackend } from '../../../backends/onnxruntime/onnx-backend.ts';
import { BackendRegistry } from '../../../engine/backend-registry.ts';
import { silentLogger, type Logger } from '../../../engine/logger.ts';
import { LoadSlots } from '../../../engine/repository/load-slots.ts';
import { ModelRepository } from '../../../engine/repository/model-repository.ts';
import { addSubModel } from '../../../generator/models.ts';
import { ADD_SUB_IO } from '../../helpers/fixture-configs.ts';
import { makeRepository, removeRepository, startEngine } from '../../helpers/fixture-repository.ts';

const addSub = addSubModel('INT32', 16);
const config = (maxBatchSize: number): string => `platform: "onnxruntime_onnx"\nmax_batch_size: ${maxBatchSize}\n${ADD_SUB_IO}`;

async function writeNamedConfig(root: string, model: string, file: string, text: string): Promise<void> {
  await mkdir(join(root, model, 'configs'), { recursive: true });
  await writeFile(join(root, model, 'configs', file), text);
}

/** Waits for `ready()` to hold, checking after each event-loop turn, failing after `ms`. */
async function until(ready: () => boolean, what: string, ms = 20_000): Promise<void> {
  const deadline = Date.now() + ms;
  while (!ready()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((resolve) => setImmediate(resolve));
  }
}

test('--model-config-name: configs/<name>.pbtxt wins where it exists, config.pbtxt elsewhere, and errors name the file', async () => {
  const root = await makeRepository({
    tuned: { config: config(8), versions: { 1: addSub } },
    plain: { config: config(4), versions: { 1: addSub } },
    tuned_yaml: { config: config(8), versions: { 1: addSub } },
    broken: { config: config(8), versions: { 1: addSub } },
    only_named: { versions: { 1: addSub } },
    two_named: { config: config(8), versions: { 1: addSub } },
  });
  await writeNamedConfig(root, 'tuned', 'h100.pbtxt', config(2));
  await writeNamedConfig(root, 'tuned', 'a100.pbtxt', config(3));
  await writeNamedConfig(root, 'tuned_yaml', 'h100.yaml', 'max_batch_size: 5\n');
  await writeNamedConfig(root, 'broken', 'h100.pbtxt', 'max_batch_size: "many"\n');
  await writeNamedConfig(root, 'only_named', 'h100.pbtxt', config(6));
  await writeNamedConfig(root, 'two_named', 'h100.pbtxt', config(2));
  await writeNamedConfig(root, 'two_named', 'h100.json', '{"max_batch_size": 2}');
  const named = await startEngine(root, { modelConfigName: 'h100' });
  const usual = await startEngine(root);
  try {
    assert.equal(named.modelConfig('tuned').max_batch_size, 2);
    assert.equal(named.modelConfig('plain').max_batch_size, 4, 'no configs/h100.pbtxt: config.pbtxt');
    assert.equal(named.modelConfig('tuned_yaml').max_batch_size, 5, 'a named config may be YAML, as config.yaml may');
    assert.equal(named.modelConfig('only_named').max_batch_size, 6, 'a named config with no config.pbtxt beside it');
    const reason = (model: string): string => named.repositoryIndex().find((e) => e.name === model)!.reason;
    assert.match(reason('broken'), new RegExp(`${join(root, 'broken', 'configs', 'h100.pbtxt').replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}`));
    assert.match(reason('two_named'), /has h100\.pbtxt and h100\.json in configs\/ for --model-config-name=h100; keep one/);
    assert.equal(usual.modelConfig('tuned').max_batch_size, 8, 'without the flag configs/ is not read');
    assert.equal(usual.modelConfig('broken').max_batch_size, 8);
  } finally {
    await named.close();
    await usual.close();
    await removeRepository(root);
  }
});

test('--model-config-name: a named config that links out of the model folder is refused, naming it', async () => {
  const root = await makeRepository({ linked: { config: config(8), versions: { 1: addSub } } });
  const { symlink } = await import('node:fs/promises');
  await writeFile(join(root, 'outside.pbtxt'), config(2));
  await mkdir(join(root, 'linked', 'configs'));
  await symlink(join(root, 'outside.pbtxt'), join(root, 'linked', 'configs', 'h100.pbtxt'));
  const engine = await startEngine(root, { modelConfigName: 'h100' });
  try {
    const entry = engine.repositoryIndex().find((e) => e.name === 'linked')!;
    assert.equal(entry.state, 'UNAVAILABLE');
    assert.match(entry.reason, /configs\/h100\.pbtxt .*a model's config must be a file in its folder/);
  } finally {
    await engine.close();
    await removeRepository(root);
  }
});

/** The real ONNX backend, failing the first `failures` loads of each model. */
class FlakyBackend implements Backend {
  readonly name = 'onnxruntime';
  readonly platforms = ['onnxruntime_onnx'];
  readonly defaultModelFilename = 'model.onnx';
  readonly attempts = new Map<string, number>();
  private readonly inner = new OnnxBackend();

  constructor(private readonly failures: number) {}

  async loadModel(context: ModelLoadContext): Promise<BackendModel> {
    const attempt = (this.attempts.get(context.modelName) ?? 0) + 1;
    this.attempts.set(context.modelName, attempt);
    if (attempt <= this.failures) throw new Error(`load ${attempt} fails on purpose`);
    return this.inner.loadModel(context);
  }
}

function recordingLogger(): Logger & { readonly warnings: string[] } {
  const warnings: string[] = [];
  return { ...silentLogger, warn: (m: string) => warnings.push(m), warnings };
}

test('--model-load-retry-count: a load that fails once becomes READY with 1 retry and stays UNAVAILABLE with 0', async () => {
  const root = await makeRepository({ flaky: { config: config(8), versions: { 1: addSub } } });
  try {
    for (const [retries, failures, state, attempts] of [[1, 1, 'READY', 2], [0, 1, 'UNAVAILABLE', 1], [2, 5, 'UNAVAILABLE', 3], [3, 2, 'READY', 3]] as const) {
      const backend = new FlakyBackend(failures);
      const logger = recordingLogger();
      const repository = ModelRepository.open({ paths: [root], backends: BackendRegistry.of([backend]), logger, loadRetryCount: retries });
      await repository.load();
      try {
        const version = repository.get('flaky')!.versions.get(1)!;
        assert.equal(version.state, state, `retries ${retries}, failures ${failures}`);
        assert.equal(backend.attempts.get('flaky'), attempts, 'one load, then one per retry until one succeeds');
        assert.equal(logger.warnings.filter((w) => /retrying the load of 'flaky' version 1/.test(w)).length, attempts - 1);
        if (state === 'UNAVAILABLE') assert.match(version.reason, /load \d fails on purpose/);
      } finally {
        await repository.close();
      }
    }
  } finally {
    await removeRepository(root);
  }
});

/** The real ONNX backend, holding every load until the test lets it go on, and counting how many run at once. */
class GatedBackend implements Backend {
  readonly name = 'onnxruntime';
  readonly platforms = ['onnxruntime_onnx'];
  readonly defaultModelFilename = 'model.onnx';
  active = 0;
  most = 0;
  started = 0;
  private readonly held: Array<() => void> = [];
  private readonly inner = new OnnxBackend();

  async loadModel(context: ModelLoadContext): Promise<BackendModel> {
    this.active++;
    this.started++;
    this.most = Math.max(this.most, this.active);
    try {
      await new Promise<void>((resolve) => this.held.push(resolve));
      return await this.inner.loadModel(context);
    } finally {
      this.active--;
    }
  }

  get waiting(): number {
    return this.held.length;
  }

  releaseOne(): void {
    this.held.shift()!();
  }
}

test('--model-load-thread-count: at most N models load at once at start (default 4)', async () => {
  const models = Object.fromEntries(Array.from({ length: 6 }, (_, i) => [`m${i}`, { config: config(8), versions: { 1: addSub } }]));
  const root = await makeRepository(models);
  try {
    for (const limit of [1, 2, 4, undefined]) {
      const expected = limit ?? 4;
      const backend = new GatedBackend();
      const repository = ModelRepository.open({
        paths: [root], backends: BackendRegistry.of([backend]), logger: silentLogger,
        ...(limit !== undefined ? { loadThreadCount: limit } : {}),
      });
      const loading = repository.load();
      let released = 0;
      try {
        await until(() => backend.waiting === expected, `${expected} loads to start`);
        // Nothing else starts while the first ones are held: let every pending turn run, then look again.
        for (let i = 0; i < 20; i++) await new Promise((resolve) => setImmediate(resolve));
        assert.equal(backend.started, expected, `limit ${limit}: no more than ${expected} started`);
        while (released < 6) {
          backend.releaseOne();
          released++;
          await until(() => backend.waiting > 0 || released === 6 || backend.started === 6, 'the next load');
        }
        await loading;
        assert.equal(backend.most, expected, `limit ${limit}: the most loads at once`);
        assert.ok(repository.list().every((e) => e.versions.get(1)?.state === 'READY'));
      } finally {
        while (backend.waiting > 0) backend.releaseOne();
        await loading.catch(() => {});
        await repository.close();
      }
    }
  } finally {
    await removeRepository(root);
  }
});

test('--model-load-thread-count: loads asked for together by a load request share the same limit', async () => {
  const models = Object.fromEntries(Array.from({ length: 3 }, (_, i) => [`m${i}`, { config: config(8), versions: { 1: addSub } }]));
  const root = await makeRepository(models);
  const backend = new GatedBackend();
  const repository = ModelRepository.open({
    paths: [root], backends: BackendRegistry.of([backend]), logger: silentLogger, startupModels: [], loadThreadCount: 1,
  });
  try {
    await repository.load();
    const loading = repository.loadModels(['m0', 'm1', 'm2']);
    for (let n = 1; n <= 3; n++) {
      await until(() => backend.waiting === 1, `load ${n}`);
      assert.equal(backend.active, 1, 'one at a time');
      backend.releaseOne();
    }
    const outcome = await loading;
    assert.deepEqual([...outcome.values()], [undefined, undefined, undefined]);
    assert.equal(backend.most, 1);
  } finally {
    while (backend.waiting > 0) backend.releaseOne();
    await repository.close();
    await removeRepository(root);
  }
});

test('load slots: a waiting load that another load depends on starts past the limit; the limit must be at least 1', async () => {
  const slots = new LoadSlots(1);
  const order: string[] = [];
  let releaseA!: () => void;
  const a = slots.run('a', async () => {
    order.push('a');
    await new Promise<void>((resolve) => { releaseA = resolve; });
  });
  const b = slots.run('b', async () => { order.push('b'); });
  const c = slots.run('c', async () => { order.push('c'); });
  await new Promise((resolve) => setImmediate(resolve));
  assert.deepEqual(order, ['a'], 'b and c wait for the one slot');
  slots.promote('c');
  await c;
  assert.deepEqual(order, ['a', 'c'], 'c, which a waits on, runs now');
  slots.promote('missing');
  releaseA();
  await Promise.all([a, b]);
  assert.deepEqual(order, ['a', 'c', 'b']);
  for (const bad of [0, -1, 1.5, Number.NaN]) assert.throws(() => new LoadSlots(bad), /expected a whole number of at least 1/);
});
