/**
 * chatbot: one request is one turn of a conversation. The turn's text goes
 * through chat_tokenizer, then character by character into chatbot_lm under
 * the conversation's sequence_id, so the language model's state (the
 * conversation's context) is the sequence batcher's to keep between turns.
 * The reply is sampled from chatbot_lm's LOGITS one character at a time,
 * each character fed back, and streamed a word at a time with send().
 *
 * Sampling is deterministic: a seeded generator whose seed comes from the
 * `seed` parameter (or the conversation id) and the turn number. The same
 * conversation therefore gets the same replies on any server, and a turn's
 * reply depends on the turns before it twice over: through the model's
 * state, and through the turn number in the seed.
 *
 * This isolate remembers the conversations it has started (and their turn
 * counts), so the first character of a new conversation carries
 * sequence_start. If chatbot_lm has meanwhile ended a conversation (idle
 * too long, or reloaded), the first call of the turn is refused with
 * SEQUENCE_NOT_STARTED, and the conversation starts afresh.
 */
import type {
  DecoupledModelScript, DecoupledRequest, InferError, ModelContext, ParameterValue, Tensor,
} from '../../../scripts-runtime/author-api.js';

type Inputs = { readonly text_input: Tensor<'BYTES'> };

const TOKENIZER = 'chat_tokenizer';
const LANGUAGE_MODEL = 'chatbot_lm';
/** chatbot_lm's characters, in id order (generator/char-language-model.ts), to read the sampled ids back as text. */
const VOCABULARY = " abcdefghijklmnopqrstuvwxyz.,?!'";
const SPACE = 0;
const PUNCTUATION = new Set([...".,?!'"].map((c) => VOCABULARY.indexOf(c)));
const SENTENCE_ENDS = new Set([...'.?!'].map((c) => VOCABULARY.indexOf(c)));

const DEFAULT_MAX_TOKENS = 120;
const MAX_TOKENS_LIMIT = 1000;
const DEFAULT_TEMPERATURE = 0.8;
/** Only the likeliest few characters are drawn from: a character model this small spells badly past them. */
const TOP_K = 4;
/** A reply ends at the first sentence end after this many characters (or at max_tokens). */
const MIN_REPLY_CHARS = 40;
/** Characters of one turn's text; every one is a call to chatbot_lm. */
const MAX_PROMPT_CHARS = 1000;
/** Conversations this isolate remembers; the least recently used is forgotten first (it restarts if it comes back). */
const MAX_CONVERSATIONS = 10_000;

interface Turn {
  readonly request: DecoupledRequest<Inputs>;
  /** The sequence_id as the client sent it, passed on to chatbot_lm unchanged. */
  readonly conversation: ParameterValue;
  /** The conversation as chatbot_lm tells sequences apart: the number 5 and the string "5" differ. */
  readonly key: string;
  readonly prompt: string;
  readonly maxTokens: number;
  readonly temperature: number;
  readonly seed: string | undefined;
  readonly newConversation: boolean;
  readonly endConversation: boolean;
}

export default class Chatbot implements DecoupledModelScript<Inputs> {
  /** Conversation key -> turns answered so far, for the conversations this isolate has started. */
  private readonly conversations = new Map<string, number>();

  async execute(requests: readonly DecoupledRequest<Inputs>[], ctx: ModelContext): Promise<void> {
    // Conversations run side by side, so their calls to chatbot_lm batch together; turns of one conversation run in order.
    const byConversation = new Map<string, Turn[]>();
    for (const request of requests) {
      const turn = readTurn(request);
      if (typeof turn === 'string') {
        request.send({ error: turn }, { final: true });
        continue;
      }
      const turns = byConversation.get(turn.key) ?? [];
      turns.push(turn);
      byConversation.set(turn.key, turns);
    }
    await Promise.all([...byConversation.values()].map(async (turns) => {
      for (const turn of turns) await this.answer(turn, ctx);
    }));
  }

