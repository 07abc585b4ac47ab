/**
 * An anti-aliased scanline fill of vector outlines (font glyphs), written for
 * the test images of the OCR pipeline. Curves are flattened to line segments;
 * each pixel row is sampled on SUBSCANLINES horizontal lines, and on each line
 * the spans inside the outline (non-zero winding, as TrueType fills) add their
 * exact horizontal overlap with every pixel. Pure arithmetic in a fixed order,
 * so the same outlines always give the same coverage.
 */

/** Outline commands as opentype.js's Path gives them: y grows downwards. */
export type PathCommand =
  | { readonly type: 'M' | 'L'; readonly x: number; readonly y: number }
  | { readonly type: 'Q'; readonly x1: number; readonly y1: number; readonly x: number; readonly y: number }
  | { readonly type: 'C'; readonly x1: number; readonly y1: number; readonly x2: number; readonly y2: number; readonly x: number; readonly y: number }
  | { readonly type: 'Z' };

/** x' = a·x + c·y + e, y' = b·x + d·y + f (the canvas convention). */
export type Affine = readonly [a: number, b: number, c: number, d: number, e: number, f: number];

export const IDENTITY: Affine = [1, 0, 0, 1, 0, 0];

/** Vertical samples per pixel row; the horizontal direction is exact. 8 gives smooth near-horizontal edges at little cost. */
const SUBSCANLINES = 8;
/** Largest distance, in pixels, between a curve and its flattened segments. */
const FLATTEN_TOLERANCE = 0.05;
const MAX_CURVE_SEGMENTS = 64;

/** Non-horizontal segments, each stored top point first, with +1/-1 for its original direction. */
class EdgeList {
  readonly xTop: number[] = [];
  readonly yTop: number[] = [];
  readonly yBottom: number[] = [];
  readonly slope: number[] = [];
  readonly winding: number[] = [];

  add(x0: number, y0: number, x1: number, y1: number): void {
    if (y0 === y1) return;
    const down = y1 > y0;
    const [xt, yt, xb, yb] = down ? [x0, y0, x1, y1] : [x1, y1, x0, y0];
    this.xTop.push(xt);
    this.yTop.push(yt);
    this.yBottom.push(yb);
    this.slope.push((xb - xt) / (yb - yt));
    this.winding.push(down ? 1 : -1);
  }

  get length(): number {
    return this.yTop.length;
  }
}

function segmentsFor(deviation: number): number {
  return Math.min(MAX_CURVE_SEGMENTS, Math.max(1, Math.ceil(Math.sqrt(deviation / FLATTEN_TOLERANCE))));
}

/** Flattens the outlines, transformed, into edges; every subpath is closed, as a fill closes it. */
function flatten(paths: Iterable<readonly PathCommand[]>, m: Affine, edges: EdgeList): void {
  const tx = (x: number, y: number): number => m[0] * x + m[2] * y + m[4];
  const ty = (x: number, y: number): number => m[1] * x + m[3] * y + m[5];
  for (const commands of paths) {
    let startX = 0, startY = 0, x = 0, y = 0, open = false;
    const close = (): void => {
      if (open) edges.add(x, y, startX, startY);
      x = startX;
      y = startY;
      open = false;
    };
    /** A curve from the current point to (endX, endY) as line segments, enough for its `deviation` from its chord; `at(t, 1 - t)` is its point at t. */
    const curveTo = (deviation: number, endX: number, endY: number, at: (t: number, u: number) => [number, number]): void => {
      const n = segmentsFor(deviation);
      let px = x, py = y;
      for (let i = 1; i <= n; i++) {
        const [qx, qy] = i === n ? [endX, endY] : at(i / n, 1 - i / n);
        edges.add(px, py, qx, qy);
        px = qx;
        py = qy;
      }
      x = endX;
      y = endY;
    };
    for (const c of commands) {
      switch (c.type) {
        case 'M': {
          close();
          startX = x = tx(c.x, c.y);
          startY = y = ty(c.x, c.y);
          open = true;
          break;
        }
        case 'L': {
          const nx = tx(c.x, c.y), ny = ty(c.x, c.y);
          edges.add(x, y, nx, ny);
          x = nx;
          y = ny;
          break;
        }
        case 'Q': {
          const x1 = tx(c.x1, c.y1), y1 = ty(c.x1, c.y1), x2 = tx(c.x, c.y), y2 = ty(c.x, c.y);
          // A quadratic's distance from its chord is at most a quarter of |p0 - 2·p1 + p2|.
          const x0 = x, y0 = y;
          curveTo(Math.hypot(x0 - 2 * x1 + x2, y0 - 2 * y1 + y2) / 4, x2, y2, (t, u) => [
            u * u * x0 + 2 * u * t * x1 + t * t * x2,
            u * u * y0 + 2 * u * t * y1 + t * t * y2,
          ]);
          break;
        }
        case 'C': {
          const x1 = tx(c.x1, c.y1), y1 = ty(c.x1, c.y1), x2 = tx(c.x2, c.y2), y2 = ty(c.x2, c.y2);
          const x3 = tx(c.x, c.y), y3 = ty(c.x, c.y);
          const x0 = x, y0 = y;
          const dd = Math.max(Math.hypot(x0 - 2 * x1 + x2, y0 - 2 * y1 + y2), Math.hypot(x1 - 2 * x2 + x3, y1 - 2 * y2 + y3));
          curveTo((3 / 4) * dd, x3, y3, (t, u) => {
            const a = u * u * u, b = 3 * u * u * t, cc = 3 * u * t * t, d = t * t * t;
            return [a * x0 + b * x1 + cc * x2 + d * x3, a * y0 + b * y1 + cc * y2 + d * y3];
          });
          break;
        }
        case 'Z':
          close();
          break;
      }
    }
    close();
  }
}

