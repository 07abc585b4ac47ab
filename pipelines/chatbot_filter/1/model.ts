/**
 * chatbot_filter: one request is one turn of a chatbot conversation. The
 * turn goes to chatbot unchanged (its text and every parameter), and its
 * reply comes back through ctx.inferStream a word at a time. Each word is
 * sent on as soon as it arrives, rewritten:
 * - the first word of the reply, and each word after a sentence end, starts with a capital;
 * - a word on the mask list keeps its first letter, the rest of its letters become '*'.
 *
 * The stream is read one response at a time, so when this script's client
 * reads slowly, send() waits, the script stops reading, and chatbot waits
 * in its own send(): the whole chain holds back. When the client goes away,
 * send() answers false and the loop breaks, which cancels chatbot's turn.
 */
import type {
  DecoupledModelScript, DecoupledRequest, InferError, ModelContext, Tensor,
} from '../../../scripts-runtime/author-api.js';

type Inputs = { readonly text_input: Tensor<'BYTES'> };
type Outputs = { readonly text_output: Tensor<'BYTES'> };

const CHATBOT = 'chatbot';
/** This model's own request parameter; chatbot ignores it, so it passes through with the rest. */
const MASK_PARAMETER = 'mask';
/** Words listed in one mask, at most; a longer list is refused. */
const MAX_MASKED_WORDS = 100;

export default class ChatbotFilter implements DecoupledModelScript<Inputs> {
  async execute(requests: readonly DecoupledRequest<Inputs>[], ctx: ModelContext): Promise<void> {
    // Each turn streams on its own; chatbot batches their characters together.
    await Promise.all(requests.map((request) => this.relay(request, ctx)));
  }

  private async relay(request: DecoupledRequest<Inputs>, ctx: ModelContext): Promise<void> {
    const mask = maskOf(request.parameters[MASK_PARAMETER], ctx.config.parameters?.['masked_words']?.string_value ?? '');
    if (typeof mask === 'string') {
      request.send({ error: mask }, { final: true });
      return;
    }
    const stream = ctx.inferStream<Outputs>({
      model: CHATBOT,
      inputs: { text_input: { datatype: 'BYTES', shape: request.inputs.text_input.shape, data: request.inputs.text_input.data } },
      parameters: request.parameters,
    });
    let sentenceStart = true;
    try {
      for await (const response of stream) {
        const word = response.outputs.text_output.data[0] ?? '';
        const tidy = rewrite(word, sentenceStart, mask);
        sentenceStart = /[.?!]$/.test(word);
        // chatbot flags its last word final; so does the filter, and its client hears the end with it.
        const sent = request.send({ outputs: { text_output: { shape: [1, 1], data: [tidy] } } }, { final: response.final });
        // false: the client went away. Leaving the loop closes the stream, which cancels chatbot's turn.
        if (!sent) return;
      }
    } catch (err) {
      // chatbot refused the turn (no sequence_id, say) or failed: its message names it.
      request.send({ error: (err as InferError).message }, { final: true });
    }
  }
}

/** The masked words, lower-case, from the request's `mask` or else the config's list; or what is wrong with it. */
function maskOf(requested: unknown, configured: string): ReadonlySet<string> | string {
  if (requested !== undefined && typeof requested !== 'string') {
    return `${MASK_PARAMETER} is ${String(requested)}; use a comma-separated list of words, e.g. "night,dark"`;
  }
  const words = (requested ?? configured).split(',').map((w) => w.trim().toLowerCase()).filter((w) => w !== '');
  if (words.length > MAX_MASKED_WORDS) return `${MASK_PARAMETER} lists ${words.length} words; at most ${MAX_MASKED_WORDS}`;
  return new Set(words);
}

/** One streamed word (a leading space, letters, maybe punctuation) rewritten; spaces and punctuation stay. */
function rewrite(chunk: string, sentenceStart: boolean, mask: ReadonlySet<string>): string {
  return chunk.replace(/[a-z']+/, (word) => {
    const shown = mask.has(word) ? word[0] + '*'.repeat(word.length - 1) : word;
    return sentenceStart ? shown[0]!.toUpperCase() + shown.slice(1) : shown;
  });
}
