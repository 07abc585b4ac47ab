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

/** The classifier's input: [3, 48, 192]. */
export function classifierInput(line: RgbImage): LineInput {
  const data = new Float32Array(3 * LINE_HEIGHT * CLS_WIDTH);
  resizeIntoPlanes(line, Math.min(CLS_WIDTH, scaledWidth(line)), LINE_HEIGHT, LINE_NORMALISATION, data, 0, CLS_WIDTH);
  return { data, width: CLS_WIDTH };
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

/**
 * Greedy CTC decoding of one line: the likeliest class at each time step,
 * repeats merged, blanks dropped. Classes are [blank, ...dictionary, ' '].
 * `probs` holds `steps` x `classes` probabilities from `offset`.
 */
export function ctcDecode(probs: Float32Array, steps: number, classes: number, dictionary: readonly string[], offset = 0): RecognizedText {
  if (classes !== dictionary.length + 2) {
    throw new Error(`the recogniser answers ${classes} classes, but the dictionary has ${dictionary.length} symbols (expected ${classes - 2}, plus blank and space)`);
  }
  let text = '';
  let sum = 0;
  let kept = 0;
  let previous = -1;
  for (let t = 0; t < steps; t++) {
    const row = offset + t * classes;
    let best = 0;
    let bestP = probs[row]!;
    for (let c = 1; c < classes; c++) {
      const p = probs[row + c]!;
      if (p > bestP) {
        bestP = p;
        best = c;
      }
    }
    if (best !== 0 && best !== previous) {
      text += best === classes - 1 ? ' ' : dictionary[best - 1]!;
      sum += bestP;
      kept++;
    }
    previous = best;
  }
  return { text, score: kept === 0 ? 0 : sum / kept };
}
