/**
 * DB post-processing on synthetic probability maps: regions become boxes grown
 * by the unclip distance, scaled to the source, filtered and sorted as
 * PaddleOCR 2.x does.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { boxesFromProbabilityMap, compileDbOptions, sortBoxes, unclip } from '../../../pipelines/ocr/lib/db-postprocess.ts';
import { distance, minAreaRect } from '../../../pipelines/ocr/lib/geometry.ts';
import type { DetectedBox, Point, Quad } from '../../../pipelines/ocr/lib/types.ts';

interface ProbabilityMap {
  readonly data: Float32Array;
  readonly width: number;
  readonly height: number;
}

function blankMap(width: number, height: number): ProbabilityMap {
  return { data: new Float32Array(width * height), width, height };
}

/** Fills pixels x0..x1, y0..y1 (inclusive) with value. */
function fillRect(map: ProbabilityMap, x0: number, y0: number, x1: number, y1: number, value: number): void {
  for (let y = y0; y <= y1; y++) map.data.fill(value, y * map.width + x0, y * map.width + x1 + 1);
}

/** Fills the pixels whose centres lie in a w x h rectangle centred at (cx, cy), turned by angle radians. */
function fillRotatedRect(map: ProbabilityMap, cx: number, cy: number, w: number, h: number, angle: number, value: number): void {
  const [cos, sin] = [Math.cos(angle), Math.sin(angle)];
  for (let y = 0; y < map.height; y++) {
    for (let x = 0; x < map.width; x++) {
      const u = (x - cx) * cos + (y - cy) * sin;
      const v = -(x - cx) * sin + (y - cy) * cos;
      if (Math.abs(u) <= w / 2 && Math.abs(v) <= h / 2) map.data[y * map.width + x] = value;
    }
  }
}

function detect(map: ProbabilityMap, srcWidth = map.width, srcHeight = map.height, options = {}): DetectedBox[] {
  return boxesFromProbabilityMap(map.data, map.width, map.height, srcWidth, srcHeight, options);
}

function assertQuadClose(actual: Quad, expected: Quad, tolerance: number): void {
  for (let i = 0; i < 4; i++) {
    assert.ok(
      Math.abs(actual[i]![0] - expected[i]![0]) <= tolerance && Math.abs(actual[i]![1] - expected[i]![1]) <= tolerance,
      `corner ${i}: ${JSON.stringify(actual)} vs ${JSON.stringify(expected)}`,
    );
  }
}

test('one rectangle becomes one box grown by the unclip distance and scaled to the source', () => {
  const map = blankMap(320, 320);
  fillRect(map, 100, 50, 199, 69, 0.9);
  const boxes = detect(map, 640, 480);
  assert.equal(boxes.length, 1);
  const { box, score } = boxes[0]!;
  assert.ok(Math.abs(score - 0.9) < 1e-6, `score ${score}`);
  // Pixel centres span 99 x 19; d = 99 * 19 * 1.5 / (2 * (99 + 19)) = 11.955 on each side.
  const d = (99 * 19 * 1.5) / (2 * 118);
  const [sx, sy] = [640 / 320, 480 / 320];
  const expected: Quad = [
    [(100 - d) * sx, (50 - d) * sy],
    [(199 + d) * sx, (50 - d) * sy],
    [(199 + d) * sx, (69 + d) * sy],
    [(100 - d) * sx, (69 + d) * sy],
  ];
  // Clipper works in whole map pixels: at most one map pixel off, then scaled.
  assertQuadClose(box, expected, 1 * Math.max(sx, sy) + 0.5);
  // Exactly: Clipper's integer outline spans x 88..211, y 38..81; x * 2, y * 1.5 rounded half to even.
  assert.deepEqual(box, [[176, 57], [422, 57], [422, 122], [176, 122]]);
  for (const [x, y] of box) assert.ok(Number.isInteger(x) && Number.isInteger(y));
});

test('scaled coordinates round half to even, as numpy does', () => {
  // A dyadic map size keeps x / 256 * 384 exact: the right edge at map x 211 lands on 316.5.
  const map = blankMap(256, 256);
  fillRect(map, 100, 50, 199, 69, 0.9);
  assert.deepEqual(detect(map, 384, 384)[0]!.box, [[132, 57], [316, 57], [316, 122], [132, 122]]);
});

test('the box score covers the outline rows that cv2.fillPoly draws', () => {
  const map = blankMap(200, 100);
  fillRect(map, 20, 20, 119, 38, 0.9);
  fillRect(map, 20, 39, 119, 39, 0.35);
  const [only] = detect(map);
  assert.ok(only);
  assert.ok(Math.abs(only.score - (19 * 0.9 + 0.35) / 20) < 1e-6, `score ${only.score}`);
});

