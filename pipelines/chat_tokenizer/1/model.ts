/**
 * chat_tokenizer: TEXT (one string) becomes TOKENS, one vocabulary id per
 * character. The same encoding as encodeChat in
 * generator/char-language-model.ts, which wrote chatbot_lm's weights; a
 * script cannot import it, so the vocabulary is copied here, and
 * test/pipelines/chatbot.test.ts checks that the two agree.
 */
import type { InferRequest, InferResponse, ModelScript, Tensor } from '../../../scripts-runtime/author-api.js';

type Inputs = { readonly TEXT: Tensor<'BYTES'> };

/** chatbot_lm's characters, in id order; anything else reads as a space (id 0). */
const VOCABULARY = " abcdefghijklmnopqrstuvwxyz.,?!'";

export default class ChatTokenizer implements ModelScript<Inputs> {
  execute(requests: readonly InferRequest<Inputs>[]): InferResponse[] {
    return requests.map(({ inputs: { TEXT } }) => {
      const tokens = encode(TEXT.data[0]!);
      return { outputs: { TOKENS: { shape: [tokens.length], data: BigInt64Array.from(tokens, BigInt) } } };
    });
  }
}

/** Lower-cased; characters outside the vocabulary are spaces, and a space never follows a space. */
function encode(text: string): number[] {
  const ids: number[] = [];
  for (const ch of text.toLowerCase()) {
    const id = Math.max(0, VOCABULARY.indexOf(ch));
    if (id === 0 && ids[ids.length - 1] === 0) continue;
    ids.push(id);
  }
  return ids;
}
