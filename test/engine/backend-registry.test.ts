/**
 * BackendRegistry: backends by name and by platform, the default for configs
 * naming neither, and the config errors of a backend the server lacks.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import type { Backend, BackendModel } from '../../engine/backend.ts';
import { BackendRegistry } from '../../engine/backend-registry.ts';
import { readModelSettings } from '../../engine/config/compile-model-config.ts';
import { ModelConfigError } from '../../engine/config/config-error.ts';
import { parseModelConfig } from '../../engine/config/parse-model-config.ts';
import { defaultBackends } from '../../backends/default-backends.ts';

/** A backend that is only its traits: these tests never load a model. */
function traits(name: string, extra: Partial<Omit<Backend, 'name' | 'loadModel'>> = {}): Backend {
  return { name, ...extra, loadModel: (): Promise<BackendModel> => Promise.reject(new Error('not loaded in these tests')) };
}

const settingsOf = (registry: BackendRegistry, text: string) => readModelSettings('m', '/repo/m', parseModelConfig('/repo/m/config.pbtxt', text), registry);

test('a backend is found by name and by each of its platforms; the first platform is what its models report', () => {
  const tf = traits('tensorflow', { platforms: ['tensorflow_savedmodel', 'tensorflow_graphdef'], defaultModelFilename: 'model.savedmodel' });
  const registry = BackendRegistry.of([traits('sum'), tf]);
  assert.equal(registry.get('tensorflow'), tf);
  assert.equal(registry.get('nope'), undefined);
  assert.equal(registry.backendOfPlatform('tensorflow_graphdef'), 'tensorflow');
  assert.equal(registry.backendOfPlatform('onnxruntime_onnx'), undefined);
  assert.deepEqual(registry.list().map((b) => b.name), ['sum', 'tensorflow']);

  const byPlatform = settingsOf(registry, 'platform: "tensorflow_graphdef"');
  assert.deepEqual([byPlatform.backend, byPlatform.platform, byPlatform.defaultModelFilename], ['tensorflow', 'tensorflow_graphdef', 'model.savedmodel']);
  const byName = settingsOf(registry, 'backend: "tensorflow"');
  assert.deepEqual([byName.backend, byName.platform], ['tensorflow', 'tensorflow_savedmodel']);
  const noPlatform = settingsOf(registry, 'backend: "sum"');
  assert.deepEqual([noPlatform.backend, noPlatform.platform, noPlatform.defaultModelFilename, noPlatform.decoupledCapable], ['sum', '', '', false]);
});

test('a config naming neither backend nor platform gets the default backend: the first given, or the one named', () => {
  const first = BackendRegistry.of([traits('sum'), traits('echo')]);
  assert.equal(settingsOf(first, '').backend, 'sum');
  const named = BackendRegistry.of([traits('sum'), traits('echo')], { defaultBackend: 'echo' });
  assert.equal(settingsOf(named, '').backend, 'echo');
  assert.equal(settingsOf(defaultBackends(), '').backend, 'onnxruntime');
  assert.throws(() => settingsOf(BackendRegistry.of([]), ''), (err: unknown) => err instanceof ModelConfigError
    && /platform: is not set, and this server has no default backend/.test(err.message));
});

test('a backend or platform the registry lacks is the config error naming the field, with the backends it has as the hint', () => {
  const registry = BackendRegistry.of([traits('sum'), traits('tensorflow', { platforms: ['tensorflow_savedmodel'] })]);
  const hint = 'use one of this server\'s backends: backend: "sum", backend: "tensorflow" (or platform: "tensorflow_savedmodel"), platform: "ensemble" for ensembles';
  for (const [text, field, written] of [['backend: "onnxruntime"', 'backend', 'onnxruntime'], ['platform: "onnxruntime_onnx"', 'platform', 'onnxruntime_onnx']] as const) {
    assert.throws(() => settingsOf(registry, text), (err: unknown) => {
      assert.ok(err instanceof ModelConfigError);
      assert.match(err.message, new RegExp(`config\\.pbtxt.*${field}: '${written}' is not a backend this server has`));
      assert.ok(err.message.includes(hint), err.message);
      return true;
    });
  }
  assert.throws(() => settingsOf(registry, 'backend: "python"'), /'python' models arrive in a later Switchyard release/);
  assert.throws(() => settingsOf(registry, 'backend: "sum" platform: "tensorflow_savedmodel"'), /platform: 'tensorflow_savedmodel' does not go with backend 'sum'/);
});

test('ensembles are the engine\'s own, whatever the registry holds', () => {
  const settings = settingsOf(BackendRegistry.of([traits('sum')]), 'platform: "ensemble"');
  assert.deepEqual([settings.backend, settings.platform, settings.instanceGroups.length], ['ensemble', 'ensemble', 0]);
});

test('only a backend that declares decoupled may serve decoupled models', () => {
  const registry = BackendRegistry.of([traits('sum'), traits('stream', { decoupled: true })]);
  assert.equal(settingsOf(registry, 'backend: "stream"').decoupledCapable, true);
  assert.equal(settingsOf(registry, 'backend: "sum"').decoupledCapable, false);
  assert.equal(settingsOf(defaultBackends(), 'backend: "typescript"').decoupledCapable, true);
  assert.equal(settingsOf(defaultBackends(), 'backend: "onnxruntime"').decoupledCapable, false);
});

test('the registry refuses two backends with one name or platform, the ensemble\'s name or platform, and an unknown default', () => {
  assert.throws(() => BackendRegistry.of([traits('sum'), traits('sum')]), /two backends are named 'sum'/);
  assert.throws(() => BackendRegistry.of([traits('a', { platforms: ['p'] }), traits('b', { platforms: ['p'] })]), /backends 'a' and 'b' both claim the platform 'p'/);
  assert.throws(() => BackendRegistry.of([traits('ensemble')]), /a backend may not be named 'ensemble'/);
  assert.throws(() => BackendRegistry.of([traits('')]), /a backend may not be named ''/);
  assert.throws(() => BackendRegistry.of([traits('a', { platforms: ['ensemble'] })]), /backend 'a' may not claim the platform 'ensemble'/);
  assert.throws(() => BackendRegistry.of([traits('a')], { defaultBackend: 'b' }), /the default backend 'b' is not among the backends given/);
});
