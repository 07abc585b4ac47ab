/**
 * Plane geometry for text boxes: convex hull, minimum-area rectangle and the
 * two corner orderings PaddleOCR uses. Pure functions on plain arrays, no Node
 * APIs. Coordinates are image pixels, x right, y down, as OpenCV's.
 */
import type { Point, Quad } from './types.ts';

/** A rectangle at any angle: its corners (in no particular order) and side lengths. */
export interface RotatedRect {
  readonly corners: Quad;
  /** Side along the hull edge the rectangle was fitted to. */
  readonly width: number;
  readonly height: number;
}

export function distance(a: Point, b: Point): number {
  return Math.hypot(a[0] - b[0], a[1] - b[1]);
}

/** Shoelace area, signed: positive when the points turn clockwise on screen (y down). */
export function signedArea(points: readonly Point[]): number {
  let twice = 0;
  for (let i = 0, j = points.length - 1; i < points.length; j = i++) {
    const p = points[j]!;
    const q = points[i]!;
    twice += p[0] * q[1] - q[0] * p[1];
  }
  return twice / 2;
}

export function polygonArea(points: readonly Point[]): number {
  return Math.abs(signedArea(points));
}

export function polygonPerimeter(points: readonly Point[]): number {
  let length = 0;
  for (let i = 0, j = points.length - 1; i < points.length; j = i++) length += distance(points[j]!, points[i]!);
  return length;
}

/** Rounds to the nearest integer, ties to even, as numpy's round and OpenCV's cvRound do. */
export function roundHalfEven(value: number): number {
  const floor = Math.floor(value);
  if (value - floor !== 0.5) return Math.round(value);
  return floor % 2 === 0 ? floor : floor + 1;
}

function cross(o: Point, a: Point, b: Point): number {
  return (a[0] - o[0]) * (b[1] - o[1]) - (a[1] - o[1]) * (b[0] - o[0]);
}

/**
 * Convex hull by Andrew's monotone chain, without collinear points. The
 * result runs clockwise on screen (y down); a single point or two points come
 * back as they are (deduplicated).
 */
export function convexHull(points: readonly Point[]): Point[] {
  const sorted = [...points].sort((a, b) => a[0] - b[0] || a[1] - b[1]);
  return hullOfSorted(sorted);
}

/**
 * Monotone chain over points already sorted lexicographically, by x then y or
 * by y then x (the latter is a mirrored frame, so the hull runs the other way).
 */
export function hullOfSorted(sorted: readonly Point[]): Point[] {
  const n = sorted.length;
  if (n < 3) {
    const unique: Point[] = [];
    for (const p of sorted) if (!unique.some((q) => q[0] === p[0] && q[1] === p[1])) unique.push(p);
    return unique;
  }
  const hull: Point[] = [];
  for (let i = 0; i < n; i++) {
    const p = sorted[i]!;
    while (hull.length >= 2 && cross(hull[hull.length - 2]!, hull[hull.length - 1]!, p) <= 0) hull.pop();
    hull.push(p);
  }
  const lowerLength = hull.length + 1;
  for (let i = n - 2; i >= 0; i--) {
    const p = sorted[i]!;
    while (hull.length >= lowerLength && cross(hull[hull.length - 2]!, hull[hull.length - 1]!, p) <= 0) hull.pop();
    hull.push(p);
  }
  hull.pop();
  return hull;
}

/**
 * The smallest-area rectangle enclosing the points, as cv2.minAreaRect then
 * cv2.boxPoints compute it. One side of the optimum lies along a hull edge
 * (Freeman and Shapira), so each hull edge is tried as a direction; hulls of
 * pixel regions have few vertices, so the plain per-edge scan is cheap.
 */
export function minAreaRect(points: readonly Point[]): RotatedRect {
  if (points.length === 0) throw new RangeError('minAreaRect: points is empty');
  return minAreaRectOfHull(convexHull(points));
}

