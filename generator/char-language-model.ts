/**
 * A character language model whose weights are counted from a text, for the
 * chatbot pipeline. One step reads the current character and two pieces of
 * state, the previous character and a decaying bag of recent characters,
 * and scores every possible next character:
 *
 *   LOGITS = TRIGRAM[prev, token] + (DECAY * CONTEXT_IN + onehot(token)) @ ASSOCIATION
 *
 * TRIGRAM holds smoothed log probabilities of the next character after two
 * characters (backing off to bigrams and single characters), ASSOCIATION a
 * small pull toward characters that appeared near recent ones. The state
 * outputs are the inputs of the next step, which the sequence batcher keeps
 * per conversation (implicit state). The same text always gives the same
 * bytes.
 */
import { attr, OnnxGraphBuilder } from './onnx-builder.ts';

/** Every character the model knows; anything else reads as a space. */
export const CHAT_VOCABULARY = " abcdefghijklmnopqrstuvwxyz.,?!'";
const V = CHAT_VOCABULARY.length;
/** How much of the context bag is kept from one step to the next. */
const CONTEXT_DECAY = 0.85;
/** Characters after a character that count as "near" it for ASSOCIATION. */
const ASSOCIATION_WINDOW = 12;
const ASSOCIATION_SCALE = 0.08;

/** Text as vocabulary indexes: lower-cased, other characters as spaces, runs of spaces kept single. */
export function encodeChat(text: string): number[] {
  const ids: number[] = [];
  for (const ch of text.toLowerCase()) {
    const id = Math.max(0, CHAT_VOCABULARY.indexOf(ch));
    if (id === 0 && ids[ids.length - 1] === 0) continue;
    ids.push(id);
  }
  return ids;
}

export function decodeChat(ids: Iterable<number>): string {
  let text = '';
  for (const id of ids) text += CHAT_VOCABULARY[id] ?? ' ';
  return text;
}

export function charLanguageModel(corpus: string): Uint8Array {
  const ids = encodeChat(corpus.replace(/\s+/g, ' '));
  const uni = new Float64Array(V).fill(1);
  const bi = new Float64Array(V * V).fill(0.1);
  const tri = new Float64Array(V * V * V).fill(0.01);
  const near = new Float64Array(V * V).fill(0.1);
  for (let i = 0; i < ids.length; i++) {
    const c = ids[i]!;
    uni[c]! += 1;
    if (i >= 1) bi[ids[i - 1]! * V + c]! += 1;
    if (i >= 2) tri[(ids[i - 2]! * V + ids[i - 1]!) * V + c]! += 1;
    for (let k = 1; k <= ASSOCIATION_WINDOW && i + k < ids.length; k++) near[c * V + ids[i + k]!]! += 1;
  }
  const normalize = (counts: Float64Array, rows: number): Float64Array => {
    const out = new Float64Array(counts.length);
    for (let r = 0; r < rows; r++) {
      let sum = 0;
      for (let j = 0; j < V; j++) sum += counts[r * V + j]!;
      for (let j = 0; j < V; j++) out[r * V + j] = counts[r * V + j]! / sum;
    }
    return out;
  };
  const pUni = normalize(uni, 1);
  const pBi = normalize(bi, V);
  const pTri = normalize(tri, V * V);
  const pNear = normalize(near, V);
  const trigram = new Float32Array(V * V * V);
  for (let prev = 0; prev < V; prev++) {
    for (let token = 0; token < V; token++) {
      for (let next = 0; next < V; next++) {
        const p = 0.75 * pTri[(prev * V + token) * V + next]! + 0.22 * pBi[token * V + next]! + 0.03 * pUni[next]!;
        trigram[(prev * V + token) * V + next] = Math.log(p);
      }
    }
  }
  const association = new Float32Array(V * V);
  for (let i = 0; i < V; i++) {
    for (let j = 0; j < V; j++) association[i * V + j] = ASSOCIATION_SCALE * Math.log(pNear[i * V + j]! / pUni[j]!);
  }
  return new OnnxGraphBuilder('char_language_model')
    .input('TOKEN', 'INT64', ['batch', 1])
    .input('PREV_IN', 'INT64', ['batch', 1])
    .input('CONTEXT_IN', 'FP32', ['batch', V])
    .initializer('VOCAB', 'INT64', [1], new BigInt64Array([BigInt(V)]))
    .initializer('DEPTH', 'INT64', [], new BigInt64Array([BigInt(V)]))
    .initializer('ONEHOT_VALUES', 'FP32', [2], new Float32Array([0, 1]))
    .initializer('ROW_SHAPE', 'INT64', [2], new BigInt64Array([-1n, BigInt(V)]))
    .initializer('DECAY', 'FP32', [1], new Float32Array([CONTEXT_DECAY]))
    .initializer('TRIGRAM', 'FP32', [V * V, V], trigram)
    .initializer('ASSOCIATION', 'FP32', [V, V], association)
    .node('Mul', ['PREV_IN', 'VOCAB'], ['prev_offset'])
    .node('Add', ['prev_offset', 'TOKEN'], ['pair'])
    .node('Gather', ['TRIGRAM', 'pair'], ['pair_scores'], { axis: attr.int(0) })
    .node('Reshape', ['pair_scores', 'ROW_SHAPE'], ['trigram_logits'])
    .node('OneHot', ['TOKEN', 'DEPTH', 'ONEHOT_VALUES'], ['onehot3'], { axis: attr.int(-1) })
    .node('Reshape', ['onehot3', 'ROW_SHAPE'], ['onehot'])
    .node('Mul', ['CONTEXT_IN', 'DECAY'], ['kept'])
    .node('Add', ['kept', 'onehot'], ['CONTEXT_OUT'])
    .node('MatMul', ['CONTEXT_OUT', 'ASSOCIATION'], ['context_logits'])
    .node('Add', ['trigram_logits', 'context_logits'], ['LOGITS'])
    .node('Identity', ['TOKEN'], ['PREV_OUT'])
    .output('LOGITS', 'FP32', ['batch', V])
    .output('PREV_OUT', 'INT64', ['batch', 1])
    .output('CONTEXT_OUT', 'FP32', ['batch', V])
    .toBytes();
}
