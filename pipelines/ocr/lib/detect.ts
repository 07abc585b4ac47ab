/**
 * The detector's input: PaddleOCR's DB models take the whole image,
 * resized so that its longer side is at most a limit (960 by default, never
 * enlarged) and each side is a multiple of 32 (the network halves the image
 * five times), normalised with ImageNet's mean and spread in BGR order, as
 * PaddleOCR feeds OpenCV's BGR pixels.
 */
import { roundHalfEven } from './geometry.ts';
import { resizeIntoPlanes, type Normalisation } from './image.ts';
import type { RgbImage } from './types.ts';

export const DEFAULT_DET_LIMIT_SIDE = 960;

const DET_NORMALISATION: Normalisation = { source: [2, 1, 0], mean: [0.485, 0.456, 0.406], std: [0.229, 0.224, 0.225] };

/** The detector's input size for an image: the longer side at most `limit`, both sides rounded to multiples of 32, at least 32. */
export function detectionSize(width: number, height: number, limit = DEFAULT_DET_LIMIT_SIDE): { width: number; height: number } {
  const ratio = Math.max(width, height) > limit ? limit / Math.max(width, height) : 1;
  const side = (n: number): number => Math.max(roundHalfEven(Math.trunc(n * ratio) / 32) * 32, 32);
  return { width: side(width), height: side(height) };
}

/** The detector's input tensor (CHW, one image) and its size. */
export interface DetectionInput {
  readonly data: Float32Array;
  readonly width: number;
  readonly height: number;
}

export function detectionInput(image: RgbImage, limit = DEFAULT_DET_LIMIT_SIDE): DetectionInput {
  const { width, height } = detectionSize(image.width, image.height, limit);
  const data = new Float32Array(3 * width * height);
  resizeIntoPlanes(image, width, height, DET_NORMALISATION, data);
  return { data, width, height };
}

/**
 * The top-left `width` x `height` of a probability map `stride` columns
 * wide: a map computed for a batch padded past this image's own size.
 */
export function cropMap(map: Float32Array, stride: number, width: number, height: number, offset = 0): Float32Array {
  if (stride === width && offset === 0 && map.length === width * height) return map;
  const out = new Float32Array(width * height);
  for (let y = 0; y < height; y++) out.set(map.subarray(offset + y * stride, offset + y * stride + width), y * width);
  return out;
}
