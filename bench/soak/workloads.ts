/**
 * The five kinds of traffic the soak sends, each with the check its answers
 * must pass. A wrong answer is an error, the same as a failed call.
 *
 *   plain     add_sub (bundled, no dynamic batching), 1 row: OUTPUT0 = a + b, OUTPUT1 = a - b, exact
 *   batched   add_sub_batched (written by the soak: add_sub with dynamic_batching, max_batch_size 16), 1 to 4 rows, exact
 *   ensemble  scored_features (pipeline.yaml, 3 steps; every other call asks for CLASS only) against a reference
 *             from onnxruntime-node in this process, and add_sub_twice (Triton ensemble): DOUBLE_A = 2A, DOUBLE_B = 2B, exact
 *   script    text_classifier_bls (a TypeScript model calling three models through ctx.infer), 1 or 2 texts, LABEL exact
 *             and SCORE against a reference: the script's featurizer ported here, then feature_classifier in onnxruntime-node
 *   sequence  chatbot_lm (stateful ONNX, implicit state, oldest strategy): START, steps, END under a fresh sequence id,
 *             each step awaited in order; every step's LOGITS against the same model run step by step in onnxruntime-node
 *
 * Every call carries data of its own (a counter-derived add_sub input, or an
 * entry of a pool of 64 references), so answers swapped between the requests
 * of a batch show up as wrong answers. References are computed once, before
 * the load.
 */
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import * as ort from 'onnxruntime-node';
import type { InferenceClient } from '../../client/index.ts';
import { tensor, type InferResult } from '../../client/index.ts';

export const KIND_NAMES = ['plain', 'batched', 'ensemble', 'script', 'sequence'] as const;
export type KindName = (typeof KIND_NAMES)[number];

/** Runs one request and says whether it succeeded: `call` resolves to an error text, or undefined for a good answer. */
export type Step = (call: () => Promise<string | undefined>) => Promise<boolean>;

export interface Kind {
  readonly name: KindName;
  /** The models it calls, for the report. */
  readonly models: string;
  /**
   * One operation: one request, or for `sequence` one whole sequence (every
   * step through `step`). `n` is unique per operation. Resolves true when
   * every request of it succeeded.
   */
  run(client: InferenceClient, n: number, step: Step): Promise<boolean>;
}

/** The model the soak writes next to the bundled repository. */
export const BATCHED_MODEL = 'add_sub_batched';
export const BATCHED_MAX_BATCH_SIZE = 16;

export function batchedModelConfig(): string {
  const tensorConfig = (name: string): string => `  { name: "${name}" data_type: TYPE_INT32 dims: [ 16 ] }`;
  return [
    '# Written by bench/soak: the bundled add_sub with dynamic batching.',
    `name: "${BATCHED_MODEL}"`,
    'platform: "onnxruntime_onnx"',
    `max_batch_size: ${BATCHED_MAX_BATCH_SIZE}`,
    `input [\n${tensorConfig('INPUT0')},\n${tensorConfig('INPUT1')}\n]`,
    `output [\n${tensorConfig('OUTPUT0')},\n${tensorConfig('OUTPUT1')}\n]`,
    'instance_group [ { count: 1, kind: KIND_CPU } ]',
    'dynamic_batching { max_queue_delay_microseconds: 200 }',
    '',
  ].join('\n');
}

const WIDTH = 16;
const POOL = 64;
/** Absolute plus relative tolerance for float outputs: the server batches rows its own way, the reference runs them together. */
const ABS_TOL = 1e-4;
const REL_TOL = 1e-4;

const close = (got: number, want: number): boolean => Math.abs(got - want) <= ABS_TOL + REL_TOL * Math.abs(want);

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

/** add_sub inputs of `rows` rows derived from n: values in ±2^19, so sums and doubles never wrap. */
function addSubInputs(n: number, rows: number): { a: Int32Array; b: Int32Array } {
  const a = new Int32Array(rows * WIDTH);
  const b = new Int32Array(rows * WIDTH);
  for (let i = 0; i < a.length; i++) {
    const k = n * 64 + i;
    a[i] = (Math.imul(k, 2654435761) >>> 12) - (1 << 19);
    b[i] = (Math.imul(k ^ 0x5bd1e995, 40503) >>> 12) - (1 << 19);
  }
  return { a, b };
}

