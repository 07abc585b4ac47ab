/**
 * The OCR pipeline's order of work, whatever runs the models: detect text
 * regions in the whole image, cut each out as an upright line, turn lines
 * the classifier finds upside down, recognise each line, and keep the
 * lines read with confidence. The `ocr` script runs the models through
 * ctx.infer (one request per line, so the server's batchers gather lines
 * across images); the bench's in-process baseline runs them directly.
 *
 * Lines go through classification and recognition in runs, so that a page
 * of many long lines never holds every line's pixels and tensors at once:
 * a run is at most LINES_PER_RUN lines and REC_WIDTH_PER_RUN pixels of
 * recogniser width (each pixel of width is 576 bytes of input).
 */
import { cropQuad, rotate180 } from './crop.ts';
import { boxesFromProbabilityMap, type DbOptions } from './db-postprocess.ts';
import { cropMap, DEFAULT_DET_LIMIT_SIDE, detectionInput, type DetectionInput } from './detect.ts';
import { classifierInput, decodeBestPath, isUpsideDown, recognizerInput, recognizerWidth, type BestPath, type LineInput } from './recognize.ts';
import type { Quad, RgbImage } from './types.ts';

/** A probability map of the detector: `height` rows of `stride` values from `offset`, the image's own size top-left. */
export interface ProbabilityMap {
  readonly data: Float32Array;
  readonly stride: number;
  readonly offset?: number;
}

/** The three models, however they are reached. Each takes a list and answers one result per entry, in order. */
export interface OcrModels {
  detect(input: DetectionInput): Promise<ProbabilityMap>;
  /** For each line, its two probabilities [upright, upside down]. */
  classify(lines: readonly LineInput[]): Promise<readonly ArrayLike<number>[]>;
  /** For each line, the recogniser's best class and its probability at each time step. */
  recognize(lines: readonly LineInput[]): Promise<readonly BestPath[]>;
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
  /** Corners in the image as detected: top-left, top-right, bottom-right, bottom-left. */
  readonly box: Quad;
}

export const DEFAULT_DROP_SCORE = 0.5;
/** The most lines classified and recognised at once. */
export const LINES_PER_RUN = 64;
/** The most recogniser width (pixels, summed over lines) held at once: 64 Ki pixels are 36 MB of input. */
export const REC_WIDTH_PER_RUN = 65_536;

export async function readText(image: RgbImage, models: OcrModels, dictionary: readonly string[], options: OcrOptions = {}): Promise<OcrLine[]> {
  const input = detectionInput(image, options.limitSide ?? DEFAULT_DET_LIMIT_SIDE);
  const map = await models.detect(input);
  const probabilities = cropMap(map.data, map.stride, input.width, input.height, map.offset ?? 0);
  const boxes = boxesFromProbabilityMap(probabilities, input.width, input.height, image.width, image.height, options.db);
  const dropScore = options.dropScore ?? DEFAULT_DROP_SCORE;
  const found: OcrLine[] = [];
  let start = 0;
  /** A line cut out that did not fit the run before: it leads the next one. */
  let carried: RgbImage | undefined;
  while (start < boxes.length) {
    // The next run: lines up to the count and width budgets (a single wider line is a run of its own).
    let lines: RgbImage[] = [];
    let width = 0;
    while (start + lines.length < boxes.length && lines.length < LINES_PER_RUN) {
      const line = carried ?? cropQuad(image, boxes[start + lines.length]!.box);
      carried = undefined;
      if (lines.length > 0 && width + recognizerWidth(line) > REC_WIDTH_PER_RUN) {
        carried = line;
        break;
      }
      width += recognizerWidth(line);
      lines.push(line);
    }
    if (options.classifyAngle ?? true) {
      const angles = await models.classify(lines.map(classifierInput));
      lines = lines.map((line, i) => (isUpsideDown(angles[i]!) ? rotate180(line) : line));
    }
    const paths = await models.recognize(lines.map((line) => recognizerInput(line)));
    paths.forEach((path, i) => {
      const { text, score } = decodeBestPath(path, dictionary);
      if (score >= dropScore && text !== '') found.push({ text, score, box: boxes[start + i]!.box });
    });
    start += lines.length;
  }
  return found;
}
