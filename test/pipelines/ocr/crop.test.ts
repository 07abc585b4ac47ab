/**
 * get_rotate_crop_image: perspective crops sampled as cv2.warpPerspective
 * (INTER_CUBIC, BORDER_REPLICATE), tall crops turned, degenerate quads refused.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { MAX_CROP_SIDE, cropQuad, rotate180 } from '../../../pipelines/ocr/lib/crop.ts';
import type { Quad, RgbImage } from '../../../pipelines/ocr/lib/types.ts';

function noiseImage(width: number, height: number, seed = 1): RgbImage {
  const data = new Uint8Array(width * height * 3);
  let state = seed;
  for (let i = 0; i < data.length; i++) {
    state = (state * 1103515245 + 12345) >>> 0;
    data[i] = state >>> 24;
  }
  return { width, height, data };
}

function subImage(image: RgbImage, x0: number, y0: number, width: number, height: number): RgbImage {
  const data = new Uint8Array(width * height * 3);
  for (let y = 0; y < height; y++) {
    data.set(image.data.subarray(((y0 + y) * image.width + x0) * 3, ((y0 + y) * image.width + x0 + width) * 3), y * width * 3);
  }
  return { width, height, data };
}

const pixel = (image: RgbImage, x: number, y: number): number[] => [...image.data.subarray((y * image.width + x) * 3, (y * image.width + x) * 3 + 3)];

const rect = (x: number, y: number, w: number, h: number): Quad => [[x, y], [x + w, y], [x + w, y + h], [x, y + h]];

test('an axis-aligned quad crops the sub-image exactly', () => {
  const image = noiseImage(50, 40);
  const crop = cropQuad(image, rect(5, 7, 20, 10));
  assert.deepEqual(crop, subImage(image, 5, 7, 20, 10));
  // Fractional lengths truncate: 20.9 wide is 20 pixels.
  assert.equal(cropQuad(image, [[5, 7], [25.9, 7], [25.9, 17.5], [5, 17.5]]).width, 20);
});

test('a quad turned 90 degrees comes back upright', () => {
  const text = noiseImage(30, 20, 7);
  // The same content turned clockwise: text pixel (x, y) lands on (H - 1 - y, x).
  const turned = new Uint8Array(text.data.length);
  for (let y = 0; y < 20; y++) {
    for (let x = 0; x < 30; x++) turned.set(pixel(text, x, y), (x * 20 + (19 - y)) * 3);
  }
  const image: RgbImage = { width: 20, height: 30, data: turned };
  const crop = cropQuad(image, [[19, 0], [19, 30], [-1, 30], [-1, 0]]);
  assert.deepEqual(crop, text);
});

test('crops at least 1.5 times taller than wide are rotated counter-clockwise', () => {
  const image = noiseImage(40, 40, 3);
  const tall = cropQuad(image, rect(4, 2, 10, 15));
  assert.deepEqual([tall.width, tall.height], [15, 10]);
  const source = subImage(image, 4, 2, 10, 15);
  for (let r = 0; r < 10; r++) {
    for (let c = 0; c < 15; c++) assert.deepEqual(pixel(tall, c, r), pixel(source, 9 - r, c), `row ${r} col ${c}`);
  }
  const notTall = cropQuad(image, rect(4, 2, 10, 14));
  assert.deepEqual(notTall, subImage(image, 4, 2, 10, 14));
});

test('bicubic sampling keeps a constant image constant under any perspective', () => {
  const data = new Uint8Array(64 * 48 * 3);
  for (let i = 0; i < data.length; i += 3) data.set([37, 200, 5], i);
  const image: RgbImage = { width: 64, height: 48, data };
  const crop = cropQuad(image, [[3.3, 5.7], [60.2, -4.1], [70.5, 40.9], [-6.4, 52.2]]);
  assert.ok(crop.width > 60 && crop.height > 40);
  for (let i = 0; i < crop.data.length; i += 3) assert.deepEqual([...crop.data.subarray(i, i + 3)], [37, 200, 5]);
});

test('half-pixel shifts interpolate, and overshoot at hard edges is clamped', () => {
  const width = 40;
  const data = new Uint8Array(width * 10 * 3);
  // Rows 0-4: a ramp of 5 per pixel; rows 5-9: a step from 0 to 255 at x = 20.
  for (let y = 0; y < 10; y++) for (let x = 0; x < width; x++) data.fill(y < 5 ? 5 * x : x < 20 ? 0 : 255, (y * width + x) * 3, (y * width + x) * 3 + 3);
  const image: RgbImage = { width, height: 10, data };
  const crop = cropQuad(image, [[0.5, 0], [39.5, 0], [39.5, 10], [0.5, 10]]);
  const at = (x: number, y: number): number => crop.data[(y * crop.width + x) * 3]!;
  for (let x = 1; x < 37; x++) assert.ok(Math.abs(at(x, 2) - 5 * (x + 0.5)) <= 1, `ramp at x ${x}: ${at(x, 2)}`);
  // Keys' cubic (A = -0.75) rings at a step: -24 before it and 279 after it, clamped.
  assert.deepEqual([at(17, 7), at(18, 7), at(19, 7), at(20, 7), at(21, 7)], [0, 0, 128, 255, 255]);
});

test('degenerate and oversized quads are refused with a clear error', () => {
  const image = noiseImage(20, 20);
  assert.throws(() => cropQuad(image, [[5, 5], [5, 5], [5, 9], [5, 9]]), /quad is too small to crop: width 0, height 4/);
  assert.throws(() => cropQuad(image, [[5, 5], [5.5, 5], [5.5, 9], [5, 9]]), /width 0/);
  assert.throws(() => cropQuad(image, [[0, 0], [10, 0], [20, 0], [30, 0]]), /quad is degenerate/);
  assert.throws(() => cropQuad(image, [[0, 0], [Number.NaN, 0], [10, 10], [0, 10]]), /finite coordinates/);
  assert.throws(() => cropQuad(image, [[0, 0], [1, 1]] as unknown as Quad), /four \[x, y\] points/);
  assert.throws(() => cropQuad(image, rect(0, 0, MAX_CROP_SIDE + 1, 2)), /too large to crop: width 16385/);
  assert.equal(cropQuad(image, rect(0, 0, 1, 1)).width, 1);
  assert.throws(() => cropQuad({ width: 2, height: 2, data: new Uint8Array(11) }, rect(0, 0, 1, 1)), /image.data must be a Uint8Array of width \* height \* 3 = 12 bytes/);
});

test('rotate180 turns the image upside down', () => {
  const image: RgbImage = { width: 2, height: 2, data: Uint8Array.from([1, 1, 1, 2, 2, 2, 3, 3, 3, 4, 4, 4]) };
  assert.deepEqual([...rotate180(image).data], [4, 4, 4, 3, 3, 3, 2, 2, 2, 1, 1, 1]);
  const noise = noiseImage(7, 5);
  assert.deepEqual(rotate180(rotate180(noise)), noise);
  assert.throws(() => rotate180({ width: 0, height: 2, data: new Uint8Array(0) }), /image width and height/);
});