function checkInt32(result: InferResult, name: string, expected: (i: number) => number, count: number): string | undefined {
  const data = result.output(name).typed() as Int32Array;
  if (data.length !== count) return `${name} has ${data.length} elements, expected ${count}`;
  for (let i = 0; i < count; i++) {
    if (data[i] !== expected(i)) return `wrong answer: ${name}[${i}] = ${data[i]}, expected ${expected(i)}`;
  }
  return undefined;
}

function checkFloats(result: InferResult, name: string, want: Float32Array): string | undefined {
  const data = result.output(name).typed() as Float32Array;
  if (data.length !== want.length) return `${name} has ${data.length} elements, expected ${want.length}`;
  for (let i = 0; i < want.length; i++) {
    if (!close(data[i]!, want[i]!)) return `wrong answer: ${name}[${i}] = ${data[i]}, expected ${want[i]}`;
  }
  return undefined;
}

function addSubKind(name: KindName, model: string, rowsOf: (n: number) => number): Kind {
  return {
    name, models: model,
    run: (client, n, step) =>
      step(async () => {
        const rows = rowsOf(n);
        const { a, b } = addSubInputs(n, rows);
        const result = await client.infer(model, [
          tensor('INPUT0', 'INT32', [rows, WIDTH], a), tensor('INPUT1', 'INT32', [rows, WIDTH], b),
        ]);
        return checkInt32(result, 'OUTPUT0', (i) => a[i]! + b[i]!, a.length) ?? checkInt32(result, 'OUTPUT1', (i) => a[i]! - b[i]!, a.length);
      }),
  };
}

const sessionOptions: ort.InferenceSession.SessionOptions = {
  intraOpNumThreads: 1, interOpNumThreads: 1, graphOptimizationLevel: 'all', executionProviders: ['cpu'], logSeverityLevel: 3,
};

async function session(repository: string, model: string): Promise<ort.InferenceSession> {
  return ort.InferenceSession.create(join(repository, model, '1', 'model.onnx'), sessionOptions);
}

function rowOf(data: Float32Array, row: number, width: number): Float32Array {
  return data.slice(row * width, (row + 1) * width);
}

/** The two largest values of a row differ by at least this, so a class never flips on float noise. */
const MARGIN = 1e-3;

function argmax(p: Float32Array): { best: number; margin: number } {
  let best = 0;
  for (let c = 1; c < p.length; c++) if (p[c]! > p[best]!) best = c;
  let second = -Infinity;
  for (let c = 0; c < p.length; c++) if (c !== best && p[c]! > second) second = p[c]!;
  return { best, margin: p[best]! - second };
}

interface ScoredReference {
  readonly features: Float32Array;
  readonly probabilities: Float32Array;
  readonly classId: bigint;
  readonly outlier: Float32Array;
}

async function scoredReferences(repository: string): Promise<ScoredReference[]> {
  const [normalizer, classifier, outlier] = await Promise.all(
    ['feature_normalizer', 'feature_classifier', 'feature_outlier'].map((m) => session(repository, m)),
  );
  const random = mulberry32(20261121);
  const refs: ScoredReference[] = [];
  try {
    while (refs.length < POOL) {
      const rows = POOL;
      const raw = Float32Array.from({ length: rows * 32 }, () => random() * 4 - 2);
      const normalized = (await normalizer!.run({ RAW: new ort.Tensor('float32', raw, [rows, 32]) }))['NORMALIZED']!;
      const classified = await classifier!.run({ FEATURES: new ort.Tensor('float32', normalized.data as Float32Array, [rows, 32]) });
      const scored = await outlier!.run({ NORMALIZED: new ort.Tensor('float32', normalized.data as Float32Array, [rows, 32]) });
      const probabilities = classified['PROBABILITIES']!.data as Float32Array;
      const classes = classified['CLASS']!.data as BigInt64Array;
      const scores = scored['SCORE']!.data as Float32Array;
      for (let r = 0; r < rows && refs.length < POOL; r++) {
        const p = rowOf(probabilities, r, 4);
        if (argmax(p).margin < MARGIN) continue;
        refs.push({ features: rowOf(raw, r, 32), probabilities: p, classId: classes[r]!, outlier: rowOf(scores, r, 1) });
      }
    }
  } finally {
    await Promise.all([normalizer, classifier, outlier].map((s) => s!.release()));
  }
  return refs;
}

