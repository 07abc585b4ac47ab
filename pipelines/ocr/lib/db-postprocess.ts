/**
 * PaddleOCR's DB post-processing (DBPostProcess with the 2.x defaults, then
 * the detector's filter_tag_det_res and the system's sorted_boxes): from the
 * detection model's probability map to text boxes in source-image pixels.
 * Pure TypeScript on typed arrays, no Node APIs.
 */
import { distance, hullOfSorted, minAreaRect, minAreaRectOfHull, orderMiniBox, orderPointsClockwise, polygonArea, polygonPerimeter, roundHalfEven, signedArea } from './geometry.ts';
import type { DetectedBox, Point, Quad } from './types.ts';

export interface DbOptions {
  /** A map pixel is text when its probability is above this. Default 0.3. */
  readonly threshold: number;
  /** A box is kept when the mean probability inside it is at least this. Default 0.6. */
  readonly boxThreshold: number;
  /** Boxes grow by area * unclipRatio / perimeter on each side. Default 1.5. */
  readonly unclipRatio: number;
  /**
   * At most this many regions are examined, in raster order of their first
   * pixel (OpenCV counts hole contours too and may list them in another order;
   * only maps with more regions than this can tell). Default 1000.
   */
  readonly maxCandidates: number;
  /** Boxes whose shorter side is below this (map pixels) are dropped; after growing, below this + 2. Default 3. */
  readonly minSize: number;
}

export const DEFAULT_DB_OPTIONS: DbOptions = Object.freeze({
  threshold: 0.3,
  boxThreshold: 0.6,
  unclipRatio: 1.5,
  maxCandidates: 1000,
  minSize: 3,
});

/** Boxes sorted on top-left y within this many pixels count as one line and order by x. */
const SAME_LINE_PX = 10;
/** Boxes with a side of at most this many source pixels are dropped (filter_tag_det_res). */
const MIN_FINAL_SIDE_PX = 3;
/** Clipper's default arc tolerance, in the integer units it offsets in. */
const ARC_TOLERANCE = 0.25;

/**
 * Text boxes from a DB probability map of mapWidth x mapHeight (row-major),
 * scaled to a srcWidth x srcHeight source image, in reading order. Each box
 * is [TL, TR, BR, BL] in integer source pixels; score is the mean probability
 * inside the box before it was grown.
 */
export function boxesFromProbabilityMap(
  map: Float32Array,
  mapWidth: number,
  mapHeight: number,
  srcWidth: number,
  srcHeight: number,
  options?: Partial<DbOptions>,
): DetectedBox[] {
  checkDimension('mapWidth', mapWidth);
  checkDimension('mapHeight', mapHeight);
  checkDimension('srcWidth', srcWidth);
  checkDimension('srcHeight', srcHeight);
  if (!(map instanceof Float32Array)) throw new TypeError('map must be a Float32Array');
  if (map.length !== mapWidth * mapHeight) {
    throw new RangeError(`map has ${map.length} values, expected mapWidth * mapHeight = ${mapWidth * mapHeight}`);
  }
  const compiled = compileDbOptions(options);
  const scored: DetectedBox[] = [];
  const scratch = { mask: new Uint8Array(0) };
  forEachRegionHull(map, mapWidth, mapHeight, compiled.threshold, compiled.maxCandidates, (hull) => {
    const box = boxFromRegion(hull, map, mapWidth, mapHeight, srcWidth, srcHeight, compiled, scratch);
    if (box) scored.push(box);
  });
  return sortBoxes(filterTagDetRes(scored, srcWidth, srcHeight));
}

function checkDimension(name: string, value: number): void {
  if (!Number.isInteger(value) || value < 1 || value > 0x7fff) {
    throw new RangeError(`${name} must be an integer in [1, 32767], got ${String(value).slice(0, 40)}`);
  }
}