/**
 * The fraction of each pixel of a width×height grid covered by the filled
 * outlines (after the transform), row-major, each in [0, 1].
 */
export function pathCoverage(paths: Iterable<readonly PathCommand[]>, width: number, height: number, transform: Affine = IDENTITY): Float32Array {
  const coverage = new Float32Array(width * height);
  const edges = new EdgeList();
  flatten(paths, transform, edges);
  if (edges.length === 0) return coverage;

  const order = Array.from({ length: edges.length }, (_, i) => i).sort((p, q) => edges.yTop[p]! - edges.yTop[q]! || p - q);
  const { xTop, yTop, yBottom, slope, winding } = edges;
  let minY = Infinity, maxY = -Infinity;
  for (let i = 0; i < edges.length; i++) {
    minY = Math.min(minY, yTop[i]!);
    maxY = Math.max(maxY, yBottom[i]!);
  }

  const weight = 1 / SUBSCANLINES;
  // Partial coverage at span ends, and a difference array for the whole pixels between them.
  const ends = new Float64Array(width + 1);
  const runs = new Float64Array(width + 1);
  let active: number[] = [];
  let next = 0;
  const crossX: number[] = [];
  const crossWinding: number[] = [];

  const addSpan = (from: number, to: number): void => {
    const xa = Math.max(0, from), xb = Math.min(width, to);
    if (xb <= xa) return;
    const ia = Math.floor(xa), ib = Math.floor(xb);
    if (ia === ib) {
      ends[ia]! += (xb - xa) * weight;
      return;
    }
    ends[ia]! += (ia + 1 - xa) * weight;
    runs[ia + 1]! += weight;
    runs[ib]! -= weight;
    ends[ib]! += (xb - ib) * weight;
  };

  const firstRow = Math.max(0, Math.floor(minY));
  const lastRow = Math.min(height, Math.ceil(maxY));
  for (let row = firstRow; row < lastRow; row++) {
    for (let s = 0; s < SUBSCANLINES; s++) {
      const sy = row + (s + 0.5) / SUBSCANLINES;
      while (next < order.length && yTop[order[next]!]! <= sy) active.push(order[next++]!);
      active = active.filter((e) => yBottom[e]! > sy);
      crossX.length = 0;
      crossWinding.length = 0;
      for (const e of active) {
        const x = xTop[e]! + (sy - yTop[e]!) * slope[e]!;
        // Insertion keeps the crossings sorted by x; a row crosses few edges.
        let i = crossX.length;
        crossX.push(x);
        crossWinding.push(winding[e]!);
        while (i > 0 && crossX[i - 1]! > x) {
          crossX[i] = crossX[i - 1]!;
          crossWinding[i] = crossWinding[i - 1]!;
          i--;
        }
        crossX[i] = x;
        crossWinding[i] = winding[e]!;
      }
      let wind = 0;
      let spanStart = 0;
      for (let i = 0; i < crossX.length; i++) {
        const before = wind;
        wind += crossWinding[i]!;
        if (before === 0 && wind !== 0) spanStart = crossX[i]!;
        else if (before !== 0 && wind === 0) addSpan(spanStart, crossX[i]!);
      }
    }
    let run = 0;
    const base = row * width;
    for (let x = 0; x < width; x++) {
      run += runs[x]!;
      coverage[base + x] = Math.min(1, Math.max(0, ends[x]! + run));
    }
    ends.fill(0);
    runs.fill(0);
  }
  return coverage;
}
