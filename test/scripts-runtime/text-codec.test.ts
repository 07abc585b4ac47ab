/**
 * TextEncoder and TextDecoder inside a script isolate (the bootstrap's own,
 * plain JavaScript): UTF-8 round trips of non-ASCII text, invalid bytes
 * replaced exactly as the web (Node's decoder) replaces them, fatal mode,
 * streaming, the BOM, latin1 and the labels that are refused.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { compileScript } from '../../scripts-runtime/compile.ts';
import { IsolatedVmSandbox } from '../../scripts-runtime/isolated-vm-sandbox.ts';

/** Runs `body` (the inside of an async function returning JSON-able data) in a fresh isolate, and returns what it returned. */
async function inIsolate(body: string): Promise<unknown> {
  const script = await compileScript('codec/1/model.ts', `
    export default class {
      async execute(requests: unknown[]) {
        const result = await (async () => { ${body} })();
        return requests.map(() => ({ outputs: { JSON: { datatype: 'BYTES', shape: [1], data: [JSON.stringify(result)] } } }));
      }
    }`);
  const sandbox = await IsolatedVmSandbox.create(script, {
    name: 'codec', version: '1', instance: 'codec_0', config: {}, inferLimit: { max: 1, code: 'LIMIT', message: 'limit' },
  }, {
    memoryLimitMb: 64, executeTimeoutMs: 20_000, maxTransferMb: 16, logLineMaxChars: 100, logLinesPerExecute: 10, allowWebAssembly: false, inlineSliceMs: 0,
  }, { infer: async () => ({ error: 'no models here' }), stream: async () => ({ error: 'no models here' }), log: () => {} });
  try {
    const [response] = await sandbox.execute([{ inputs: {}, parameters: {} }], [], 1) as { outputs: { JSON: { data: string[] } } }[];
    return JSON.parse(response!.outputs.JSON.data[0]!);
  } finally {
    await sandbox.dispose();
  }
}

const TEXTS = ['', 'plain ASCII', 'café é', '日本語のテキスト', 'emoji 😀🎉 and 𝄞', 'mixed: aé日😀\u0000\u007f\u0080\u07ff\u0800\uffff'];

test('TextEncoder and TextDecoder are globals of the isolate; utf-8 round trips of non-ASCII text match Node\'s bytes', async () => {
  const result = await inIsolate(`
    const texts = ${JSON.stringify(TEXTS)};
    const encoder = new TextEncoder();
    const decoder = new TextDecoder();
    return {
      types: [typeof TextEncoder, typeof TextDecoder, Object.keys(globalThis).includes('TextEncoder')],
      names: [encoder.encoding, decoder.encoding, decoder.fatal, decoder.ignoreBOM, new TextDecoder('UTF8 ').encoding],
      bytes: texts.map((t) => Array.from(encoder.encode(t))),
      back: texts.map((t) => decoder.decode(encoder.encode(t))),
      empty: [encoder.encode().length, decoder.decode(), decoder.decode(new ArrayBuffer(0))],
      views: [decoder.decode(encoder.encode('é日').buffer), decoder.decode(new DataView(encoder.encode('xé日y').buffer, 1, 5)),
        decoder.decode(new Uint8Array([0, 0x68, 0x69, 0]).subarray(1, 3))],
      lone: [Array.from(encoder.encode('a\\ud800b')), Array.from(encoder.encode('\\udc00'))],
    };
  `) as Record<string, unknown[]>;
  assert.deepEqual(result['types'], ['function', 'function', false]);
  assert.deepEqual(result['names'], ['utf-8', 'utf-8', false, false, 'utf-8']);
  assert.deepEqual(result['bytes'], TEXTS.map((t) => [...new TextEncoder().encode(t)]));
  assert.deepEqual(result['back'], TEXTS);
  assert.deepEqual(result['empty'], [0, '', '']);
  assert.deepEqual(result['views'], ['é日', 'é日', 'hi']);
  // A lone surrogate cannot be UTF-8: it encodes as U+FFFD (EF BF BD), as the web's encoder does.
  assert.deepEqual(result['lone'], [[0x61, 0xef, 0xbf, 0xbd, 0x62], [0xef, 0xbf, 0xbd]]);
});

test('encodeInto writes whole characters only, and says how many units it read and bytes it wrote', async () => {
  const result = await inIsolate(`
    const encoder = new TextEncoder();
    const out = [];
    for (const size of [0, 1, 2, 3, 4, 5, 6, 9, 20]) {
      const dest = new Uint8Array(size);
      const { read, written } = encoder.encodeInto('aé日😀', dest);
      out.push([size, read, written, Array.from(dest.subarray(0, written))]);
    }
    let refused = '';
    try { encoder.encodeInto('x', new Uint16Array(4)); } catch (err) { refused = err.constructor.name + ': ' + err.message; }
    return { out, refused };
  `) as { out: unknown[]; refused: string };
  const expected = [0, 1, 2, 3, 4, 5, 6, 9, 20].map((size) => {
    const dest = new Uint8Array(size);
    const { read, written } = new TextEncoder().encodeInto('aé日😀', dest);
    return [size, read, written, [...dest.subarray(0, written!)]];
  });
  assert.deepEqual(result.out, expected);
  assert.match(result.refused, /^TypeError: .*Uint8Array/);
});

