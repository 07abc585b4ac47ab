/**
 * text_length: WORDS is the number of words of each row of TEXT (runs of
 * letters or digits); SHORT is one answer for the whole request, repeated
 * in every row, because an ensemble condition decides for a request as a
 * whole: true when every row has at most MAX_WORDS words (the optional
 * input, per row; the config's "max_words" parameter without it). The
 * request parameter "path" overrides it: "cheap" is true, "full" false.
 */
import type { InferRequest, InferResponse, ModelContext, ModelScript, Tensor } from '../../../scripts-runtime/author-api.js';

type Inputs = { readonly TEXT: Tensor<'BYTES'>; readonly MAX_WORDS?: Tensor<'INT32'> };

const WORD = /[\p{L}\p{N}]+/gu;

export default class TextLength implements ModelScript<Inputs> {
  private maxWords = 0;

  initialize(ctx: ModelContext): void {
    const text = ctx.config.parameters?.['max_words']?.string_value ?? '';
    const value = Number(text);
    if (text.trim() === '' || !Number.isInteger(value) || value < 0) {
      throw new Error(`parameters "max_words" is "${text}": give a whole number of words, 0 or more`);
    }
    this.maxWords = value;
  }

  execute(requests: readonly InferRequest<Inputs>[]): InferResponse[] {
    return requests.map(({ inputs: { TEXT, MAX_WORDS }, parameters }) => {
      const path = parameters['path'];
      if (path !== undefined && path !== 'cheap' && path !== 'full') {
        return { error: `parameter "path" is ${JSON.stringify(String(path))}: give "cheap", "full", or leave it out to route by length` };
      }
      const rows = TEXT.data.length;
      const words = new Int32Array(rows);
      let short = true;
      for (let row = 0; row < rows; row++) {
        words[row] = TEXT.data[row]!.match(WORD)?.length ?? 0;
        if (words[row] === 0) return { error: `TEXT row ${row} has no words: there is nothing to classify` };
        if (words[row]! > (MAX_WORDS ? MAX_WORDS.data[row]! : this.maxWords)) short = false;
      }
      if (path !== undefined) short = path === 'cheap';
      return {
        outputs: {
          WORDS: { shape: [rows, 1], data: words },
          SHORT: { shape: [rows, 1], data: new Uint8Array(rows).fill(short ? 1 : 0) },
        },
      };
    });
  }
}
