/**
 * The OCR accuracy score of issue 22: 1 − edit distance / length, over text
 * normalised so that what the PP-OCRv4 recogniser does by design is not
 * counted as an error:
 * - NFKC, which folds full-width letters, digits and most full-width
 *   punctuation (，：；（）！？) and the ideographic space to ASCII;
 * - all whitespace removed: the Chinese+ASCII recogniser drops most spaces
 *   between English words;
 * - PUNCTUATION_FOLDS below: CJK punctuation that NFKC leaves alone but the
 *   dictionary holds next to the ASCII sign it stands for.
 */

/**
 * Full-width or typographic punctuation -> the ASCII sign it is read as.
 * Only signs with one plain ASCII reading are folded; the middle dot `·` is
 * not (it is read as `.` by some and as a separator by others), so a `·` for a
 * `.` counts as an error.
 */
export const PUNCTUATION_FOLDS: ReadonlyMap<string, string> = new Map([
  ['\u3002', '.'], // 。 ideographic full stop
  ['\uFF61', '.'], // ｡ half-width ideographic full stop
  ['\u3001', ','], // 、 ideographic comma
  ['\uFF64', ','], // ､ half-width ideographic comma
  ['\u201C', '"'], // “
  ['\u201D', '"'], // ”
  ['\u201E', '"'], // „
  ['\u2018', "'"], // ‘
  ['\u2019', "'"], // ’
  ['\u201A', "'"], // ‚
  ['\u2010', '-'], // ‐ hyphen
  ['\u2012', '-'], // ‒ figure dash
  ['\u2013', '-'], // – en dash
  ['\u2014', '-'], // — em dash
  ['\u2015', '-'], // ― horizontal bar
  ['\u2212', '-'], // − minus sign
  ['\u300A', '<'], // 《
  ['\u300B', '>'], // 》
  ['\u3008', '<'], // 〈
  ['\u3009', '>'], // 〉
  ['\u3010', '['], // 【
  ['\u3011', ']'], // 】
]);

/** The text as the score compares it: NFKC, punctuation folded, no whitespace. */
export function normalizeForScoring(text: string): string {
  let folded = '';
  for (const char of text.normalize('NFKC')) folded += PUNCTUATION_FOLDS.get(char) ?? char;
  return folded.replace(/\s+/gu, '');
}

/** Levenshtein distance over code points (a character outside the BMP counts once). */
export function editDistance(a: string, b: string): number {
  const x = Array.from(a), y = Array.from(b);
  let previous = Array.from({ length: y.length + 1 }, (_, j) => j);
  for (let i = 1; i <= x.length; i++) {
    const current = [i];
    for (let j = 1; j <= y.length; j++) {
      const substitution = previous[j - 1]! + (x[i - 1] === y[j - 1] ? 0 : 1);
      current.push(Math.min(substitution, previous[j]! + 1, current[j - 1]! + 1));
    }
    previous = current;
  }
  return previous[y.length]!;
}

/**
 * max(0, 1 − editDistance(norm(expected), norm(got)) / length(norm(expected))),
 * lengths in code points. An expected text that normalises to nothing scores 1
 * when the output does too, else 0.
 */
export function characterAccuracy(expected: string, got: string): number {
  const want = normalizeForScoring(expected), have = normalizeForScoring(got);
  const length = Array.from(want).length;
  if (length === 0) return have.length === 0 ? 1 : 0;
  return Math.max(0, 1 - editDistance(want, have) / length);
}