/** Options validated once, defaults filled in. */
export function compileDbOptions(options: Partial<DbOptions> = {}): DbOptions {
  const merged = { ...DEFAULT_DB_OPTIONS, ...options };
  const inUnit = (name: keyof DbOptions): void => {
    const value = merged[name];
    if (typeof value !== 'number' || !(value >= 0 && value <= 1)) {
      throw new RangeError(`DbOptions.${name} must be a number in [0, 1], got ${String(value).slice(0, 40)}`);
    }
  };
  inUnit('threshold');
  inUnit('boxThreshold');
  if (typeof merged.unclipRatio !== 'number' || !(merged.unclipRatio >= 0 && merged.unclipRatio <= 100)) {
    throw new RangeError(`DbOptions.unclipRatio must be a number in [0, 100], got ${String(merged.unclipRatio).slice(0, 40)}`);
  }
  if (!Number.isInteger(merged.maxCandidates) || merged.maxCandidates < 1 || merged.maxCandidates > 1_000_000) {
    throw new RangeError(`DbOptions.maxCandidates must be an integer in [1, 1000000], got ${String(merged.maxCandidates).slice(0, 40)}`);
  }
  if (typeof merged.minSize !== 'number' || !(merged.minSize >= 0 && merged.minSize <= 10_000)) {
    throw new RangeError(`DbOptions.minSize must be a number in [0, 10000], got ${String(merged.minSize).slice(0, 40)}`);
  }
  return Object.freeze(merged);
}

/**
 * Calls back with the convex hull of each 8-connected region of map > threshold,
 * at most maxCandidates of them, in raster order of their first pixel.
 * OpenCV's outer contour of a region passes through its boundary pixel
 * centres, so its hull is the hull of the region's pixels, and only each
 * row's leftmost and rightmost pixel can be on it. Holes (RETR_LIST's inner
 * contours) are not reported. Regions are found as horizontal runs joined by
 * union-find, which touches each pixel once.
 */
function forEachRegionHull(
  map: Float32Array,
  width: number,
  height: number,
  threshold: number,
  maxCandidates: number,
  visit: (hull: Point[]) => void,
): void {
  const runs = new RunTable();
  let previousBegin = 0;
  let previousEnd = 0;
  for (let y = 0; y < height; y++) {
    const rowBegin = runs.count;
    const base = y * width;
    for (let x = 0; x < width; x++) {
      if (!(map[base + x]! > threshold)) continue;
      const start = x;
      while (x + 1 < width && map[base + x + 1]! > threshold) x++;
      runs.push(start, x, y);
    }
    // Runs in adjacent rows touch (8-connected) when their x ranges overlap or meet diagonally.
    let p = previousBegin;
    for (let r = rowBegin; r < runs.count; r++) {
      const from = runs.starts[r]! - 1;
      const to = runs.ends[r]! + 1;
      while (p < previousEnd && runs.ends[p]! < from) p++;
      for (let q = p; q < previousEnd && runs.starts[q]! <= to; q++) runs.union(q, r);
    }
    previousBegin = rowBegin;
    previousEnd = runs.count;
  }

  // Number the regions by their first run; bucket runs by region, keeping raster order.
  const count = runs.count;
  const region = new Int32Array(count);
  let regions = 0;
  for (let r = 0; r < count; r++) {
    const root = runs.find(r);
    region[r] = root === r ? regions++ : region[root]!;
  }
  const kept = Math.min(regions, maxCandidates);
  const offsets = new Int32Array(kept + 1);
  for (let r = 0; r < count; r++) if (region[r]! < kept) offsets[region[r]! + 1]!++;
  for (let i = 0; i < kept; i++) offsets[i + 1]! += offsets[i]!;
  const order = new Int32Array(offsets[kept]!);
  const fill = offsets.slice(0, kept);
  for (let r = 0; r < count; r++) if (region[r]! < kept) order[fill[region[r]!]!++] = r;

  for (let i = 0; i < kept; i++) {
    const points: Point[] = [];
    for (let k = offsets[i]!; k < offsets[i + 1]!; ) {
      const row = runs.rows[order[k]!]!;
      const left = runs.starts[order[k]!]!;
      while (k + 1 < offsets[i + 1]! && runs.rows[order[k + 1]!] === row) k++;
      const right = runs.ends[order[k]!]!;
      k++;
      points.push([left, row]);
      if (right > left) points.push([right, row]);
    }
    visit(hullOfSorted(points));
  }
}

/** Horizontal runs of text pixels (x from start to end inclusive, in row) with a union-find over them. */
class RunTable {
  count = 0;
  starts: Int32Array = new Int32Array(1024);
  ends: Int32Array = new Int32Array(1024);
  rows: Int32Array = new Int32Array(1024);
  private parent: Int32Array = new Int32Array(1024);