test('the box score is the mean probability over the box, and weak regions are dropped', () => {
  const map = blankMap(200, 200);
  fillRect(map, 20, 20, 119, 39, 0.9);
  fillRect(map, 70, 20, 119, 39, 0.5);
  fillRect(map, 20, 100, 119, 119, 0.5);
  const boxes = detect(map);
  assert.equal(boxes.length, 1, 'the all-0.5 region is above the bitmap threshold but below boxThreshold');
  assert.ok(Math.abs(boxes[0]!.score - 0.7) < 1e-6, `score ${boxes[0]!.score}`);
  assert.ok(boxes[0]!.box[0][1] < 30);
  assert.equal(detect(map, 200, 200, { boxThreshold: 0.4 }).length, 2);
  assert.equal(detect(map, 200, 200, { threshold: 0.6 }).length, 1);
});

test('specks smaller than minSize are dropped', () => {
  const map = blankMap(100, 100);
  fillRect(map, 10, 10, 10, 10, 0.95);
  fillRect(map, 30, 10, 31, 11, 0.95);
  fillRect(map, 50, 10, 52, 12, 0.95);
  fillRect(map, 10, 50, 12, 80, 0.95);
  assert.deepEqual(detect(map), []);
  fillRect(map, 60, 60, 69, 69, 0.95);
  assert.equal(detect(map).length, 1);
  // Kept in the map, but 3 px or less once scaled down to the source: dropped.
  assert.equal(detect(map, 20, 20).length, 0);
  assert.equal(detect(map, 40, 40).length, 1);
});

test('two lines come out top to bottom, boxes on one line left to right', () => {
  const map = blankMap(400, 200);
  fillRect(map, 20, 120, 300, 139, 0.9);
  // One line, two words: the right word's top is 5 px higher, so it is found and sorted first by y.
  fillRect(map, 200, 35, 300, 59, 0.9);
  fillRect(map, 20, 40, 150, 59, 0.9);
  const boxes = detect(map);
  assert.equal(boxes.length, 3);
  const lefts = boxes.map((b) => b.box[0][0]);
  const tops = boxes.map((b) => b.box[0][1]);
  assert.ok(lefts[0]! < 30 && lefts[1]! > 180 && lefts[2]! < 30, JSON.stringify(boxes.map((b) => b.box[0])));
  assert.ok(tops[0]! > tops[1]! && tops[2]! > 100);
});

test('sortBoxes sorts by top-left y then x, with a 10 px same-line tolerance', () => {
  const at = (x: number, y: number, name: string) => ({ name, box: [[x, y], [x + 50, y], [x + 50, y + 20], [x, y + 20]] as Quad });
  const names = (boxes: { name: string; box: Quad }[]): string[] => sortBoxes(boxes).map((b) => b.name);
  // b and a are 9 px apart: one line, a first. d and c are exactly 10 px apart: two lines.
  assert.deepEqual(names([at(10, 200, 'c'), at(300, 50, 'b'), at(10, 59, 'a'), at(300, 190, 'd'), at(10, 75, 'e')]), ['a', 'b', 'e', 'd', 'c']);
  assert.deepEqual(names([at(10, 199, 'c'), at(300, 190, 'd')]), ['c', 'd']);
  assert.deepEqual(sortBoxes([]), []);
});

test('a rotated rectangle gives a rotated quad', () => {
  const map = blankMap(320, 320);
  const angle = (20 * Math.PI) / 180;
  fillRotatedRect(map, 160, 160, 200, 30, angle, 0.9);
  const boxes = detect(map);
  assert.equal(boxes.length, 1);
  const [tl, tr, br, bl] = boxes[0]!.box;
  const topAngle = (Math.atan2(tr[1] - tl[1], tr[0] - tl[0]) * 180) / Math.PI;
  assert.ok(Math.abs(topAngle - 20) < 1.5, `top edge at ${topAngle}°`);
  const d = (200 * 30 * 1.5) / (2 * 230);
  assert.ok(Math.abs(distance(tl, tr) - (200 + 2 * d)) < 4, `width ${distance(tl, tr)}`);
  assert.ok(Math.abs(distance(tl, bl) - (30 + 2 * d)) < 4, `height ${distance(tl, bl)}`);
  assert.ok(Math.abs(distance(br, bl) - distance(tl, tr)) < 2);
  assert.ok(tl[0] < tr[0] && tl[1] < bl[1] && br[0] > bl[0]);
});

test('boxes at the map border are clipped to the source image', () => {
  const map = blankMap(100, 100);
  fillRect(map, 0, 0, 59, 19, 0.9);
  const [only] = detect(map, 200, 200);
  assert.ok(only);
  for (const [x, y] of only.box) assert.ok(x >= 0 && x <= 199 && y >= 0 && y <= 199, JSON.stringify(only.box));
  assert.deepEqual(only.box[0], [0, 0]);
});

