/**
 * npm packages in scripts: a model.ts that imports packages installed in
 * the server's node_modules (here `yaml` and `dequal`) loads and runs them
 * inside its isolate; one that imports a package needing Node's modules (esbuild's API)
 * fails its load, the reason naming the package and the module, and the
 * server serves its other models. Image codecs run too: fast-png (which
 * needs TextEncoder and TextDecoder, the isolate's own) and jpeg-js decode
 * images encoded here on the host, their bytes sent as a UINT8 input (a
 * script sees BYTES elements as UTF-8 strings, not byte for byte).
 */
import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import { decode as decodePng, encode as encodePng } from 'fast-png';
import jpeg from 'jpeg-js';
import type { InferenceEngine } from '../../../engine/inference-engine.ts';
import { makeRepository, removeRepository, startEngine } from '../../helpers/fixture-repository.ts';
import { bytesTensor, fixedTensor, outputNamed, scriptConfig, stringsOf, valuesOf, writeScripts } from '../../helpers/script-fixtures.ts';

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

/** IMAGE (an encoded image's bytes) -> PIXELS (the decoded samples) and INFO (width, height, channels, the PNG's text). */
const imageScript = (decoder: string): string => `
import { decode as decodePng } from 'fast-png';
import jpeg from 'jpeg-js';
export default class {
  async execute(requests: any[]) {
    return requests.map((r: any) => {
      const bytes: Uint8Array = r.inputs.IMAGE.data;
      ${decoder}
      return { outputs: {
        PIXELS: { datatype: 'UINT8', shape: [1, pixels.length], data: pixels },
        INFO: { datatype: 'BYTES', shape: [1, 1], data: [JSON.stringify(info)] },
      } };
    });
  }
}
`;
const PNG_SCRIPT = imageScript(`const png = decodePng(bytes);
      const pixels = new Uint8Array(png.data.buffer, png.data.byteOffset, png.data.byteLength);
      const info = { width: png.width, height: png.height, channels: png.channels, depth: png.depth, text: png.text };`);
const JPEG_SCRIPT = imageScript(`const image = jpeg.decode(bytes, { useTArray: true });
      const pixels = image.data;
      const info = { width: image.width, height: image.height };`);
const imageConfig = scriptConfig({ maxBatchSize: 0, inputs: [['IMAGE', 'TYPE_UINT8', [-1]]], outputs: [['PIXELS', 'TYPE_UINT8', [1, -1]], ['INFO', 'TYPE_STRING', [1, 1]]] });

/** A small RGB test picture: gradients, so that every sample differs from its neighbours. */
function picture(width: number, height: number, channels: number): Uint8Array {
  return Uint8Array.from({ length: width * height * channels }, (_, i) => (i * 37 + Math.floor(i / (width * channels)) * 11) % 256);
}

let root: string;
let engine: InferenceEngine;

before(async () => {
  root = await makeRepository({
    yaml_reader: {
      config: scriptConfig({ inputs: [['TEXT', 'TYPE_STRING', [1]]], outputs: [['JSON', 'TYPE_STRING', [1]], ['SAME', 'TYPE_STRING', [1]]], parameters: { expected: '{\\"a\\":[1,2],\\"b\\":\\"x\\"}' } }),
      versions: {},
    },
    node_package: { config: scriptConfig(), versions: {} },
    png_reader: { config: imageConfig, versions: {} },
    jpeg_reader: { config: imageConfig, versions: {} },
  });
  await writeScripts(root, { yaml_reader: { 1: YAML_SCRIPT }, node_package: { 1: NODE_PACKAGE_SCRIPT }, png_reader: { 1: PNG_SCRIPT }, jpeg_reader: { 1: JPEG_SCRIPT } });
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

test('a script imports fast-png (TextEncoder and TextDecoder at work) and decodes a PNG encoded on the host', async () => {
  const [width, height] = [13, 7];
  const data = picture(width, height, 3);
  // A tEXt chunk is latin1: fast-png reads it with TextDecoder('latin1').
  const png = encodePng({ width, height, data, channels: 3, depth: 8, text: { Comment: 'café, déjà vu' } });
  assert.deepEqual(decodePng(png).data, data, 'the host decodes its own PNG');
  const response = await engine.infer({ modelName: 'png_reader', inputs: [fixedTensor('IMAGE', 'UINT8', [png.length], png)] });
  assert.deepEqual(JSON.parse(stringsOf(outputNamed(response.outputs, 'INFO'))[0]!), { width, height, channels: 3, depth: 8, text: { Comment: 'café, déjà vu' } });
  assert.deepEqual(valuesOf(outputNamed(response.outputs, 'PIXELS')), [...data]);
});

test('a script imports jpeg-js and decodes a JPEG encoded on the host into a Uint8Array, as the host decodes it', async () => {
  const [width, height] = [24, 16];
  const jpegBytes = new Uint8Array(jpeg.encode({ width, height, data: picture(width, height, 4) }, 90).data);
  const expected = jpeg.decode(jpegBytes, { useTArray: true });
  const response = await engine.infer({ modelName: 'jpeg_reader', inputs: [fixedTensor('IMAGE', 'UINT8', [jpegBytes.length], jpegBytes)] });
  assert.deepEqual(JSON.parse(stringsOf(outputNamed(response.outputs, 'INFO'))[0]!), { width, height });
  const pixels = valuesOf(outputNamed(response.outputs, 'PIXELS'));
  assert.equal(pixels.length, width * height * 4);
  assert.deepEqual(pixels, [...expected.data]);
});
