/**
 * PaddleOCR's get_rotate_crop_image: a text box warped to an upright
 * rectangle by a perspective transform, sampled the way cv2.warpPerspective
 * does with INTER_CUBIC and BORDER_REPLICATE, then turned upright when it is
 * tall. Pure TypeScript, no Node APIs.
 */
import { distance, roundHalfEven } from './geometry.ts';
import type { Quad, RgbImage } from './types.ts';

/** Largest crop side accepted, so a wild quad cannot demand an unbounded allocation. */
export const MAX_CROP_SIDE = 16384;
/** A crop at least this much taller than wide is rotated to read left to right. */
const TALL_RATIO = 1.5;

// OpenCV's remap tables: source positions in 1/32 pixel, weights in 1/32768.
const TAB_BITS = 5;
const TAB_SIZE = 1 << TAB_BITS;
const COEF_BITS = 15;
const COEF_SCALE = 1 << COEF_BITS;
const CUBIC_A = -0.75;

/**
 * The quad's content as an upright crop. Width is the longer of the top and
 * bottom edges, height the longer of the side edges, both truncated; a crop
 * whose height / width is at least 1.5 comes back rotated 90° counter-clockwise.
 * Throws a RangeError when the quad has a side shorter than one pixel, is not
 * finite, is degenerate (three corners on a line) or exceeds MAX_CROP_SIDE.
 */
export function cropQuad(image: RgbImage, quad: Quad): RgbImage {
  checkImage(image);
  if (!Array.isArray(quad) || quad.length !== 4 || !quad.every((p) => Array.isArray(p) && Number.isFinite(p[0]) && Number.isFinite(p[1]))) {
    throw new RangeError('quad must be four [x, y] points with finite coordinates');
  }
  const [p0, p1, p2, p3] = quad;
  const width = Math.trunc(Math.max(distance(p0, p1), distance(p2, p3)));
  const height = Math.trunc(Math.max(distance(p0, p3), distance(p1, p2)));
  if (width < 1 || height < 1) {
    throw new RangeError(`quad is too small to crop: width ${width}, height ${height} (each must be at least 1 pixel)`);
  }
  if (width > MAX_CROP_SIDE || height > MAX_CROP_SIDE) {
    throw new RangeError(`quad is too large to crop: width ${width}, height ${height} (limit ${MAX_CROP_SIDE})`);
  }
  const toSource = homography(
    [[0, 0], [width, 0], [width, height], [0, height]],
    quad,
  );
  if (!toSource) throw new RangeError('quad is degenerate: three of its corners are on one line');
  const crop = warpCubic(image, toSource, width, height);
  return height / width >= TALL_RATIO ? rotate90CounterClockwise(crop) : crop;
}

function checkImage(image: RgbImage): void {
  const { width, height, data } = image;
  if (!Number.isInteger(width) || width < 1 || !Number.isInteger(height) || height < 1) {
    throw new RangeError(`image width and height must be positive integers, got ${String(width).slice(0, 20)} x ${String(height).slice(0, 20)}`);
  }
  if (!(data instanceof Uint8Array) || data.length !== width * height * 3) {
    throw new RangeError(`image.data must be a Uint8Array of width * height * 3 = ${width * height * 3} bytes`);
  }
}

/**
 * The 3x3 projective map (row-major, last entry 1) taking each `from` corner
 * to its `to` corner, or null when the 8x8 system is singular.
 */
function homography(from: Quad, to: Quad): Float64Array | null {
  const system: number[][] = [];
  for (let i = 0; i < 4; i++) {
    const [u, v] = from[i]!;
    const [x, y] = to[i]!;
    system.push([u, v, 1, 0, 0, 0, -u * x, -v * x, x]);
    system.push([0, 0, 0, u, v, 1, -u * y, -v * y, y]);
  }
  const scale = Math.max(...system.flat().map(Math.abs), 1);
  for (let column = 0; column < 8; column++) {
    let pivot = column;
    for (let row = column + 1; row < 8; row++) {
      if (Math.abs(system[row]![column]!) > Math.abs(system[pivot]![column]!)) pivot = row;
    }
    if (Math.abs(system[pivot]![column]!) < 1e-12 * scale) return null;
    [system[column], system[pivot]] = [system[pivot]!, system[column]!];
    const pivotRow = system[column]!;
    for (let row = 0; row < 8; row++) {
      if (row === column) continue;
      const target = system[row]!;
      const factor = target[column]! / pivotRow[column]!;
      if (factor === 0) continue;
      for (let k = column; k < 9; k++) target[k] = target[k]! - factor * pivotRow[k]!;
    }
  }
  const h = new Float64Array(9);
  for (let i = 0; i < 8; i++) h[i] = system[i]![8]! / system[i]![i]!;
  h[8] = 1;
  return h;
}

let cubicTable: Int32Array | undefined;

/**
 * OpenCV's fixed-point bicubic weights: for each of the 32 x 32 sub-pixel
 * positions, 16 integer weights summing to exactly 32768 (rounding error
 * pushed onto one of the centre taps, as initInterTab2D does).
 */