function ensembleKind(scored: readonly ScoredReference[]): Kind {
  return {
    name: 'ensemble', models: 'scored_features, add_sub_twice',
    run: (client, n, step) =>
      step(async () => {
        if (n % 2 === 1) {
          const { a, b } = addSubInputs(n, 1);
          const result = await client.infer('add_sub_twice', [tensor('A', 'INT32', [1, WIDTH], a), tensor('B', 'INT32', [1, WIDTH], b)]);
          return checkInt32(result, 'DOUBLE_A', (i) => 2 * a[i]!, WIDTH) ?? checkInt32(result, 'DOUBLE_B', (i) => 2 * b[i]!, WIDTH);
        }
        const ref = scored[(n >>> 1) % scored.length]!;
        const classOnly = n % 4 === 2;
        const result = await client.infer('scored_features', [tensor('FEATURES', 'FP32', [1, 32], ref.features)],
          classOnly ? { outputs: ['CLASS'] } : {});
        const classId = (result.output('CLASS').typed() as BigInt64Array)[0];
        if (classId !== ref.classId) return `wrong answer: scored_features CLASS = ${classId}, expected ${ref.classId}`;
        if (classOnly) {
          if (result.outputs.length !== 1) return `asked for CLASS only, got ${result.outputs.map((o) => o.name).join(', ')}`;
          return undefined;
        }
        return checkFloats(result, 'PROBABILITIES', ref.probabilities) ?? checkFloats(result, 'OUTLIER_SCORE', ref.outlier);
      }),
  };
}

/** text_features' featurizer (pipelines/text_features/1/model.ts), ported: the same float32 arithmetic. */
function featurize(text: string, into: Float32Array): void {
  const fnv1a = (s: string): number => {
    let hash = 0x811c9dc5;
    for (let i = 0; i < s.length; i++) hash = Math.imul(hash ^ s.charCodeAt(i), 0x01000193);
    return hash >>> 0;
  };
  const chars = Array.from(` ${text.toLowerCase()} `);
  for (let i = 0; i + 3 <= chars.length; i++) into[fnv1a(chars[i]! + chars[i + 1]! + chars[i + 2]!) % 32]! += 1;
  let sumOfSquares = 0;
  for (const v of into) sumOfSquares += v * v;
  const scale = Math.sqrt(32 / sumOfSquares);
  for (let i = 0; i < 32; i++) into[i]! *= scale;
}

const WORDS = ('my invoice is wrong the app crashes on start please reset password account locked refund charged twice '
  + 'login fails slow sync error billing card expired cannot open settings update broken email change address thanks').split(' ');

interface TextReference {
  readonly text: string;
  readonly label: string;
  readonly score: number;
}

async function textReferences(repository: string): Promise<TextReference[]> {
  const config = await readFile(join(repository, 'class_labels', 'config.pbtxt'), 'utf8');
  const labels = /key:\s*"labels"\s*value:\s*\{\s*string_value:\s*"([^"]*)"/.exec(config)?.[1]?.split(',');
  if (!labels) throw new Error('class_labels/config.pbtxt: no "labels" parameter');
  const classifier = await session(repository, 'feature_classifier');
  const random = mulberry32(7);
  const refs: TextReference[] = [];
  try {
    while (refs.length < POOL) {
      const texts = Array.from({ length: POOL }, () => Array.from({ length: 2 + Math.floor(random() * 5) }, () => WORDS[Math.floor(random() * WORDS.length)]!).join(' '));
      const features = new Float32Array(texts.length * 32);
      texts.forEach((text, row) => featurize(text, features.subarray(row * 32, (row + 1) * 32)));
      const out = await classifier.run({ FEATURES: new ort.Tensor('float32', features, [texts.length, 32]) });
      const probabilities = out['PROBABILITIES']!.data as Float32Array;
      texts.forEach((text, row) => {
        const p = rowOf(probabilities, row, 4);
        const { best, margin } = argmax(p);
        if (margin >= MARGIN && refs.length < POOL) refs.push({ text, label: labels[best]!, score: p[best]! });
      });
    }
  } finally {
    await classifier.release();
  }
  return refs;
}

