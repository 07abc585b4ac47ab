/**
 * text_features: each row of TEXT (one string) becomes 32 features. The
 * text is lower-cased and padded with a space at each end; every character
 * trigram is hashed (FNV-1a) into one of 32 buckets and counted; the counts
 * are scaled to a root mean square of 1, so long and short texts compare
 * and the classifier sees inputs of the size it expects. Deterministic, and
 * the same in every isolate.
 */
import type { InferRequest, InferResponse, ModelScript, Tensor } from '../../../scripts-runtime/author-api.js';

type Inputs = { readonly TEXT: Tensor<'BYTES'> };

const WIDTH = 32;

export default class TextFeatures implements ModelScript<Inputs> {
  execute(requests: readonly InferRequest<Inputs>[]): InferResponse[] {
    return requests.map(({ inputs: { TEXT } }) => {
      // An empty text fails its own request only; the rest of the batch is answered.
      const empty = TEXT.data.findIndex((text) => text.trim() === '');
      if (empty >= 0) return { error: `TEXT row ${empty} is empty: there is nothing to featurize` };
      const features = new Float32Array(TEXT.data.length * WIDTH);
      TEXT.data.forEach((text, row) => featurize(text, features.subarray(row * WIDTH, (row + 1) * WIDTH)));
      return { outputs: { FEATURES: { shape: [TEXT.data.length, WIDTH], data: features } } };
    });
  }
}

function featurize(text: string, into: Float32Array): void {
  const chars = Array.from(` ${text.toLowerCase()} `);
  for (let i = 0; i + 3 <= chars.length; i++) into[fnv1a(chars[i]! + chars[i + 1]! + chars[i + 2]!) % WIDTH]! += 1;
  let sumOfSquares = 0;
  for (const v of into) sumOfSquares += v * v;
  const scale = Math.sqrt(WIDTH / sumOfSquares);
  for (let i = 0; i < WIDTH; i++) into[i]! *= scale;
}

/** 32-bit FNV-1a over the UTF-16 code units. */
function fnv1a(s: string): number {
  let hash = 0x811c9dc5;
  for (let i = 0; i < s.length; i++) hash = Math.imul(hash ^ s.charCodeAt(i), 0x01000193);
  return hash >>> 0;
}
