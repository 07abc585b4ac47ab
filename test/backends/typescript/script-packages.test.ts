/**
 * npm packages in scripts: a model.ts that imports packages installed in
 * the server's node_modules (here `yaml` and `dequal`) loads and runs them
 * inside its isolate; one that imports a package needing Node's modules (esbuild's API)
 * fails its load, the reason naming the package and the module, and the
 * server serves its other models.
 */
import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import type { InferenceEngine } from '../../../engine/inference-engine.ts';
import { makeRepository, removeRepository, startEngine } from '../../helpers/fixture-repository.ts';
import { bytesTensor, scriptConfig, stringsOf, writeScripts } from '../../helpers/script-fixtures.ts';

/** TEXT (YAML) -> JSON, the parsed document; SAME says whether it equals the config's `expected` document. */
const YAML_SCRIPT = `
import { parse } from 'yaml';
import { dequal } from 'dequal';
export default class {
  async execute(requests: any[], ctx: any) {
    const expected = JSON.parse(ctx.config.parameters.expected.string_value);
    return requests.map((r: any) => {
      const doc = parse(r.inputs.TEXT.data[0]);
      return { outputs: {
        JSON: { datatype: 'BYTES', shape: [1, 1], data: [JSON.stringify(doc)] },
        SAME: { datatype: 'BYTES', shape: [1, 1], data: [String(dequal(doc, expected))] },
      } };
    });
  }
}
`;

const NODE_PACKAGE_SCRIPT = `
import { transform } from 'esbuild';
export default class { async execute(requests: any[]) { void transform; return requests.map(() => ({ outputs: { Y: { shape: [1, 16], data: new Int32Array(16) } } })); } }
`;

let root: string;
let engine: InferenceEngine;

before(async () => {
  root = await makeRepository({
    yaml_reader: {
      config: scriptConfig({ inputs: [['TEXT', 'TYPE_STRING', [1]]], outputs: [['JSON', 'TYPE_STRING', [1]], ['SAME', 'TYPE_STRING', [1]]], parameters: { expected: '{\\"a\\":[1,2],\\"b\\":\\"x\\"}' } }),
      versions: {},
    },
    node_package: { config: scriptConfig(), versions: {} },
  });
  await writeScripts(root, { yaml_reader: { 1: YAML_SCRIPT }, node_package: { 1: NODE_PACKAGE_SCRIPT } });
  engine = await startEngine(root, { strictReadiness: false });
});
after(async () => {
  await engine?.close();
  await removeRepository(root);
});

test('a script imports yaml and dequal from node_modules; they run in its isolate', async () => {
  const response = await engine.infer({ modelName: 'yaml_reader', inputs: [bytesTensor('TEXT', [1, 1], ['a: [1, 2]\nb: x\n'])] });
  const byName = Object.fromEntries(response.outputs.map((t) => [t.name, stringsOf(t)[0]]));
  assert.deepEqual(JSON.parse(byName['JSON']!), { a: [1, 2], b: 'x' });
  assert.equal(byName['SAME'], 'true');
});

test('a package that needs Node\'s modules fails the load, naming the package and the module; the other model serves', () => {
  const entry = engine.repositoryIndex().find((e) => e.name === 'node_package')!;
  assert.equal(entry.state, 'UNAVAILABLE');
  assert.match(entry.reason ?? '', /node_package\/1\/model\.ts: scripts cannot import package 'esbuild': it imports '[^']+', a Node module the sandbox does not have\. .* \(at node_modules\/esbuild\/lib\/main\.js:\d+:\d+\)/);
  assert.equal(engine.isModelReady('yaml_reader'), true);
});
