/**
 * The angle classifier's and the recogniser's inputs, and CTC decoding of
 * the recogniser's output, as PaddleOCR's defaults do them.
 *
 * Both models take a text line 48 pixels high, scaled to keep its aspect,
 * normalised to [-1, 1] and padded on the right with 0. The classifier's
 * line is at most 192 wide (longer ones are squeezed). The recogniser's is
 * at least 320 wide, and as long as the line needs: PP-OCRv4 reads one
 * column of output (a time step) per 8 pixels.
 */
import { resizeIntoPlanes, type Normalisation } from './image.ts';
import type { RgbImage } from './types.ts';

export const LINE_HEIGHT = 48;
export const CLS_WIDTH = 192;
export const REC_MIN_WIDTH = 320;
/** The classifier's label for a line it finds upside down, and how sure it must be before the line is turned. */
export const CLS_FLIP_THRESHOLD = 0.9;

const LINE_NORMALISATION: Normalisation = { source: [2, 1, 0], mean: [0.5, 0.5, 0.5], std: [0.5, 0.5, 0.5] };

/** A line's tensor (CHW) and its padded width. */
export interface LineInput {
  readonly data: Float32Array;
  readonly width: number;
}

/** The width a line fills at height 48, before padding. */
function scaledWidth(image: RgbImage): number {
  return Math.max(1, Math.ceil((LINE_HEIGHT * image.width) / image.height));
}

/**
 * The classifier's input: [3, 48, 192]. A line longer than 192:48 is not
 * squeezed into it, as PaddleOCR does: squeezed, long upright lines were
 * judged upside down (7 of 40 lines of 120 characters read right), so the
 * classifier sees the middle of the line at its own aspect instead (40 of 40).
 */
export function classifierInput(line: RgbImage): LineInput {
  const data = new Float32Array(3 * LINE_HEIGHT * CLS_WIDTH);
  const window = Math.ceil((line.height * CLS_WIDTH) / LINE_HEIGHT);
  const seen = line.width > window ? columns(line, Math.floor((line.width - window) / 2), window) : line;
  resizeIntoPlanes(seen, Math.min(CLS_WIDTH, scaledWidth(seen)), LINE_HEIGHT, LINE_NORMALISATION, data, 0, CLS_WIDTH);
  return { data, width: CLS_WIDTH };
}

/** Columns `from` to `from + width` of an image. */
function columns(image: RgbImage, from: number, width: number): RgbImage {
  const data = new Uint8Array(width * image.height * 3);
  for (let y = 0; y < image.height; y++) {
    const start = (y * image.width + from) * 3;
    data.set(image.data.subarray(start, start + width * 3), y * width * 3);
  }
  return { width, height: image.height, data };
}

/** The recogniser's width for a line alone: 320, or more for a long line. */
export function recognizerWidth(line: RgbImage): number {
  return Math.max(REC_MIN_WIDTH, Math.trunc((LINE_HEIGHT * line.width) / line.height));
}

/** The recogniser's input: [3, 48, W], W from recognizerWidth unless given (a batch's widest). */
export function recognizerInput(line: RgbImage, width = recognizerWidth(line)): LineInput {
  const data = new Float32Array(3 * LINE_HEIGHT * width);
  resizeIntoPlanes(line, Math.min(width, scaledWidth(line)), LINE_HEIGHT, LINE_NORMALISATION, data, 0, width);
  return { data, width };
}

/** Whether the classifier's two probabilities ([0°, 180°]) say the line is upside down. */
export function isUpsideDown(probabilities: ArrayLike<number>, offset = 0): boolean {
  const upright = probabilities[offset]!;
  const flipped = probabilities[offset + 1]!;
  return flipped > upright && flipped > CLS_FLIP_THRESHOLD;
}

/** The recogniser's dictionary from its keys file: one symbol a line. */
export function parseDictionary(text: string): string[] {
  const lines = text.split('\n').map((l) => (l.endsWith('\r') ? l.slice(0, -1) : l));
  if (lines.at(-1) === '') lines.pop();
  return lines;
}

export interface RecognizedText {
  readonly text: string;
  /** Mean probability of the characters kept; 0 when none. */
  readonly score: number;
}

/** A line's best path: the likeliest class at each time step and its probability. */
export interface BestPath {
  readonly best: ArrayLike<number>;
  readonly prob: ArrayLike<number>;
  readonly steps: number;
  /** Where the line's steps start in `best` and `prob` (a batch's answer holds several lines). */
  readonly offset?: number;
}

/**
 * The best path of one line from the recogniser's probabilities: `steps`
 * rows of `classes` from `offset`. (ocr_ctc does the same in the server.)
 */
export function bestPath(probs: Float32Array, steps: number, classes: number, offset = 0): BestPath {
  const best = new Int32Array(steps);
  const prob = new Float32Array(steps);
  for (let t = 0; t < steps; t++) {
    const row = offset + t * classes;
    let b = 0;
    let p = probs[row]!;
    for (let c = 1; c < classes; c++) {
      if (probs[row + c]! > p) {
        p = probs[row + c]!;
        b = c;
      }
    }
    best[t] = b;
    prob[t] = p;
  }
  return { best, prob, steps };
}

/**
 * Greedy CTC decoding of one line's best path: repeats merged, blanks
 * dropped. Classes are [blank, ...dictionary, ' ']; the score is the mean
 * probability of the characters kept.
 */
export function decodeBestPath(path: BestPath, dictionary: readonly string[]): RecognizedText {
  const space = dictionary.length + 1;
  const offset = path.offset ?? 0;
  let text = '';
  let sum = 0;
  let kept = 0;
  let previous = -1;
  for (let t = 0; t < path.steps; t++) {
    const best = path.best[offset + t]!;
    if (!Number.isInteger(best) || best < 0 || best > space) {
      throw new Error(`time step ${t} names class ${best}, but the dictionary has ${dictionary.length} symbols (classes 0 to ${space})`);
    }
    if (best !== 0 && best !== previous) {
      text += best === space ? ' ' : dictionary[best - 1]!;
      sum += path.prob[offset + t]!;
      kept++;
    }
    previous = best;
  }
  return { text, score: kept === 0 ? 0 : sum / kept };
}
