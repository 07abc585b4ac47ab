/**
 * parameters.binary_inputs: BYTES inputs a script receives byte for byte
 * (Uint8Array elements), where other BYTES inputs arrive as UTF-8 strings
 * with U+FFFD in place of bytes that are not UTF-8. A name that is not a
 * BYTES input fails the load, naming the parameter; the server serves its
 * other models.
 */
import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import { bytesTensor as bytesTensorOf } from '../../../engine/bytes-tensor.ts';
import type { InferenceEngine } from '../../../engine/inference-engine.ts';
import { makeRepository, removeRepository, startEngine } from '../../helpers/fixture-repository.ts';
import { scriptConfig, stringsOf, writeScripts } from '../../helpers/script-fixtures.ts';

/** For each input, what the script saw: the element's type and its bytes (re-encoded as UTF-8 for strings) in hex. */
const ECHO_SCRIPT = `
const hex = (bytes: Uint8Array) => Array.from(bytes, (b) => b.toString(16).padStart(2, '0')).join('');
const utf8 = (s: string) => { const out: number[] = []; for (const ch of s) { const c = ch.codePointAt(0)!;
  if (c < 0x80) out.push(c); else if (c < 0x800) out.push(0xc0 | (c >> 6), 0x80 | (c & 63));
  else if (c < 0x10000) out.push(0xe0 | (c >> 12), 0x80 | ((c >> 6) & 63), 0x80 | (c & 63));
  else out.push(0xf0 | (c >> 18), 0x80 | ((c >> 12) & 63), 0x80 | ((c >> 6) & 63), 0x80 | (c & 63)); } return new Uint8Array(out); };
const seen = (e: unknown) => e instanceof Uint8Array ? 'bytes:' + hex(e) : 'string:' + hex(utf8(e as string));
export default class {
  execute(requests: any[]) {
    return requests.map((r: any) => ({ outputs: {
      RAW_SEEN: { shape: [1, 2], data: r.inputs.RAW.data.map(seen) },
      TEXT_SEEN: { shape: [1, 2], data: r.inputs.TEXT.data.map(seen) },
    } }));
  }
}
`;

const io = {
  inputs: [['RAW', 'TYPE_STRING', [2]], ['TEXT', 'TYPE_STRING', [2]], ['NUM', 'TYPE_FP32', [1]]] as const,
  outputs: [['RAW_SEEN', 'TYPE_STRING', [2]], ['TEXT_SEEN', 'TYPE_STRING', [2]]] as const,
};

let root: string;
let engine: InferenceEngine;

before(async () => {
  const config = (binary: string) => scriptConfig({ ...io, inputs: [...io.inputs], outputs: [...io.outputs], parameters: { binary_inputs: binary } });
  root = await makeRepository({
    echo: { config: config('RAW'), versions: {} },
    unknown_input: { config: config('RAW, IMAGE'), versions: {} },
    not_bytes: { config: config('NUM'), versions: {} },
  });
  await writeScripts(root, { echo: { 1: ECHO_SCRIPT }, unknown_input: { 1: ECHO_SCRIPT }, not_bytes: { 1: ECHO_SCRIPT } });
  engine = await startEngine(root, { strictReadiness: false });
});
after(async () => {
  await engine?.close();
  await removeRepository(root);
});

test('a binary input arrives byte for byte; a BYTES input not named arrives as text', async () => {
  const notUtf8 = Uint8Array.from([0x89, 0x50, 0x4e, 0x47, 0x00, 0xff, 0x80]);
  const empty = new Uint8Array(0);
  const response = await engine.infer({
    modelName: 'echo',
    inputs: [
      bytesTensorOf('RAW', [1, 2], [notUtf8, empty]),
      bytesTensorOf('TEXT', [1, 2], [notUtf8, 'é']),
      { name: 'NUM', datatype: 'FP32', shape: [1, 1], raw: new Uint8Array(4) },
    ],
  });
  const byName = Object.fromEntries(response.outputs.map((t) => [t.name, stringsOf(t)]));
  assert.deepEqual(byName['RAW_SEEN'], ['bytes:89504e4700ff80', 'bytes:']);
  // Not named: decoded as UTF-8, the bad bytes replaced (ef bf bd is U+FFFD).
  assert.deepEqual(byName['TEXT_SEEN'], ['string:efbfbd504e4700efbfbdefbfbd', 'string:c3a9']);
});

test('a name that is not an input, or not a BYTES input, fails that load naming the parameter', async () => {
  const reasons = Object.fromEntries(engine.repositoryIndex().map((m) => [m.name, m]));
  assert.equal(reasons['unknown_input']!.state, 'UNAVAILABLE');
  assert.match(reasons['unknown_input']!.reason, /parameters 'binary_inputs' names 'IMAGE', which is not an input of the model: name BYTES inputs \(RAW, TEXT\)/);
  assert.equal(reasons['not_bytes']!.state, 'UNAVAILABLE');
  assert.match(reasons['not_bytes']!.reason, /parameters 'binary_inputs' names 'NUM', whose datatype is FP32/);
  assert.equal(reasons['echo']!.state, 'READY');
});