  push(start: number, end: number, row: number): void {
    if (this.count === this.starts.length) this.grow();
    this.starts[this.count] = start;
    this.ends[this.count] = end;
    this.rows[this.count] = row;
    this.parent[this.count] = this.count;
    this.count++;
  }

  find(run: number): number {
    const parent = this.parent;
    let r = run;
    while (parent[r] !== r) {
      parent[r] = parent[parent[r]!]!;
      r = parent[r]!;
    }
    return r;
  }

  /** The smaller index stays root, so a region's root is its first run in raster order. */
  union(a: number, b: number): void {
    const rootA = this.find(a);
    const rootB = this.find(b);
    if (rootA < rootB) this.parent[rootB] = rootA;
    else if (rootB < rootA) this.parent[rootA] = rootB;
  }

  private grow(): void {
    const size = this.starts.length * 2;
    const widen = (from: Int32Array): Int32Array => {
      const to = new Int32Array(size);
      to.set(from);
      return to;
    };
    this.starts = widen(this.starts);
    this.ends = widen(this.ends);
    this.rows = widen(this.rows);
    this.parent = widen(this.parent);
  }
}

function boxFromRegion(
  hull: Point[],
  map: Float32Array,
  mapWidth: number,
  mapHeight: number,
  srcWidth: number,
  srcHeight: number,
  options: DbOptions,
  scratch: { mask: Uint8Array },
): DetectedBox | null {
  const rect = minAreaRectOfHull(hull);
  if (Math.min(rect.width, rect.height) < options.minSize) return null;
  const box = orderMiniBox(rect.corners);
  const score = boxScoreFast(map, mapWidth, mapHeight, box, scratch);
  if (score < options.boxThreshold) return null;
  const grown = unclip(box, options.unclipRatio);
  if (grown.length === 0) return null;
  const grownRect = minAreaRect(grown);
  if (Math.min(grownRect.width, grownRect.height) < options.minSize + 2) return null;
  const scaled = orderMiniBox(grownRect.corners).map(([x, y]): Point => [
    scaleCoordinate(x, mapWidth, srcWidth),
    scaleCoordinate(y, mapHeight, srcHeight),
  ]) as Quad;
  return { box: scaled, score };
}

/** np.clip(np.round(v / mapSize * srcSize), 0, srcSize) on float32 values, as DBPostProcess does. */
function scaleCoordinate(value: number, mapSize: number, srcSize: number): number {
  const scaled = roundHalfEven(Math.fround(Math.fround(Math.fround(value) / mapSize) * srcSize));
  return Math.min(Math.max(scaled, 0), srcSize);
}

/**
 * box_score_fast: the mean of the map over the box polygon, rasterised as
 * cv2.fillPoly does into the box's bounding rectangle (clipped to the map),
 * with the corners shifted into that rectangle and truncated to integers.
 */
function boxScoreFast(map: Float32Array, width: number, height: number, box: Quad, scratch: { mask: Uint8Array }): number {
  const xs = box.map((p) => p[0]);
  const ys = box.map((p) => p[1]);
  const clampX = (v: number): number => Math.min(Math.max(v, 0), width - 1);
  const clampY = (v: number): number => Math.min(Math.max(v, 0), height - 1);
  const xMin = clampX(Math.floor(Math.min(...xs)));
  const xMax = clampX(Math.ceil(Math.max(...xs)));
  const yMin = clampY(Math.floor(Math.min(...ys)));
  const yMax = clampY(Math.ceil(Math.max(...ys)));
  const maskWidth = xMax - xMin + 1;
  const maskHeight = yMax - yMin + 1;
  const area = maskWidth * maskHeight;
  if (scratch.mask.length < area) scratch.mask = new Uint8Array(Math.max(area, scratch.mask.length * 2));
  const mask = scratch.mask;
  mask.fill(0, 0, area);
  const shifted = box.map(([x, y]): Point => [Math.trunc(x - xMin), Math.trunc(y - yMin)]);
  fillPolygon(mask, maskWidth, maskHeight, shifted);
  let sum = 0;
  let count = 0;
  for (let y = 0; y < maskHeight; y++) {
    const maskRow = y * maskWidth;
    const mapRow = (y + yMin) * width + xMin;
    for (let x = 0; x < maskWidth; x++) {
      if (mask[maskRow + x] !== 0) {
        sum += map[mapRow + x]!;
        count++;
      }
    }
  }
  return count === 0 ? 0 : sum / count;
}