function cubicWeights(): Int32Array {
  if (cubicTable) return cubicTable;
  const oneD: number[][] = [];
  for (let i = 0; i < TAB_SIZE; i++) {
    const x = i / TAB_SIZE;
    const w0 = ((CUBIC_A * (x + 1) - 5 * CUBIC_A) * (x + 1) + 8 * CUBIC_A) * (x + 1) - 4 * CUBIC_A;
    const w1 = ((CUBIC_A + 2) * x - (CUBIC_A + 3)) * x * x + 1;
    const w2 = ((CUBIC_A + 2) * (1 - x) - (CUBIC_A + 3)) * (1 - x) * (1 - x) + 1;
    oneD.push([w0, w1, w2, 1 - w0 - w1 - w2].map(Math.fround));
  }
  const table = new Int32Array(TAB_SIZE * TAB_SIZE * 16);
  for (let fy = 0; fy < TAB_SIZE; fy++) {
    for (let fx = 0; fx < TAB_SIZE; fx++) {
      const base = (fy * TAB_SIZE + fx) * 16;
      let sum = 0;
      for (let r = 0; r < 4; r++) {
        for (let c = 0; c < 4; c++) {
          const weight = roundHalfEven(Math.fround(oneD[fy]![r]! * oneD[fx]![c]!) * COEF_SCALE);
          table[base + r * 4 + c] = weight;
          sum += weight;
        }
      }
      const excess = sum - COEF_SCALE;
      if (excess !== 0) {
        let low = 2 * 4 + 2;
        let high = low;
        for (let r = 2; r < 4; r++) {
          for (let c = 2; c < 4; c++) {
            const index = r * 4 + c;
            if (table[base + index]! < table[base + low]!) low = index;
            else if (table[base + index]! > table[base + high]!) high = index;
          }
        }
        if (excess < 0) table[base + high] = table[base + high]! - excess;
        else table[base + low] = table[base + low]! - excess;
      }
    }
  }
  cubicTable = table;
  return table;
}

const INT_MAX = 2147483647;

/** For each destination pixel, the source position by the map, bicubic with the edge pixels replicated. */
function warpCubic(image: RgbImage, toSource: Float64Array, width: number, height: number): RgbImage {
  const { width: srcWidth, height: srcHeight, data: src } = image;
  const weights = cubicWeights();
  const out = new Uint8Array(width * height * 3);
  const columns = new Int32Array(4);
  const [m0, m1, m2, m3, m4, m5, m6, m7, m8] = toSource as unknown as number[];
  for (let y = 0; y < height; y++) {
    for (let x = 0; x < width; x++) {
      const w = m6! * x + m7! * y + m8!;
      const inverse = w !== 0 ? TAB_SIZE / w : 0;
      const fx = Math.max(-INT_MAX - 1, Math.min(INT_MAX, (m0! * x + m1! * y + m2!) * inverse));
      const fy = Math.max(-INT_MAX - 1, Math.min(INT_MAX, (m3! * x + m4! * y + m5!) * inverse));
      const sx = roundHalfEven(fx);
      const sy = roundHalfEven(fy);
      const ix = Math.floor(sx / TAB_SIZE);
      const iy = Math.floor(sy / TAB_SIZE);
      const base = ((sy - iy * TAB_SIZE) * TAB_SIZE + (sx - ix * TAB_SIZE)) * 16;
      for (let c = 0; c < 4; c++) columns[c] = Math.min(Math.max(ix - 1 + c, 0), srcWidth - 1) * 3;
      let r = 0, g = 0, b = 0;
      for (let row = 0; row < 4; row++) {
        const line = Math.min(Math.max(iy - 1 + row, 0), srcHeight - 1) * srcWidth * 3;
        for (let c = 0; c < 4; c++) {
          const weight = weights[base + row * 4 + c]!;
          const at = line + columns[c]!;
          r += src[at]! * weight;
          g += src[at + 1]! * weight;
          b += src[at + 2]! * weight;
        }
      }
      const o = (y * width + x) * 3;
      out[o] = toByte(r);
      out[o + 1] = toByte(g);
      out[o + 2] = toByte(b);
    }
  }
  return { width, height, data: out };
}

function toByte(sum: number): number {
  const value = Math.floor((sum + (COEF_SCALE >> 1)) / COEF_SCALE);
  return value < 0 ? 0 : value > 255 ? 255 : value;
}

/** np.rot90: the right column becomes the top row. */
function rotate90CounterClockwise(image: RgbImage): RgbImage {
  const { width, height, data } = image;
  const out = new Uint8Array(data.length);
  // Output is height wide, width tall; output (row r, col c) = input (row c, col width - 1 - r).
  for (let r = 0; r < width; r++) {
    for (let c = 0; c < height; c++) {
      const from = (c * width + (width - 1 - r)) * 3;
      const to = (r * height + c) * 3;
      out[to] = data[from]!;
      out[to + 1] = data[from + 1]!;
      out[to + 2] = data[from + 2]!;
    }
  }
  return { width: height, height: width, data: out };
}

/** The image turned upside down (np.rot90 twice), for crops the angle classifier calls 180°. */
export function rotate180(image: RgbImage): RgbImage {
  checkImage(image);
  const { data } = image;
  const out = new Uint8Array(data.length);
  const pixels = data.length / 3;
  for (let i = 0; i < pixels; i++) {
    const from = (pixels - 1 - i) * 3;
    out[i * 3] = data[from]!;
    out[i * 3 + 1] = data[from + 1]!;
    out[i * 3 + 2] = data[from + 2]!;
  }
  return { width: image.width, height: image.height, data: out };
}
