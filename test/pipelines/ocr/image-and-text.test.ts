/**
 * The OCR pipeline's own pixel and text steps (pipelines/ocr/lib): image
 * decoding in every PNG colour type and depth, JPEG, the pixel limit at and
 * past its bound, base64 text; OpenCV-style resizing into normalised planes;
 * the detector's input size; the classifier's and recogniser's inputs; and
 * greedy CTC decoding.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { encode as encodePngRaw } from 'fast-png';
import jpeg from 'jpeg-js';
import { detectionInput, detectionSize } from '../../../pipelines/ocr/lib/detect.ts';
import { decodeImage, fromBase64, ImageError, resizeIntoPlanes } from '../../../pipelines/ocr/lib/image.ts';
import { bestPath, CLS_WIDTH, classifierInput, decodeBestPath, LINE_HEIGHT, parseDictionary, recognizerInput, recognizerWidth } from '../../../pipelines/ocr/lib/recognize.ts';

const pixel = (image: { width: number; data: Uint8Array }, x: number, y: number): number[] => [...image.data.subarray((y * image.width + x) * 3, (y * image.width + x) * 3 + 3)];

test('PNG: grey, grey+alpha over white, RGB, RGBA 16-bit, palette with transparency, 1-bit grey', () => {
  const grey = decodeImage(encodePngRaw({ width: 2, height: 1, channels: 1, data: Uint8Array.of(0, 200) }));
  assert.deepEqual([pixel(grey, 0, 0), pixel(grey, 1, 0)], [[0, 0, 0], [200, 200, 200]]);
  // Alpha 0 holds black under it: it must read as the white it is laid over, and half alpha as half way.
  const greyAlpha = decodeImage(encodePngRaw({ width: 2, height: 1, channels: 2, data: Uint8Array.of(0, 0, 0, 128) }));
  assert.deepEqual([pixel(greyAlpha, 0, 0), pixel(greyAlpha, 1, 0)], [[255, 255, 255], [127, 127, 127]]);
  const rgb = decodeImage(encodePngRaw({ width: 1, height: 1, channels: 3, data: Uint8Array.of(10, 20, 30) }));
  assert.deepEqual(pixel(rgb, 0, 0), [10, 20, 30]);
  const deep = decodeImage(encodePngRaw({ width: 1, height: 1, channels: 4, depth: 16, data: Uint16Array.of(65535, 0, 32896, 65535) }));
  assert.deepEqual(pixel(deep, 0, 0), [255, 0, 128]);
  // The transparent entry first: fast-png's encoder writes tRNS for the leading non-opaque entries only.
  const palette = decodeImage(encodePngRaw({ width: 2, height: 1, channels: 1, depth: 8, data: Uint8Array.of(1, 0), palette: [[0, 0, 255, 0], [255, 0, 0, 255]] }));
  assert.deepEqual([pixel(palette, 0, 0), pixel(palette, 1, 0)], [[255, 0, 0], [255, 255, 255]]);
  const bits = decodeImage(encodePngRaw({ width: 9, height: 1, channels: 1, depth: 1, data: Uint8Array.of(0b10100000, 0b10000000) }));
  assert.deepEqual([0, 1, 2, 8].map((x) => pixel(bits, x, 0)[0]), [255, 0, 255, 255]);
});

test('JPEG decodes to RGB of the right size', () => {
  const width = 16;
  const height = 8;
  const rgba = new Uint8Array(width * height * 4).fill(255);
  const image = decodeImage(jpeg.encode({ width, height, data: rgba }, 90).data);
  assert.equal(image.width, width);
  assert.equal(image.height, height);
  assert.equal(image.data.length, width * height * 3);
  assert.ok(image.data.every((v) => v > 245));
});

test('bad bytes and sizes are ImageErrors naming the problem; the pixel limit holds at and past its bound', () => {
  assert.throws(() => decodeImage(new TextEncoder().encode('hello')), (err: unknown) => err instanceof ImageError && /5 bytes that are neither a PNG nor a JPEG/.test(err.message));
  assert.throws(() => decodeImage(Uint8Array.of(0x89, 0x50, 0x4e, 0x47, 13, 10, 26, 10)), /the PNG is 8 bytes: too short to hold its header/);
  const png = encodePngRaw({ width: 10, height: 10, channels: 1, data: new Uint8Array(100) });
  assert.equal(decodeImage(png, 100).width, 10);
  assert.throws(() => decodeImage(png, 99), /the image is 10 x 10 pixels, over the 99 pixels this model decodes/);
  const jpg = jpeg.encode({ width: 10, height: 10, data: new Uint8Array(400) }, 80).data;
  assert.equal(decodeImage(jpg, 100).width, 10);
  assert.throws(() => decodeImage(jpg, 99), (err: unknown) => err instanceof ImageError);
});

test('base64 text: standard and URL alphabets, padding and line breaks; anything else is not base64', () => {
  const bytes = Uint8Array.of(0xfb, 0xff, 0x00, 0x89, 0x50);
  const standard = new TextEncoder().encode(Buffer.from(bytes).toString('base64'));
  assert.deepEqual(fromBase64(standard), bytes);
  assert.deepEqual(fromBase64(new TextEncoder().encode(Buffer.from(bytes).toString('base64url'))), bytes);
  assert.deepEqual(fromBase64(new TextEncoder().encode('+/8A\niVA=')), bytes);
  assert.equal(fromBase64(new TextEncoder().encode('not base64!')), undefined);
  assert.equal(fromBase64(new TextEncoder().encode('A')), undefined);
});

test('resizing: a constant image stays constant after normalisation, channels read in the order asked, padding left alone', () => {
  const image = { width: 7, height: 5, data: new Uint8Array(7 * 5 * 3).map((_, i) => [51, 102, 204][i % 3]!) };
  const out = new Float32Array(3 * 4 * 10).fill(-9);
  resizeIntoPlanes(image, 6, 4, { source: [2, 1, 0], mean: [0.5, 0.5, 0.5], std: [0.5, 0.5, 0.5] }, out, 0, 10);
  const at = (c: number, y: number, x: number): number => out[c * 40 + y * 10 + x]!;
  // BGR order: plane 0 is blue (204), plane 2 red (51); (v / 255 - 0.5) / 0.5.
  assert.ok(Math.abs(at(0, 2, 3) - (204 / 255 - 0.5) / 0.5) < 1e-6);
  assert.ok(Math.abs(at(2, 3, 5) - (51 / 255 - 0.5) / 0.5) < 1e-6);
  assert.equal(at(1, 0, 6), -9, 'columns past the resized width keep the caller\'s fill');
});

test('the detector\'s size: never enlarged, longer side at most the limit, multiples of 32 rounded half to even, at least 32', () => {
  assert.deepEqual(detectionSize(532, 175), { width: 544, height: 160 });
  assert.deepEqual(detectionSize(1920, 1080), { width: 960, height: 544 });
  assert.deepEqual(detectionSize(10, 10), { width: 32, height: 32 });
  // 48 / 32 = 1.5 rounds to 2 (even), 80 / 32 = 2.5 rounds to 2 (even).
  assert.deepEqual(detectionSize(48, 80), { width: 64, height: 64 });
  // 2000 / 32 = 62.5 rounds to 62 (even).
  assert.deepEqual(detectionSize(4000, 1000, 2000), { width: 1984, height: 512 });
  const input = detectionInput({ width: 40, height: 40, data: new Uint8Array(40 * 40 * 3).fill(255) });
  assert.equal(input.data.length, 3 * input.width * input.height);
  // White through ImageNet's normalisation, blue plane first: (1 - 0.485) / 0.229.
  assert.ok(Math.abs(input.data[0]! - (1 - 0.485) / 0.229) < 1e-5);
});

test('line inputs: 48 high; the classifier 192 wide, a long line seen by its middle; the recogniser at least 320 wide', () => {
  const line = (width: number, height: number, left = 0): { width: number; height: number; data: Uint8Array } => {
    const data = new Uint8Array(width * height * 3).fill(255);
    for (let y = 0; y < height; y++) data.fill(0, y * width * 3, (y * width + left) * 3);
    return { width, height, data };
  };
  assert.equal(classifierInput(line(100, 48)).data.length, 3 * LINE_HEIGHT * CLS_WIDTH);
  // A 960 x 24 line whose left 300 columns are dark: the middle 96 columns the classifier sees are all white.
  const long = classifierInput(line(960, 24, 300));
  assert.ok(long.data.subarray(0, LINE_HEIGHT * CLS_WIDTH).every((v) => v > 0.99), 'the middle of the line, not its dark start squeezed in');
  assert.equal(recognizerWidth(line(100, 48)), 320);
  assert.equal(recognizerWidth(line(1000, 40)), 1200);
  const rec = recognizerInput(line(100, 48));
  assert.equal(rec.width, 320);
  assert.equal(rec.data[LINE_HEIGHT * 320 - 1], 0, 'padded with 0 past the line');
});

test('CTC: repeats merged, blanks dropped, the last class is a space, the score is the mean of the kept steps', () => {
  const dictionary = parseDictionary('a\nb\r\nc\n');
  assert.deepEqual(dictionary, ['a', 'b', 'c']);
  // Classes: 0 blank, 1 a, 2 b, 3 c, 4 space.
  const path = { best: Int32Array.of(1, 1, 0, 1, 4, 2, 2, 0), prob: Float32Array.of(0.9, 0.8, 1, 0.7, 0.6, 0.5, 0.4, 1), steps: 8 };
  const read = decodeBestPath(path, dictionary);
  assert.equal(read.text, 'aa b');
  assert.ok(Math.abs(read.score - (0.9 + 0.7 + 0.6 + 0.5) / 4) < 1e-6);
  assert.deepEqual(decodeBestPath({ best: Int32Array.of(0, 0), prob: Float32Array.of(1, 1), steps: 2 }, dictionary), { text: '', score: 0 });
  assert.throws(() => decodeBestPath({ best: Int32Array.of(5), prob: Float32Array.of(1), steps: 1 }, dictionary), /names class 5, but the dictionary has 3 symbols/);
  // bestPath over full probabilities finds the same classes.
  const probs = new Float32Array(2 * 5);
  probs[0 * 5 + 3] = 0.9;
  probs[1 * 5 + 4] = 0.8;
  const found = bestPath(probs, 2, 5);
  assert.deepEqual(Array.from(found.best), [3, 4]);
  assert.equal(decodeBestPath(found, dictionary).text, 'c ');
});