/** Byte strings that are not UTF-8, or only nearly: truncated, overlong, surrogates, past U+10FFFF, stray continuations. */
function invalidCases(): number[][] {
  const cases = [
    [0x80], [0xbf], [0xc0, 0x80], [0xc1, 0xbf], [0xc2], [0xc2, 0x41], [0xe0, 0x80, 0x80], [0xe0, 0xa0], [0xed, 0xa0, 0x80],
    [0xef, 0xbf], [0xf0, 0x80, 0x80, 0x80], [0xf0, 0x9f, 0x98], [0xf4, 0x90, 0x80, 0x80], [0xf5, 0x80], [0xff, 0xfe, 0x41],
    [0x61, 0xf0, 0x9f, 0x41, 0xe6, 0x97, 0xa5, 0xe6], [0xef, 0xbb, 0xbf, 0x41], [0xef, 0xbb, 0xbf, 0xef, 0xbb, 0xbf],
  ];
  // And random bytes, biased to the lead and continuation ranges, against Node's decoder.
  let seed = 22;
  const next = (): number => { seed = (seed * 1103515245 + 12345) & 0x7fffffff; return seed; };
  for (let n = 0; n < 300; n++) {
    const length = next() % 12;
    cases.push(Array.from({ length }, () => { const r = next() % 4; return r === 0 ? next() % 0x80 : r === 1 ? 0x80 + (next() % 0x40) : 0xc0 + (next() % 0x40); }));
  }
  return cases;
}

test('invalid utf-8 becomes U+FFFD exactly where the web\'s decoder puts it; fatal throws; streaming keeps a cut sequence', async () => {
  const cases = invalidCases();
  const result = await inIsolate(`
    const cases = ${JSON.stringify(cases)};
    const decoder = new TextDecoder('utf-8');
    const replaced = cases.map((c) => decoder.decode(new Uint8Array(c)));
    const kept = cases.map((c) => new TextDecoder('utf-8', { ignoreBOM: true }).decode(new Uint8Array(c)));
    const fatal = cases.map((c) => { try { new TextDecoder('utf-8', { fatal: true }).decode(new Uint8Array(c)); return 'ok'; } catch (err) { return err.constructor.name; } });
    // Each case fed one byte at a time with stream: true, then closed.
    const streamed = cases.map((c) => {
      const d = new TextDecoder();
      let text = '';
      for (const b of c) text += d.decode(new Uint8Array([b]), { stream: true });
      return text + d.decode();
    });
    const fatalDecoder = new TextDecoder('utf-8', { fatal: true });
    return { replaced, kept, fatal, streamed, fatalFlag: fatalDecoder.fatal, emoji: new TextDecoder().decode(new Uint8Array([0xf0, 0x9f, 0x98, 0x80])) };
  `) as Record<string, unknown>;
  const node = (c: number[], options?: TextDecoderOptions): string => new TextDecoder('utf-8', options).decode(new Uint8Array(c));
  assert.deepEqual(result['replaced'], cases.map((c) => node(c)));
  assert.deepEqual(result['kept'], cases.map((c) => node(c, { ignoreBOM: true })));
  assert.deepEqual(result['fatal'], cases.map((c) => { try { node(c, { fatal: true }); return 'ok'; } catch { return 'TypeError'; } }));
  assert.deepEqual(result['streamed'], cases.map((c) => node(c)));
  assert.equal((result['replaced'] as string[])[0], '\ufffd');
  assert.equal((result['replaced'] as string[])[2], '\ufffd\ufffd', 'an overlong C0 80 is two replacements');
  assert.equal((result['fatal'] as string[])[0], 'TypeError');
  assert.equal(result['fatalFlag'], true);
  assert.equal(result['emoji'], '😀');
});

test('latin1 labels map every byte to the code point of its value; unknown labels throw RangeError', async () => {
  const result = await inIsolate(`
    const all = new Uint8Array(256).map((_, i) => i);
    const labels = ['latin1', 'ISO-8859-1', 'windows-1252', ' ascii ', 'l1'];
    const decoded = labels.map((l) => { const d = new TextDecoder(l); return [d.encoding, Array.from(d.decode(all), (c) => c.codePointAt(0))]; });
    const refused = ['utf-16le', 'shift_jis', 'no-such-encoding', 'x'.repeat(500)].map((l) => {
      try { new TextDecoder(l); return 'accepted'; } catch (err) { return err.constructor.name + ': ' + err.message; }
    });
    const big = new Uint8Array(100000).fill(0xe9);
    return { decoded, refused, big: new TextDecoder('latin1').decode(big) === 'é'.repeat(100000) };
  `) as { decoded: [string, number[]][]; refused: string[]; big: boolean };
  for (const [encoding, codes] of result.decoded) {
    assert.equal(encoding, 'windows-1252');
    assert.deepEqual(codes, Array.from({ length: 256 }, (_, i) => i));
  }
  assert.equal(result.refused.length, 4);
  for (const message of result.refused) assert.match(message, /^RangeError: TextDecoder: the encoding '.*' is not supported here/);
  assert.ok(result.refused[3]!.length < 200, 'the label is cut in the message');
  assert.equal(result.big, true);
});

test('a long utf-8 text decodes across the decoder\'s chunks', async () => {
  const result = await inIsolate(`
    const text = '日本😀é'.repeat(30000);
    return new TextDecoder().decode(new TextEncoder().encode(text)) === text;
  `);
  assert.equal(result, true);
});