  private async answer(turn: Turn, ctx: ModelContext): Promise<void> {
    const { request } = turn;
    let step = TOKENIZER;
    try {
      const tokenized = await ctx.infer<{ TOKENS: Tensor<'INT64'> }>({
        model: TOKENIZER,
        inputs: { TEXT: { datatype: 'BYTES', shape: [1], data: [separated(turn.prompt)] } },
      });
      const tokens = Array.from(tokenized.outputs.TOKENS.data, Number);
      step = LANGUAGE_MODEL;
      let start = turn.newConversation || !this.conversations.has(turn.key);
      let turnNumber = start ? 0 : this.conversations.get(turn.key)!;
      let logits: Float32Array | undefined;
      for (const [i, token] of tokens.entries()) {
        if (request.isCancelled()) return;
        try {
          logits = await this.next(ctx, turn, token, { start: start && i === 0, end: false });
        } catch (err) {
          if (i > 0 || start || (err as InferError).code !== 'SEQUENCE_NOT_STARTED') throw err;
          ctx.log.info(`conversation ${String(turn.conversation)} had ended in ${LANGUAGE_MODEL}; it starts afresh`);
          start = true;
          turnNumber = 0;
          logits = await this.next(ctx, turn, token, { start: true, end: false });
        }
      }
      this.remember(turn.key, turnNumber + 1);
      await this.reply(turn, ctx, logits!, turnNumber);
    } catch (err) {
      request.send({ error: `step '${step}' failed: ${(err as InferError).message}` }, { final: true });
    }
  }

  /** Samples the reply from `logits`, feeding each character back, and streams it a word at a time. */
  private async reply(turn: Turn, ctx: ModelContext, logits: Float32Array, turnNumber: number): Promise<void> {
    const { request } = turn;
    const random = mulberry32(fnv1a(turn.seed !== undefined ? `seed ${turn.seed} turn ${turnNumber}` : `conversation ${turn.key} turn ${turnNumber}`));
    let word = '';
    let last = SPACE;
    for (let generated = 1; ; generated++) {
      const next = sample(logits, last, turn.temperature, random);
      // A word goes out when the next one begins, with its leading space: the stream's texts joined are the reply.
      if (next === SPACE && word !== '') {
        if (!request.send({ outputs: { text_output: { shape: [1, 1], data: [word] } } })) return;
        word = '';
      }
      word += VOCABULARY[next]!;
      last = next;
      const done = generated >= turn.maxTokens || (SENTENCE_ENDS.has(next) && generated >= MIN_REPLY_CHARS);
      // Fed back even when it is the last, so that the next turn's context holds the whole reply.
      logits = await this.next(ctx, turn, next, { start: false, end: done && turn.endConversation });
      if (request.isCancelled()) return;
      if (done) break;
    }
    if (turn.endConversation) this.conversations.delete(turn.key);
    request.send({ outputs: { text_output: { shape: [1, 1], data: [word] } } }, { final: true });
  }

  /** One character into the conversation's sequence; the scores of the character after it. */
  private async next(ctx: ModelContext, turn: Turn, token: number, flags: { start: boolean; end: boolean }): Promise<Float32Array> {
    const result = await ctx.infer<{ LOGITS: Tensor<'FP32'> }>({
      model: LANGUAGE_MODEL,
      inputs: { TOKEN: { datatype: 'INT64', shape: [1, 1], data: [BigInt(token)] } },
      parameters: {
        sequence_id: turn.conversation,
        ...(flags.start ? { sequence_start: true } : {}),
        ...(flags.end ? { sequence_end: true } : {}),
      },
    });
    return result.outputs.LOGITS.data;
  }

  private remember(key: string, turns: number): void {
    this.conversations.delete(key);
    this.conversations.set(key, turns);
    if (this.conversations.size > MAX_CONVERSATIONS) this.conversations.delete(this.conversations.keys().next().value!);
  }
}