const FIXED_ONE = 65536;

/**
 * cv2.fillPoly with integer vertices and 8-connected lines: the outline is
 * drawn as lines, then each scanline between edge pairs is filled, edge x in
 * 16.16 fixed point offset by half a pixel, slope truncated, as OpenCV steps it.
 * (OpenCV re-clips edges that leave the image; here they are clipped per pixel,
 * which can differ by a pixel at the map's border.)
 */
function fillPolygon(mask: Uint8Array, width: number, height: number, polygon: readonly Point[]): void {
  const n = polygon.length;
  const edges: { y0: number; y1: number; x0: number; dx: number }[] = [];
  let yLow = Infinity;
  let yHigh = -Infinity;
  for (let i = 0; i < n; i++) {
    const a = polygon[(i + n - 1) % n]!;
    const b = polygon[i]!;
    drawLine(mask, width, height, a, b);
    if (a[1] === b[1]) continue;
    const [top, bottom] = a[1] < b[1] ? [a, b] : [b, a];
    const dx = Math.trunc(((bottom[0] - top[0]) * FIXED_ONE) / (bottom[1] - top[1]));
    edges.push({ y0: top[1], y1: bottom[1], x0: top[0] * FIXED_ONE + FIXED_ONE / 2, dx });
    yLow = Math.min(yLow, top[1]);
    yHigh = Math.max(yHigh, bottom[1]);
  }
  const crossings: number[] = [];
  for (let y = Math.max(yLow, 0); y < Math.min(yHigh, height); y++) {
    crossings.length = 0;
    for (const edge of edges) if (y >= edge.y0 && y < edge.y1) crossings.push(edge.x0 + (y - edge.y0) * edge.dx);
    crossings.sort((p, q) => p - q);
    for (let k = 0; k + 1 < crossings.length; k += 2) {
      const from = Math.max(Math.floor(crossings[k]! / FIXED_ONE), 0);
      const to = Math.min(Math.floor(crossings[k + 1]! / FIXED_ONE), width - 1);
      if (from <= to) mask.fill(1, y * width + from, y * width + to + 1);
    }
  }
}

/** An 8-connected Bresenham line, both ends included, clipped to the mask. */
function drawLine(mask: Uint8Array, width: number, height: number, a: Point, b: Point): void {
  let [x, y] = a;
  const [xEnd, yEnd] = b;
  const dx = Math.abs(xEnd - x);
  const dy = -Math.abs(yEnd - y);
  const sx = x < xEnd ? 1 : -1;
  const sy = y < yEnd ? 1 : -1;
  let error = dx + dy;
  for (;;) {
    if (x >= 0 && x < width && y >= 0 && y < height) mask[y * width + x] = 1;
    if (x === xEnd && y === yEnd) return;
    const twice = 2 * error;
    if (twice >= dy) {
      error += dy;
      x += sx;
    }
    if (twice <= dx) {
      error += dx;
      y += sy;
    }
  }
}

/**
 * DB's unclip: grow the box outward by area * ratio / perimeter with round
 * joins, the way pyclipper's ClipperOffset (JT_ROUND, closed polygon, arc
 * tolerance 0.25) does it: corners truncated to integers first, arcs stepped
 * from one edge normal to the next, output rounded to integers. Only the
 * outline's vertices are returned; its convex hull is what the next
 * minimum-area rectangle needs, so Clipper's final union is not reproduced.
 */
