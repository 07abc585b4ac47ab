/**
 * A script importing its model's own files, through real loads: model.ts
 * imports ../lib/*.ts (a folder that is no version and that the loader
 * passes over); an edit of a lib file is seen by a reload (explicit model
 * control) and by polling, which counts the whole model folder; a script
 * reaching into another model's folder, or out of an uploaded model's
 * temporary folder, fails its load and the server keeps serving.
 */
import assert from 'node:assert/strict';
import { mkdir, utimes, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import type { InferenceEngine } from '../../../engine/inference-engine.ts';
import { makeRepository, removeRepository, startEngine } from '../../helpers/fixture-repository.ts';
import { bytesTensor, rejection, scriptConfig, stringsOf, writeScripts } from '../../helpers/script-fixtures.ts';

/** TEXT -> TEXT with the greeting of lib/greeting.ts, which takes its word from lib/words.json. */
const GREETER_SCRIPT = `
import { greet } from '../lib/greeting.ts';
export default class {
  async execute(requests: any[]) {
    return requests.map((r: any) => ({ outputs: { TEXT: { datatype: 'BYTES', shape: [1, 1], data: [greet(r.inputs.TEXT.data[0])] } } }));
  }
}
`;
const greetingModule = (suffix: string): string => `import words from './words.json';\nexport const greet = (name: string): string => \`\${words.hello}, \${name}${suffix}\`;\n`;
const TEXT_IO = { inputs: [['TEXT', 'TYPE_STRING', [1]]], outputs: [['TEXT', 'TYPE_STRING', [1]]] } as const;

/** Writes the greeter's lib folder under `modelDir`. */
async function writeLib(modelDir: string, suffix: string): Promise<void> {
  await mkdir(join(modelDir, 'lib'), { recursive: true });
  await writeFile(join(modelDir, 'lib', 'words.json'), '{ "hello": "Bonjour" }');
  await rewrite(join(modelDir, 'lib', 'greeting.ts'), greetingModule(suffix));
}

/** Rewrites a file with a modification time polling has not seen, even on a coarse clock. */
async function rewrite(path: string, text: string): Promise<void> {
  await writeFile(path, text);
  const later = new Date(Date.now() + 5000 + Math.floor(Math.random() * 5000));
  await utimes(path, later, later);
}

async function greeting(engine: InferenceEngine, model: string, name = 'Ada'): Promise<string> {
  const response = await engine.infer({ modelName: model, inputs: [bytesTensor('TEXT', [1, 1], [name])] });
  return stringsOf(response.outputs[0])[0]!;
}

/** Makes a repository with the greeter, and `reacher`, whose script imports the greeter's lib from its own folder. */
async function greeterRepository(): Promise<string> {
  const root = await makeRepository({
    greeter: { config: scriptConfig(TEXT_IO), versions: {} },
    reacher: { config: scriptConfig(TEXT_IO), versions: {} },
  });
  await writeScripts(root, { greeter: { 1: GREETER_SCRIPT }, reacher: { 1: GREETER_SCRIPT.replace('../lib/greeting.ts', '../../greeter/lib/greeting.ts') } });
  await writeLib(join(root, 'greeter'), '!');
  return root;
}

describe('explicit model control', () => {
  let root: string;
  let engine: InferenceEngine;
  before(async () => {
    root = await greeterRepository();
    engine = await startEngine(root, { modelControlMode: 'explicit', startupModels: ['greeter'] });
  });
  after(async () => {
    await engine?.close();
    await removeRepository(root);
  });

  test('model.ts imports ../lib/greeting.ts (and it ./words.json); lib/ is no version: only version 1 loads', async () => {
    assert.equal(await greeting(engine, 'greeter'), 'Bonjour, Ada!');
    const versions = engine.repositoryIndex().filter((e) => e.name === 'greeter').map((e) => [e.version, e.state]);
    assert.deepEqual(versions, [['1', 'READY']]);
  });

  test('a reload after an edit of lib/greeting.ts runs the edit; one with nothing edited keeps the code', async () => {
    await writeLib(join(root, 'greeter'), '?');
    await engine.loadModel('greeter');
    assert.equal(await greeting(engine, 'greeter'), 'Bonjour, Ada?');
    await engine.loadModel('greeter');
    assert.equal(await greeting(engine, 'greeter'), 'Bonjour, Ada?');
  });

  test('a script importing another model\'s file fails its load naming the import; the server serves on', async () => {
    const err = await rejection(engine.loadModel('reacher'));
    assert.equal(err.code, 'MODEL_LOAD_FAILED');
    assert.match(err.message, /reacher\/1\/model\.ts:2:\d+: scripts cannot import '\.\.\/\.\.\/greeter\/lib\/greeting\.ts': it leads out of the folder of model 'reacher'/);
    assert.equal(await greeting(engine, 'greeter'), 'Bonjour, Ada?');
  });

  test('an uploaded model imports its own uploaded lib file; one that climbs out of its temporary folder is refused', async () => {
    const config = JSON.stringify({
      backend: 'typescript', max_batch_size: 8,
      input: [{ name: 'TEXT', data_type: 'TYPE_STRING', dims: [1] }], output: [{ name: 'TEXT', data_type: 'TYPE_STRING', dims: [1] }],
    });
    const text = (s: string): Uint8Array => new TextEncoder().encode(s);
    await engine.loadModel('uploaded', { config, files: new Map([
      ['1/model.ts', text(GREETER_SCRIPT)], ['lib/greeting.ts', text(greetingModule(' (uploaded)'))], ['lib/words.json', text('{ "hello": "Hi" }')],
    ]) });
    assert.equal(await greeting(engine, 'uploaded'), 'Hi, Ada (uploaded)');
    // However many folders up, a relative path lands out of the temporary folder: refused before anything is read.
    for (const specifier of [`${'../'.repeat(12)}etc/passwd`, join(root, 'greeter', 'lib', 'greeting.ts')]) {
      const err = await rejection(engine.loadModel('climber', { config, files: new Map([['1/model.ts', text(GREETER_SCRIPT.replace('../lib/greeting.ts', specifier))]]) }));
      assert.equal(err.code, 'MODEL_LOAD_FAILED');
      assert.match(err.message, /climber\/1\/model\.ts:2:\d+: scripts cannot import '[^']+': (it leads out of the folder of model 'climber'|an absolute path)/);
      assert.doesNotMatch(err.message, /root:/);
    }
    assert.equal(await greeting(engine, 'uploaded'), 'Hi, Ada (uploaded)');
  });
});

describe('poll mode', () => {
  let root: string;
  let engine: InferenceEngine;
  before(async () => {
    root = await greeterRepository();
    engine = await startEngine(root, { modelControlMode: 'poll', repositoryPollSecs: 0, strictReadiness: false });
  });
  after(async () => {
    await engine?.close();
    await removeRepository(root);
  });

  test('an edit of lib/greeting.ts (no version folder) is a change to the model: polling reloads it and only it', async () => {
    assert.equal(await greeting(engine, 'greeter'), 'Bonjour, Ada!');
    assert.deepEqual([...(await engine.pollRepository()).keys()], []);
    await rewrite(join(root, 'greeter', 'lib', 'greeting.ts'), greetingModule('.'));
    const outcome = await engine.pollRepository();
    assert.deepEqual([...outcome.entries()], [['greeter', undefined]]);
    assert.equal(await greeting(engine, 'greeter'), 'Bonjour, Ada.');
  });

  test('a new file in lib/ counts as well', async () => {
    await rewrite(join(root, 'greeter', 'lib', 'extra.ts'), 'export const unused = 1;\n');
    assert.deepEqual([...(await engine.pollRepository()).keys()], ['greeter']);
  });
});
