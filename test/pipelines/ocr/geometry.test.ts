/**
 * The OCR pipeline's plane geometry: hull, minimum-area rectangle (as
 * cv2.minAreaRect + boxPoints), and PaddleOCR's two corner orderings.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import {
  convexHull,
  distance,
  minAreaRect,
  orderMiniBox,
  orderPointsClockwise,
  polygonArea,
  polygonPerimeter,
  roundHalfEven,
} from '../../../pipelines/ocr/lib/geometry.ts';
import type { Point, Quad } from '../../../pipelines/ocr/lib/types.ts';

const sortPoints = (points: readonly Point[]): Point[] => [...points].sort((a, b) => a[0] - b[0] || a[1] - b[1]);

function assertPointsClose(actual: readonly Point[], expected: readonly Point[], tolerance = 1e-9): void {
  assert.equal(actual.length, expected.length);
  const a = sortPoints(actual);
  const e = sortPoints(expected);
  for (let i = 0; i < a.length; i++) {
    assert.ok(distance(a[i]!, e[i]!) <= tolerance, `point ${i}: ${JSON.stringify(a[i])} vs ${JSON.stringify(e[i])}`);
  }
}

test('convexHull keeps the extreme points and drops interior and collinear ones', () => {
  const points: Point[] = [[0, 0], [5, 0], [10, 0], [10, 10], [0, 10], [5, 5], [3, 7], [0, 5]];
  assertPointsClose(convexHull(points), [[0, 0], [10, 0], [10, 10], [0, 10]]);
  assert.deepEqual(convexHull([[2, 3], [2, 3]]), [[2, 3]]);
  assert.equal(convexHull([]).length, 0);
});

test('minAreaRect of an axis-aligned point grid is its bounding box', () => {
  const points: Point[] = [];
  for (let y = 50; y <= 69; y++) for (let x = 100; x <= 199; x++) points.push([x, y]);
  const rect = minAreaRect(points);
  assert.deepEqual([Math.min(rect.width, rect.height), Math.max(rect.width, rect.height)], [19, 99]);
  assertPointsClose(rect.corners, [[100, 50], [199, 50], [199, 69], [100, 69]], 1e-9);
});

test('minAreaRect of a rectangle rotated by 30 degrees recovers it', () => {
  const angle = Math.PI / 6;
  const [cx, cy, w, h] = [200, 150, 120, 40];
  const corner = (u: number, v: number): Point => [
    cx + u * Math.cos(angle) - v * Math.sin(angle),
    cy + u * Math.sin(angle) + v * Math.cos(angle),
  ];
  const expected = [corner(-w / 2, -h / 2), corner(w / 2, -h / 2), corner(w / 2, h / 2), corner(-w / 2, h / 2)];
  const points: Point[] = [...expected];
  for (let i = 0; i < 200; i++) points.push(corner((Math.sin(i * 7.3) * w) / 2, (Math.cos(i * 3.1) * h) / 2));
  const rect = minAreaRect(points);
  assert.ok(Math.abs(rect.width * rect.height - w * h) < 1e-6, `area ${rect.width * rect.height}`);
  assertPointsClose(rect.corners, expected, 1e-6);
});

test('minAreaRect of a point cloud is no larger than any rectangle found by sweeping the angle', () => {
  let state = 42;
  const random = (): number => {
    state = (state * 1103515245 + 12345) >>> 0;
    return state / 2 ** 32;
  };
  for (let trial = 0; trial < 20; trial++) {
    const points: Point[] = [];
    for (let i = 0; i < 12; i++) points.push([Math.round(random() * 100), Math.round(random() * 40 + random() * 60 * (i % 3))]);
    const rect = minAreaRect(points);
    let sweepBest = Infinity;
    for (let step = 0; step < 18000; step++) {
      const angle = (step / 18000) * Math.PI;
      const [c, s] = [Math.cos(angle), Math.sin(angle)];
      const us = points.map(([x, y]) => x * c + y * s);
      const vs = points.map(([x, y]) => -x * s + y * c);
      sweepBest = Math.min(sweepBest, (Math.max(...us) - Math.min(...us)) * (Math.max(...vs) - Math.min(...vs)));
    }
    assert.ok(rect.width * rect.height <= sweepBest + 1e-6, `trial ${trial}: ${rect.width * rect.height} > ${sweepBest}`);
    assert.ok(rect.width * rect.height >= sweepBest * 0.999, `trial ${trial}: sweep found nothing near ${rect.width * rect.height}`);
    for (const p of points) {
      const inside = rect.corners.every((a, i) => {
        const b = rect.corners[(i + 1) % 4]!;
        return (b[0] - a[0]) * (p[1] - a[1]) - (b[1] - a[1]) * (p[0] - a[0]) >= -1e-6;
      });
      const insideReversed = rect.corners.every((a, i) => {
        const b = rect.corners[(i + 1) % 4]!;
        return (b[0] - a[0]) * (p[1] - a[1]) - (b[1] - a[1]) * (p[0] - a[0]) <= 1e-6;
      });
      assert.ok(inside || insideReversed, `trial ${trial}: ${JSON.stringify(p)} outside`);
    }
  }
});

test('minAreaRect of one point and of a segment has zero height', () => {
  assert.equal(minAreaRect([[3, 4]]).width, 0);
  const segment = minAreaRect([[0, 0], [3, 4], [1.5, 2]]);
  assert.equal(Math.max(segment.width, segment.height), 5);
  assert.equal(Math.min(segment.width, segment.height), 0);
  assert.throws(() => minAreaRect([]), /points is empty/);
});

test('orderMiniBox orders as get_mini_boxes: TL, TR, BR, BL', () => {
  assert.deepEqual(orderMiniBox([[10, 5], [0, 5], [0, 0], [10, 0]]), [[0, 0], [10, 0], [10, 5], [0, 5]]);
  // Rotated clockwise a little: top-left is the leftmost upper corner.
  const box: Quad = [[20, 12], [2, 3], [0, 8], [18, 17]];
  assert.deepEqual(orderMiniBox(box), [[2, 3], [20, 12], [18, 17], [0, 8]]);
});

test('orderPointsClockwise picks TL by x+y and TR by y-x', () => {
  assert.deepEqual(orderPointsClockwise([[10, 5], [0, 5], [10, 0], [0, 0]]), [[0, 0], [10, 0], [10, 5], [0, 5]]);
  // A steep box: the x+y rule and the sort-by-x rule disagree, as in PaddleOCR.
  assert.deepEqual(orderPointsClockwise([[2, 3], [20, 12], [18, 17], [0, 8]]), [[2, 3], [20, 12], [18, 17], [0, 8]]);
  // An exact 45° diamond ties both rules; numpy's first-index ties repeat a corner, and so do we.
  assert.deepEqual(orderPointsClockwise([[5, 0], [10, 5], [5, 10], [0, 5]]), [[5, 0], [5, 10], [10, 5], [5, 10]]);
});

test('area, perimeter and rounding helpers', () => {
  const square: Point[] = [[0, 0], [4, 0], [4, 3], [0, 3]];
  assert.equal(polygonArea(square), 12);
  assert.equal(polygonArea([...square].reverse()), 12);
  assert.equal(polygonPerimeter(square), 14);
  assert.deepEqual([0.5, 1.5, 2.5, -0.5, -1.5, 2.4, 2.6].map(roundHalfEven), [0, 2, 2, 0, -2, 2, 3]);
});