function scriptKind(refs: readonly TextReference[]): Kind {
  return {
    name: 'script', models: 'text_classifier_bls',
    run: (client, n, step) =>
      step(async () => {
        const rows = 1 + (n % 2);
        const picked = Array.from({ length: rows }, (_, r) => refs[(n + r * 17) % refs.length]!);
        const result = await client.infer('text_classifier_bls', [tensor('TEXT', 'BYTES', [rows, 1], picked.map((r) => r.text))]);
        const labels = result.output('LABEL').strings();
        const scores = result.output('SCORE').typed() as Float32Array;
        if (labels.length !== rows || scores.length !== rows) return `expected ${rows} rows, got ${labels.length} labels and ${scores.length} scores`;
        for (let r = 0; r < rows; r++) {
          const want = picked[r]!;
          if (labels[r] !== want.label) return `wrong answer: LABEL of '${want.text}' = '${labels[r]}', expected '${want.label}'`;
          if (!close(scores[r]!, want.score)) return `wrong answer: SCORE of '${want.text}' = ${scores[r]}, expected ${want.score}`;
        }
        return undefined;
      }),
  };
}

interface SequenceReference {
  readonly tokens: BigInt64Array;
  /** LOGITS after each step, 32 per step. */
  readonly logits: readonly Float32Array[];
}

const VOCABULARY = 32;

/** POOL token sequences of `steps` tokens, and chatbot_lm's LOGITS after each, the state carried from step to step as the sequence batcher does. */
async function sequenceReferences(repository: string, steps: number): Promise<SequenceReference[]> {
  const lm = await session(repository, 'chatbot_lm');
  const random = mulberry32(42);
  const tokens = Array.from({ length: POOL }, () => BigInt64Array.from({ length: steps }, () => BigInt(1 + Math.floor(random() * (VOCABULARY - 1)))));
  const logits: Float32Array[][] = tokens.map(() => []);
  try {
    let prev: ort.Tensor = new ort.Tensor('int64', new BigInt64Array(POOL), [POOL, 1]);
    let context: ort.Tensor = new ort.Tensor('float32', new Float32Array(POOL * VOCABULARY), [POOL, VOCABULARY]);
    for (let s = 0; s < steps; s++) {
      const token = new ort.Tensor('int64', BigInt64Array.from(tokens, (t) => t[s]!), [POOL, 1]);
      const out = await lm.run({ TOKEN: token, PREV_IN: prev, CONTEXT_IN: context });
      const data = out['LOGITS']!.data as Float32Array;
      for (let q = 0; q < POOL; q++) logits[q]!.push(rowOf(data, q, VOCABULARY));
      prev = out['PREV_OUT']!;
      context = out['CONTEXT_OUT']!;
    }
  } finally {
    await lm.release();
  }
  return tokens.map((t, q) => ({ tokens: t, logits: logits[q]! }));
}

let nextSequenceId = 1;

function sequenceKind(refs: readonly SequenceReference[]): Kind {
  return {
    name: 'sequence', models: 'chatbot_lm',
    run: async (client, n, step) => {
      const ref = refs[n % refs.length]!;
      const id = nextSequenceId++;
      const last = ref.tokens.length - 1;
      for (let s = 0; s <= last; s++) {
        const ok = await step(async () => {
          const result = await client.infer('chatbot_lm', [tensor('TOKEN', 'INT64', [1, 1], ref.tokens.subarray(s, s + 1))], {
            parameters: { sequence_id: id, ...(s === 0 ? { sequence_start: true } : {}), ...(s === last ? { sequence_end: true } : {}) },
          });
          const error = checkFloats(result, 'LOGITS', ref.logits[s]!);
          return error && `sequence ${id} step ${s + 1} of ${last + 1}: ${error}`;
        });
        // A failed step leaves the sequence to expire on the server; its later steps would only repeat the error.
        if (!ok) return false;
      }
      return true;
    },
  };
}

export interface KindOptions {
  /** The bundled repository (pipelines/), whose model files the references are computed from. */
  readonly repository: string;
  /** Requests per sequence, START and END included (at least 2). */
  readonly sequenceSteps: number;
}

/** The five kinds, their references computed. */
export async function buildKinds(options: KindOptions): Promise<readonly Kind[]> {
  if (!(options.sequenceSteps >= 2)) throw new Error(`a sequence needs at least 2 steps (START and END), got ${options.sequenceSteps}`);
  const [scored, texts, sequences] = await Promise.all([
    scoredReferences(options.repository), textReferences(options.repository), sequenceReferences(options.repository, options.sequenceSteps),
  ]);
  return [
    addSubKind('plain', 'add_sub', () => 1),
    addSubKind('batched', BATCHED_MODEL, (n) => 1 + (n % 4)),
    ensembleKind(scored),
    scriptKind(texts),
    sequenceKind(sequences),
  ];
}
