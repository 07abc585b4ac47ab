/**
 * Image bytes to RGB pixels, and the resampling every model step needs.
 *
 * Decoding uses pure-JavaScript codecs (fast-png, jpeg-js) so that it runs
 * inside the script's isolate. Resampling follows OpenCV's bilinear resize
 * (pixel centres at +0.5, edge pixels repeated, results rounded to 8 bits),
 * since PaddleOCR's models were trained on images resized that way, and it
 * writes the normalised float planes a model takes in the same pass.
 */
import { convertIndexedToRgb, decode as decodePng, type DecodedPng } from 'fast-png';
import jpeg from 'jpeg-js';
import type { RgbImage } from './types.ts';

/** Largest image decoded by default, in pixels (about 5000 x 5000); a bigger one is refused before its pixels are allocated. */
export const DEFAULT_MAX_PIXELS = 25_000_000;

/** An image that cannot be decoded; the message says why, never what the bytes hold. */
export class ImageError extends Error {
  override readonly name = 'ImageError';
}

const isPng = (b: Uint8Array): boolean => b.length >= 8 && b[0] === 0x89 && b[1] === 0x50 && b[2] === 0x4e && b[3] === 0x47;
const isJpeg = (b: Uint8Array): boolean => b.length >= 3 && b[0] === 0xff && b[1] === 0xd8 && b[2] === 0xff;

/**
 * Decodes a PNG or JPEG into RGB. Transparent pixels are laid over white
 * (transparent PNGs often hold black under alpha 0, which would read as
 * ink); 16-bit samples keep their high byte; grey and palette images
 * become RGB.
 */
export function decodeImage(bytes: Uint8Array, maxPixels = DEFAULT_MAX_PIXELS): RgbImage {
  if (isPng(bytes)) return decodePngImage(bytes, maxPixels);
  if (isJpeg(bytes)) return decodeJpegImage(bytes, maxPixels);
  throw new ImageError(`the image is ${bytes.length} bytes that are neither a PNG nor a JPEG (checked by their first bytes)`);
}

function checkSize(width: number, height: number, maxPixels: number): void {
  if (width <= 0 || height <= 0) throw new ImageError(`the image is ${width} x ${height} pixels: it holds nothing`);
  if (width * height > maxPixels) {
    throw new ImageError(`the image is ${width} x ${height} pixels, over the ${maxPixels} pixels this model decodes: scale it down`);
  }
}

function decodePngImage(bytes: Uint8Array, maxPixels: number): RgbImage {
  // The size sits in the header chunk (bytes 16 to 23): refuse a huge image before inflating it.
  if (bytes.length < 24) throw new ImageError(`the PNG is ${bytes.length} bytes: too short to hold its header`);
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  checkSize(view.getUint32(16), view.getUint32(20), maxPixels);
  let png: DecodedPng;
  try {
    png = decodePng(bytes);
  } catch (err) {
    throw new ImageError(`the PNG does not decode: ${bounded(err)}`);
  }
  const { width, height } = png;
  let channels = png.channels;
  let samples: ArrayLike<number>;
  let max = 255;
  if (png.palette) {
    samples = convertIndexedToRgb(png);
    channels = png.palette[0]?.length ?? 3;
  } else if (png.depth < 8) {
    samples = unpackBits(png.data as Uint8Array, width, height, channels, png.depth);
    max = (1 << png.depth) - 1;
  } else {
    samples = png.data;
    if (png.depth === 16) max = 65535;
  }
  return toRgb(samples, width, height, channels, max);
}

/** Grey images of 1, 2 or 4 bits a sample: each row starts on a byte. */
function unpackBits(packed: Uint8Array, width: number, height: number, channels: number, depth: number): Uint8Array {
  const perRow = width * channels;
  const rowBytes = Math.ceil((perRow * depth) / 8);
  const out = new Uint8Array(perRow * height);
  const mask = (1 << depth) - 1;
  for (let y = 0; y < height; y++) {
    for (let i = 0; i < perRow; i++) {
      const bit = i * depth;
      const byte = packed[y * rowBytes + (bit >> 3)] ?? 0;
      out[y * perRow + i] = (byte >> (8 - depth - (bit & 7))) & mask;
    }
  }
  return out;
}

/** Samples of 1 to 4 channels (grey, grey+alpha, RGB, RGBA), each out of `max`, to 8-bit RGB over white. */
function toRgb(samples: ArrayLike<number>, width: number, height: number, channels: number, max: number): RgbImage {
  const pixels = width * height;
  const out = new Uint8Array(pixels * 3);
  const scale = 255 / max;
  const hasAlpha = channels === 2 || channels === 4;
  const colour = channels >= 3;
  for (let p = 0; p < pixels; p++) {
    const at = p * channels;
    const r = samples[at]! * scale;
    const g = colour ? samples[at + 1]! * scale : r;
    const b = colour ? samples[at + 2]! * scale : r;
    const alpha = hasAlpha ? samples[at + channels - 1]! / max : 1;
    const white = 255 * (1 - alpha);
    out[p * 3] = Math.round(r * alpha + white);
    out[p * 3 + 1] = Math.round(g * alpha + white);
    out[p * 3 + 2] = Math.round(b * alpha + white);
  }
  return { width, height, data: out };
}

