/**
 * The OCR pipeline's order of work, whatever runs the models: detect text
 * regions in the whole image, cut each out as an upright line, turn lines
 * the classifier finds upside down, recognise each line, and keep the
 * lines read with confidence. The `ocr` script runs the models through
 * ctx.infer (one request per line, so the server's batchers gather lines
 * across images); the bench's in-process baseline runs them directly.
 */
import { cropQuad, rotate180 } from './crop.ts';
import { boxesFromProbabilityMap, type DbOptions } from './db-postprocess.ts';
import { cropMap, DEFAULT_DET_LIMIT_SIDE, detectionInput, type DetectionInput } from './detect.ts';
import { classifierInput, ctcDecode, isUpsideDown, recognizerInput, type LineInput } from './recognize.ts';
import type { Quad, RgbImage } from './types.ts';

/** A probability map of the detector: `height` rows of `stride` values from `offset`, the image's own size top-left. */
export interface ProbabilityMap {
  readonly data: Float32Array;
  readonly stride: number;
  readonly offset?: number;
}

/** One recogniser answer: `steps` x `classes` probabilities from `offset`. */
export interface LineProbabilities {
  readonly data: Float32Array;
  readonly steps: number;
  readonly classes: number;
  readonly offset?: number;
}

/** The three models, however they are reached. Each takes a list and answers one result per entry, in order. */
export interface OcrModels {
  detect(input: DetectionInput): Promise<ProbabilityMap>;
  /** For each line, its two probabilities [upright, upside down]. */
  classify(lines: readonly LineInput[]): Promise<readonly ArrayLike<number>[]>;
  recognize(lines: readonly LineInput[]): Promise<readonly LineProbabilities[]>;
}

export interface OcrOptions {
  /** The longest side the detector sees (default 960); larger images are scaled down. */
  readonly limitSide?: number;
  /** Lines recognised with a lower mean character probability are dropped (default 0.5). */
  readonly dropScore?: number;
  /** Run the angle classifier and turn upside-down lines (default true). */
  readonly classifyAngle?: boolean;
  readonly db?: Partial<DbOptions>;
}

export interface OcrLine {
  readonly text: string;
  readonly score: number;
  /** Corners in the image: top-left, top-right, bottom-right, bottom-left of the text as read. */
  readonly box: Quad;
}

export const DEFAULT_DROP_SCORE = 0.5;

export async function readText(image: RgbImage, models: OcrModels, dictionary: readonly string[], options: OcrOptions = {}): Promise<OcrLine[]> {
  const input = detectionInput(image, options.limitSide ?? DEFAULT_DET_LIMIT_SIDE);
  const map = await models.detect(input);
  const probabilities = cropMap(map.data, map.stride, input.width, input.height, map.offset ?? 0);
  const boxes = boxesFromProbabilityMap(probabilities, input.width, input.height, image.width, image.height, options.db);
  if (boxes.length === 0) return [];
  let lines = boxes.map((b) => cropQuad(image, b.box));
  if (options.classifyAngle ?? true) {
    const angles = await models.classify(lines.map(classifierInput));
    lines = lines.map((line, i) => (isUpsideDown(angles[i]!) ? rotate180(line) : line));
  }
  const read = await models.recognize(lines.map((line) => recognizerInput(line)));
  const dropScore = options.dropScore ?? DEFAULT_DROP_SCORE;
  const found: OcrLine[] = [];
  read.forEach((r, i) => {
    const { text, score } = ctcDecode(r.data, r.steps, r.classes, dictionary, r.offset ?? 0);
    if (score >= dropScore && text !== '') found.push({ text, score, box: boxes[i]!.box });
  });
  return found;
}