/** minAreaRect for points that are already a convex hull (either direction, no repeats). */
export function minAreaRectOfHull(hull: readonly Point[]): RotatedRect {
  if (hull.length === 0) throw new RangeError('minAreaRectOfHull: hull is empty');
  if (hull.length === 1) {
    const p = hull[0]!;
    return { corners: [[p[0], p[1]], [p[0], p[1]], [p[0], p[1]], [p[0], p[1]]], width: 0, height: 0 };
  }
  if (hull.length === 2) {
    const [a, b] = hull as [Point, Point];
    return { corners: [[a[0], a[1]], [b[0], b[1]], [b[0], b[1]], [a[0], a[1]]], width: distance(a, b), height: 0 };
  }
  let best = { area: Infinity, ux: 1, uy: 0, minU: 0, maxU: 0, minV: 0, maxV: 0 };
  const n = hull.length;
  for (let i = 0; i < n; i++) {
    const a = hull[i]!;
    const b = hull[(i + 1) % n]!;
    const length = distance(a, b);
    const ux = (b[0] - a[0]) / length;
    const uy = (b[1] - a[1]) / length;
    let minU = Infinity, maxU = -Infinity, minV = Infinity, maxV = -Infinity;
    for (const p of hull) {
      const u = p[0] * ux + p[1] * uy;
      const v = -p[0] * uy + p[1] * ux;
      if (u < minU) minU = u;
      if (u > maxU) maxU = u;
      if (v < minV) minV = v;
      if (v > maxV) maxV = v;
    }
    const area = (maxU - minU) * (maxV - minV);
    if (area < best.area) best = { area, ux, uy, minU, maxU, minV, maxV };
  }
  const { ux, uy, minU, maxU, minV, maxV } = best;
  const at = (u: number, v: number): Point => [u * ux - v * uy, u * uy + v * ux];
  return {
    corners: [at(minU, minV), at(maxU, minV), at(maxU, maxV), at(minU, maxV)],
    width: maxU - minU,
    height: maxV - minV,
  };
}

/**
 * get_mini_boxes' corner order: sort by x (stably); of the two leftmost the
 * upper is top-left and the other bottom-left, of the two rightmost the upper
 * is top-right. Returns [TL, TR, BR, BL].
 */
export function orderMiniBox(corners: Quad): Quad {
  const [p0, p1, p2, p3] = [...corners].sort((a, b) => a[0] - b[0]) as Quad;
  const [topLeft, bottomLeft] = p1[1] > p0[1] ? [p0, p1] : [p1, p0];
  const [topRight, bottomRight] = p3[1] > p2[1] ? [p2, p3] : [p3, p2];
  return [topLeft, topRight, bottomRight, bottomLeft];
}

/**
 * order_points_clockwise as PaddleOCR's detector applies it before cropping:
 * top-left has the smallest x+y, bottom-right the largest; of the other two,
 * top-right has the smallest y-x and bottom-left the largest. Ties go to the
 * first point, as numpy's argmin/argmax.
 */
export function orderPointsClockwise(points: Quad): Quad {
  const sums = points.map((p) => p[0] + p[1]);
  const first = argExtreme(sums, (a, b) => a < b);
  const last = argExtreme(sums, (a, b) => a > b);
  const rest = points.filter((_, i) => i !== first && i !== last);
  const diffs = rest.map((p) => p[1] - p[0]);
  const topRight = rest[argExtreme(diffs, (a, b) => a < b)]!;
  const bottomLeft = rest[argExtreme(diffs, (a, b) => a > b)]!;
  const copy = (p: Point): Point => [p[0], p[1]];
  return [copy(points[first]!), copy(topRight), copy(points[last]!), copy(bottomLeft)];
}

function argExtreme(values: readonly number[], better: (a: number, b: number) => boolean): number {
  let index = 0;
  for (let i = 1; i < values.length; i++) if (better(values[i]!, values[index]!)) index = i;
  return index;
}