export function unclip(box: Quad, ratio: number): Point[] {
  const perimeter = polygonPerimeter(box);
  if (perimeter === 0) return [];
  const delta = (polygonArea(box) * ratio) / perimeter;
  const path: Point[] = [];
  for (const [x, y] of box) {
    const p: Point = [Math.trunc(x), Math.trunc(y)];
    const last = path[path.length - 1];
    if (!last || last[0] !== p[0] || last[1] !== p[1]) path.push(p);
  }
  while (path.length > 1 && path[0]![0] === path[path.length - 1]![0] && path[0]![1] === path[path.length - 1]![1]) path.pop();
  if (path.length < 3) return [];
  // Clipper offsets outward when the path has positive area (clockwise on screen).
  if (signedArea(path) < 0) path.reverse();
  if (delta === 0) return path;

  const tolerance = ARC_TOLERANCE > delta * ARC_TOLERANCE ? delta * ARC_TOLERANCE : ARC_TOLERANCE;
  let steps = Math.PI / Math.acos(1 - tolerance / delta);
  if (steps > delta * Math.PI) steps = delta * Math.PI;
  const sin = Math.sin((2 * Math.PI) / steps);
  const cos = Math.cos((2 * Math.PI) / steps);
  const stepsPerRadian = steps / (2 * Math.PI);

  const n = path.length;
  const normals: Point[] = [];
  for (let i = 0; i < n; i++) {
    const a = path[i]!;
    const b = path[(i + 1) % n]!;
    const length = distance(a, b);
    normals.push([(b[1] - a[1]) / length, -(b[0] - a[0]) / length]);
  }
  const out: Point[] = [];
  const at = (p: Point, nx: number, ny: number): Point => [clipperRound(p[0] + nx * delta), clipperRound(p[1] + ny * delta)];
  // k is the edge before vertex j; Clipper keeps the old k past a vertex where the path runs straight on.
  let k = n - 1;
  for (let j = 0; j < n; j++) {
    const p = path[j]!;
    const [kx, ky] = normals[k]!;
    const [jx, jy] = normals[j]!;
    let sinA = kx * jy - jx * ky;
    const cosA = kx * jx + ky * jy;
    if (Math.abs(sinA * delta) < 1) {
      if (cosA > 0) {
        out.push(at(p, kx, ky));
        continue;
      }
    } else {
      sinA = Math.min(Math.max(sinA, -1), 1);
    }
    k = j;
    if (sinA < 0) {
      // A reflex corner: Clipper's union later removes the overlap.
      out.push(at(p, kx, ky), [p[0], p[1]], at(p, jx, jy));
      continue;
    }
    const angle = Math.atan2(sinA, cosA);
    const arcSteps = Math.max(clipperRound(stepsPerRadian * Math.abs(angle)), 1);
    let x = kx;
    let y = ky;
    for (let i = 0; i < arcSteps; i++) {
      out.push(at(p, x, y));
      const previous = x;
      x = x * cos - sin * y;
      y = previous * sin + y * cos;
    }
    out.push(at(p, jx, jy));
  }
  return out;
}

function clipperRound(value: number): number {
  return value < 0 ? Math.trunc(value - 0.5) : Math.trunc(value + 0.5);
}

/**
 * filter_tag_det_res: corners reordered clockwise from top-left, clipped to
 * the image, truncated to integers; boxes with a side of 3 pixels or less dropped.
 */
function filterTagDetRes(boxes: readonly DetectedBox[], width: number, height: number): DetectedBox[] {
  const kept: DetectedBox[] = [];
  for (const { box, score } of boxes) {
    const ordered = orderPointsClockwise(box).map(([x, y]): Point => [
      Math.trunc(Math.min(Math.max(x, 0), width - 1)),
      Math.trunc(Math.min(Math.max(y, 0), height - 1)),
    ]) as Quad;
    if (Math.trunc(distance(ordered[0], ordered[1])) <= MIN_FINAL_SIDE_PX) continue;
    if (Math.trunc(distance(ordered[0], ordered[3])) <= MIN_FINAL_SIDE_PX) continue;
    kept.push({ box: ordered, score });
  }
  return kept;
}

/**
 * PaddleOCR's sorted_boxes: by top-left y, then x; then each box moves left
 * past earlier boxes whose top-left y is within 10 px and whose x is larger,
 * so boxes on one line read left to right. Returns a new array.
 */
export function sortBoxes<T extends { readonly box: Quad }>(boxes: readonly T[]): T[] {
  const sorted = [...boxes].sort((a, b) => a.box[0][1] - b.box[0][1] || a.box[0][0] - b.box[0][0]);
  for (let i = 0; i < sorted.length - 1; i++) {
    for (let j = i; j >= 0; j--) {
      const current = sorted[j]!;
      const next = sorted[j + 1]!;
      if (Math.abs(next.box[0][1] - current.box[0][1]) < SAME_LINE_PX && next.box[0][0] < current.box[0][0]) {
        sorted[j] = next;
        sorted[j + 1] = current;
      } else {
        break;
      }
    }
  }
  return sorted;
}