/** The turn a request asks for, or the message that says what is wrong with it. */
function readTurn(request: DecoupledRequest<Inputs>): Turn | string {
  const p = request.parameters;
  const text = request.inputs.text_input.data;
  if (text.length !== 1) return `a request is one turn of one conversation, so text_input takes one text; got ${text.length}`;
  const prompt = text[0]!.trim();
  if (prompt === '') return 'text_input is empty: there is nothing to reply to';
  if ([...prompt].length > MAX_PROMPT_CHARS) return `text_input has ${[...prompt].length} characters; one turn takes at most ${MAX_PROMPT_CHARS}`;

  const conversation = p['sequence_id'];
  if (conversation === undefined || conversation === 0 || conversation === 0n || conversation === '') {
    return 'the chatbot needs a conversation id: set the request parameter sequence_id (an unsigned integer or a string) ' +
      'and send the same one with every turn of the conversation, e.g. {"text_input": "hello", "parameters": {"sequence_id": 42}}';
  }
  let key: string;
  if (typeof conversation === 'string') key = `s${conversation}`;
  else if ((typeof conversation === 'number' && Number.isSafeInteger(conversation) && conversation > 0) || (typeof conversation === 'bigint' && conversation > 0n)) {
    key = `u${conversation}`;
  } else return `sequence_id is ${String(conversation)}; use an unsigned integer or a string`;

  const maxTokens = p['max_tokens'] === undefined ? DEFAULT_MAX_TOKENS : whole(p['max_tokens']);
  if (maxTokens === undefined || maxTokens < 1 || maxTokens > MAX_TOKENS_LIMIT) {
    return `max_tokens is ${String(p['max_tokens'])}; use a whole number of characters from 1 to ${MAX_TOKENS_LIMIT}`;
  }
  const temperature = p['temperature'] === undefined ? DEFAULT_TEMPERATURE : Number(p['temperature']);
  if (typeof p['temperature'] === 'string' || typeof p['temperature'] === 'boolean' || !(temperature >= 0 && temperature <= 10)) {
    return `temperature is ${String(p['temperature'])}; use a number from 0 (always the likeliest character) to 10`;
  }
  const seed = p['seed'];
  if (seed !== undefined && typeof seed === 'boolean') return `seed is ${seed}; use a number or a string`;
  for (const flag of ['new_conversation', 'end_conversation']) {
    if (p[flag] !== undefined && typeof p[flag] !== 'boolean') return `${flag} is ${String(p[flag])}; use true or false`;
  }
  return {
    request, conversation, key, prompt, maxTokens, temperature,
    seed: seed === undefined ? undefined : String(seed),
    newConversation: p['new_conversation'] === true,
    endConversation: p['end_conversation'] === true,
  };
}

/** A whole number given as a number (HTTP) or a bigint (a gRPC int64_param); anything else is undefined. */
function whole(value: ParameterValue | undefined): number | undefined {
  if (typeof value === 'bigint') return Number(value);
  return typeof value === 'number' && Number.isInteger(value) ? value : undefined;
}

/** The turn's text as the model reads it: a sentence of its own, set off by spaces from the reply before it and the reply after it. */
function separated(prompt: string): string {
  return ` ${prompt}${/[.?!]$/.test(prompt) ? '' : '.'} `;
}

/**
 * The next character: never a space or punctuation right after a space, one
 * of the TOP_K likeliest otherwise, drawn in proportion to exp(logit /
 * temperature); temperature 0 takes the likeliest.
 */
function sample(logits: Float32Array, last: number, temperature: number, random: () => number): number {
  const candidates: { id: number; logit: number }[] = [];
  for (let id = 0; id < logits.length; id++) {
    if (last === SPACE && (id === SPACE || PUNCTUATION.has(id))) continue;
    candidates.push({ id, logit: logits[id]! });
  }
  candidates.sort((a, b) => b.logit - a.logit || a.id - b.id);
  const top = candidates.slice(0, temperature === 0 ? 1 : TOP_K);
  const weights = top.map((c) => Math.exp((c.logit - top[0]!.logit) / Math.max(temperature, 1e-6)));
  let u = random() * weights.reduce((a, b) => a + b, 0);
  for (let i = 0; i < top.length; i++) {
    u -= weights[i]!;
    if (u < 0) return top[i]!.id;
  }
  return top[top.length - 1]!.id;
}

/** 32-bit FNV-1a over the UTF-16 code units. */
function fnv1a(s: string): number {
  let hash = 0x811c9dc5;
  for (let i = 0; i < s.length; i++) hash = Math.imul(hash ^ s.charCodeAt(i), 0x01000193);
  return hash >>> 0;
}

/** A small seeded generator of numbers in [0, 1). */
function mulberry32(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}