function decodeJpegImage(bytes: Uint8Array, maxPixels: number): RgbImage {
  try {
    // useTArray: typed arrays, not Node's Buffer (the isolate has none).
    const decoded = jpeg.decode(bytes, {
      useTArray: true, formatAsRGBA: false, maxResolutionInMP: maxPixels / 1_000_000, maxMemoryUsageInMB: 512,
    });
    checkSize(decoded.width, decoded.height, maxPixels);
    return { width: decoded.width, height: decoded.height, data: decoded.data as Uint8Array };
  } catch (err) {
    if (err instanceof ImageError) throw err;
    throw new ImageError(`the JPEG does not decode: ${bounded(err)}`);
  }
}

const bounded = (err: unknown): string => {
  const text = err instanceof Error ? err.message : String(err);
  return text.length > 200 ? `${text.slice(0, 200)}...` : text;
};

/**
 * Where each destination column (or row) samples the source, as OpenCV's
 * bilinear resize does: the first of two source pixels and the weight of
 * the second, pixel centres aligned, clamped at the edges.
 */
function sampling(from: number, to: number): { readonly index: Int32Array; readonly weight: Float32Array } {
  const index = new Int32Array(to);
  const weight = new Float32Array(to);
  const scale = from / to;
  for (let d = 0; d < to; d++) {
    const f = (d + 0.5) * scale - 0.5;
    let s = Math.floor(f);
    let w = f - s;
    if (s < 0) {
      s = 0;
      w = 0;
    }
    if (s >= from - 1) {
      s = from - 1;
      w = 0;
    }
    index[d] = s;
    weight[d] = w;
  }
  return { index, weight };
}

/** How a model wants its input planes: per tensor channel, which RGB channel it reads and its mean and spread on the 0..1 scale. */
export interface Normalisation {
  /** The RGB channel (0 R, 1 G, 2 B) each of the three tensor channels is read from. */
  readonly source: readonly [number, number, number];
  readonly mean: readonly [number, number, number];
  readonly std: readonly [number, number, number];
}

/**
 * Resizes `image` to `width` x `height` and writes it, normalised, as three
 * planes (CHW) into `out` starting at `offset`, each plane `planeWidth`
 * wide (at least `width`) and `height` high. Columns past `width` are left
 * as they are: the caller's fill (0 for PaddleOCR's recogniser) is the pad.
 */
export function resizeIntoPlanes(
  image: RgbImage, width: number, height: number, norm: Normalisation,
  out: Float32Array, offset = 0, planeWidth = width,
): void {
  const xs = sampling(image.width, width);
  const ys = sampling(image.height, height);
  const src = image.data;
  const rowStride = image.width * 3;
  const plane = planeWidth * height;
  const scale = [0, 1, 2].map((c) => 1 / (255 * norm.std[c]!));
  const shift = [0, 1, 2].map((c) => norm.mean[c]! / norm.std[c]!);
  for (let y = 0; y < height; y++) {
    const y0 = ys.index[y]!;
    const wy = ys.weight[y]!;
    const row0 = y0 * rowStride;
    const row1 = (wy > 0 ? y0 + 1 : y0) * rowStride;
    for (let x = 0; x < width; x++) {
      const x0 = xs.index[x]!;
      const wx = xs.weight[x]!;
      const a = x0 * 3;
      const b = (wx > 0 ? x0 + 1 : x0) * 3;
      const at = offset + y * planeWidth + x;
      for (let c = 0; c < 3; c++) {
        const s = norm.source[c]!;
        const top = src[row0 + a + s]! + (src[row0 + b + s]! - src[row0 + a + s]!) * wx;
        const bottom = src[row1 + a + s]! + (src[row1 + b + s]! - src[row1 + a + s]!) * wx;
        // Rounded to 8 bits as OpenCV's resize stores it, then normalised.
        const value = Math.round(top + (bottom - top) * wy);
        out[at + c * plane] = value * scale[c]! - shift[c]!;
      }
    }
  }
}

/** Base64 text to bytes, for clients that can only send strings (a JSON body); undefined when `text` is not base64. */
export function fromBase64(text: Uint8Array): Uint8Array | undefined {
  const values = new Uint8Array(text.length);
  let n = 0;
  for (const ch of text) {
    if (ch === 0x3d /* = */ || ch === 0x0a || ch === 0x0d || ch === 0x20) continue;
    const v = ch >= 0x41 && ch <= 0x5a ? ch - 0x41 : ch >= 0x61 && ch <= 0x7a ? ch - 0x61 + 26 : ch >= 0x30 && ch <= 0x39 ? ch - 0x30 + 52
      : ch === 0x2b || ch === 0x2d ? 62 : ch === 0x2f || ch === 0x5f ? 63 : -1;
    if (v < 0) return undefined;
    values[n++] = v;
  }
  if (n % 4 === 1) return undefined;
  const out = new Uint8Array(Math.floor((n * 3) / 4));
  let o = 0;
  for (let i = 0; i < n; i += 4) {
    const chunk = (values[i]! << 18) | (values[i + 1]! << 12) | ((values[i + 2] ?? 0) << 6) | (values[i + 3] ?? 0);
    out[o++] = chunk >> 16;
    if (i + 2 < n) out[o++] = (chunk >> 8) & 0xff;
    if (i + 3 < n) out[o++] = chunk & 0xff;
  }
  return out;
}