test('regions touching only at a corner are one region (8-connected)', () => {
  const map = blankMap(120, 80);
  fillRect(map, 10, 10, 49, 29, 0.9);
  fillRect(map, 50, 30, 89, 49, 0.9);
  assert.equal(detect(map, 120, 80, { boxThreshold: 0 }).length, 1);
  fillRect(map, 50, 30, 50, 30, 0);
  assert.equal(detect(map, 120, 80, { boxThreshold: 0 }).length, 2);
});

test('maxCandidates caps the regions examined, in raster order', () => {
  const map = blankMap(200, 200);
  fillRect(map, 20, 20, 119, 39, 0.9);
  fillRect(map, 20, 100, 119, 119, 0.9);
  const boxes = detect(map, 200, 200, { maxCandidates: 1 });
  assert.equal(boxes.length, 1);
  assert.ok(boxes[0]!.box[0][1] < 30);
});

test('unclip grows a rectangle by area * ratio / perimeter on each side', () => {
  const grown = minAreaRect(unclip([[10, 10], [110, 10], [110, 30], [10, 30]], 1.5));
  const d = (100 * 20 * 1.5) / 240;
  assert.ok(Math.abs(Math.max(grown.width, grown.height) - (100 + 2 * d)) <= 1.01);
  assert.ok(Math.abs(Math.min(grown.width, grown.height) - (20 + 2 * d)) <= 1.01);
  assert.deepEqual(unclip([[5, 5], [5, 5], [5, 5], [5, 5]], 1.5), []);
});

test('bad inputs name the field', () => {
  const map = blankMap(10, 10);
  assert.throws(() => boxesFromProbabilityMap(map.data, 10, 9, 10, 10), /map has 100 values, expected mapWidth \* mapHeight = 90/);
  assert.throws(() => boxesFromProbabilityMap(map.data, 0, 10, 10, 10), /mapWidth must be an integer in \[1, 32767\]/);
  assert.throws(() => boxesFromProbabilityMap(map.data, 10, 10, 10, 40000), /srcHeight must be an integer/);
  assert.throws(() => boxesFromProbabilityMap(map.data, 10, 10, 1.5, 10), /srcWidth/);
  assert.throws(() => boxesFromProbabilityMap([] as unknown as Float32Array, 10, 10, 10, 10), /map must be a Float32Array/);
  assert.throws(() => compileDbOptions({ threshold: 1.5 }), /DbOptions.threshold must be a number in \[0, 1\], got 1.5/);
  assert.throws(() => compileDbOptions({ boxThreshold: Number.NaN }), /DbOptions.boxThreshold/);
  assert.throws(() => compileDbOptions({ unclipRatio: -1 }), /DbOptions.unclipRatio/);
  assert.throws(() => compileDbOptions({ maxCandidates: 0 }), /DbOptions.maxCandidates/);
  assert.throws(() => compileDbOptions({ maxCandidates: 1_000_001 }), /DbOptions.maxCandidates/);
  assert.throws(() => compileDbOptions({ minSize: -1 }), /DbOptions.minSize/);
  assert.equal(compileDbOptions({ maxCandidates: 1_000_000, threshold: 1, boxThreshold: 0 }).maxCandidates, 1_000_000);
  assert.deepEqual(compileDbOptions(), { threshold: 0.3, boxThreshold: 0.6, unclipRatio: 1.5, maxCandidates: 1000, minSize: 3 });
});

test('a 960x960 map with 50 text regions post-processes in a few milliseconds', () => {
  const map = blankMap(960, 960);
  for (let row = 0; row < 10; row++) {
    for (let column = 0; column < 5; column++) {
      fillRect(map, 20 + column * 190, 20 + row * 94, 20 + column * 190 + 150, 20 + row * 94 + 40, 0.85);
    }
  }
  // Faint noise below the bitmap threshold, so every pixel is read.
  for (let i = 0; i < map.data.length; i += 7) if (map.data[i] === 0) map.data[i] = 0.1;
  for (let i = 0; i < 5; i++) detect(map, 1920, 1920);
  const runs: number[] = [];
  let boxes: DetectedBox[] = [];
  for (let i = 0; i < 9; i++) {
    const start = performance.now();
    boxes = detect(map, 1920, 1920);
    runs.push(performance.now() - start);
  }
  runs.sort((a, b) => a - b);
  console.log(`960x960 map, 50 regions: median ${runs[4]!.toFixed(2)} ms, min ${runs[0]!.toFixed(2)} ms`);
  assert.equal(boxes.length, 50);
  assert.ok(runs[4]! < 1000, 'far slower than expected');
  const first: Point = boxes[0]!.box[0];
  assert.ok(first[0] < 40 && first[1] < 40);
});
