/**
 * Recipes for the models Switchyard ships and tests with. Each returns the
 * ONNX bytes; the same arguments always give the same bytes.
 */
import type { DataType } from '../engine/tensor.ts';
import { DATA_TYPES } from '../engine/tensor.ts';
import { attr, denseWeights, OnnxGraphBuilder, seededRandom } from './onnx-builder.ts';

/** OUTPUT0 = INPUT0 <first> INPUT1 and OUTPUT1 = INPUT0 <second> INPUT1, over [batch, size]. */
function elementwisePair(name: string, first: 'Add' | 'Sub', second: 'Add' | 'Sub', datatype: DataType, size: number): Uint8Array {
  return new OnnxGraphBuilder(name)
    .input('INPUT0', datatype, ['batch', size])
    .input('INPUT1', datatype, ['batch', size])
    .node(first, ['INPUT0', 'INPUT1'], ['OUTPUT0'])
    .node(second, ['INPUT0', 'INPUT1'], ['OUTPUT1'])
    .output('OUTPUT0', datatype, ['batch', size])
    .output('OUTPUT1', datatype, ['batch', size])
    .toBytes();
}

/** Triton's classic example: OUTPUT0 = INPUT0 + INPUT1, OUTPUT1 = INPUT0 - INPUT1, over [batch, size]. */
export function addSubModel(datatype: DataType = 'INT32', size = 16): Uint8Array {
  return elementwisePair('add_sub', 'Add', 'Sub', datatype, size);
}

/** add_sub's signature with the answers swapped: OUTPUT0 = INPUT0 - INPUT1, OUTPUT1 = INPUT0 + INPUT1 (a second version that is told apart). */
export function subAddModel(datatype: DataType = 'INT32', size = 16): Uint8Array {
  return elementwisePair('sub_add', 'Sub', 'Add', datatype, size);
}

/** C = A + B over [batch, n] and [batch, m]: runs when n equals m, and fails in ONNX Runtime (cannot broadcast) when not. */
export function mismatchModel(): Uint8Array {
  return new OnnxGraphBuilder('mismatch')
    .input('A', 'FP32', ['batch', 'n'])
    .input('B', 'FP32', ['batch', 'm'])
    .node('Add', ['A', 'B'], ['C'])
    .output('C', 'FP32', ['batch', 'n'])
    .toBytes();
}

export interface MlpOptions {
  /** Layer widths, input first: [256, 2048, 2048, 16]. */
  readonly sizes: readonly number[];
  readonly seed: number;
  readonly inputName?: string;
  readonly outputName?: string;
  /** Softmax over the last layer, for classifiers. */
  readonly softmax?: boolean;
  /** Also output the arg-max class index as INT64 [batch, 1] under this name. */
  readonly argmaxOutput?: string;
}

/** Dense layers with ReLU between them, FP32, batch dimension dynamic. */
export function mlpModel(options: MlpOptions): Uint8Array {
  const { sizes, seed } = options;
  const inputName = options.inputName ?? 'INPUT';
  const outputName = options.outputName ?? 'OUTPUT';
  const random = seededRandom(seed);
  const g = new OnnxGraphBuilder('mlp').input(inputName, 'FP32', ['batch', sizes[0]!]);
  let current = inputName;
  for (let layer = 0; layer + 1 < sizes.length; layer++) {
    const fanIn = sizes[layer]!;
    const fanOut = sizes[layer + 1]!;
    const last = layer + 2 === sizes.length;
    g.initializer(`W${layer}`, 'FP32', [fanIn, fanOut], denseWeights(random, fanIn, fanOut));
    g.initializer(`B${layer}`, 'FP32', [fanOut], new Float32Array(fanOut).map(() => (random() * 2 - 1) * 0.01));
    const dense = last && !options.softmax ? outputName : `dense${layer}`;
    g.node('Gemm', [current, `W${layer}`, `B${layer}`], [dense]);
    current = dense;
    if (!last) {
      g.node('Relu', [dense], [`relu${layer}`]);
      current = `relu${layer}`;
    }
  }
  const width = sizes[sizes.length - 1]!;
  if (options.softmax) g.node('Softmax', [current], [outputName], { axis: attr.int(1) });
  g.output(outputName, 'FP32', ['batch', width]);
  if (options.argmaxOutput) {
    g.node('ArgMax', [outputName], [options.argmaxOutput], { axis: attr.int(1), keepdims: attr.int(1) });
    g.output(options.argmaxOutput, 'INT64', ['batch', 1]);
  }
  return g.toBytes();
}

/** The bundled feature classifier: 32 features -> 64 -> 4 classes, with probabilities and the winning class. */
export function featureClassifierModel(): Uint8Array {
  return mlpModel({
    sizes: [32, 64, 4], seed: 7, inputName: 'FEATURES', outputName: 'PROBABILITIES', softmax: true, argmaxOutput: 'CLASS',
  });
}

/** Width of the bundled feature pipeline's feature vector. */
const FEATURE_WIDTH = 32;

/**
 * The bundled feature normalizer: NORMALIZED = (RAW - MEAN) / STD over
 * [batch, 32], with fixed per-feature constants (MEAN in ±1, STD in
 * [0.5, 1.5), so the division is always safe).
 */
export function featureNormalizerModel(): Uint8Array {
  const random = seededRandom(13);
  const mean = new Float32Array(FEATURE_WIDTH).map(() => random() * 2 - 1);
  const std = new Float32Array(FEATURE_WIDTH).map(() => 0.5 + random());
  return new OnnxGraphBuilder('feature_normalizer')
    .input('RAW', 'FP32', ['batch', FEATURE_WIDTH])
    .initializer('MEAN', 'FP32', [FEATURE_WIDTH], mean)
    .initializer('STD', 'FP32', [FEATURE_WIDTH], std)
    .node('Sub', ['RAW', 'MEAN'], ['centered'])
    .node('Div', ['centered', 'STD'], ['NORMALIZED'])
    .output('NORMALIZED', 'FP32', ['batch', FEATURE_WIDTH])
    .toBytes();
}

/**
 * The bundled outlier score: SCORE [batch, 1] = max |x| over a row of
 * normalized features. Opset 13 takes ReduceMax's axes as an attribute
 * (an input only from opset 18).
 */
export function featureOutlierModel(): Uint8Array {
  return new OnnxGraphBuilder('feature_outlier')
    .input('NORMALIZED', 'FP32', ['batch', FEATURE_WIDTH])
    .node('Abs', ['NORMALIZED'], ['magnitude'])
    .node('ReduceMax', ['magnitude'], ['SCORE'], { axes: attr.ints([1]), keepdims: attr.int(1) })
    .output('SCORE', 'FP32', ['batch', 1])
    .toBytes(13);
}

/** Datatypes ONNX Runtime for Node can carry in and out of a session. */
export const ORT_DATA_TYPES: readonly DataType[] = DATA_TYPES.filter((t) => t !== 'BF16');

/** One Identity per datatype: IN_<T> -> OUT_<T>, shape [batch, -1]. Exercises every tensor codec path. */
export function identityModel(datatypes: readonly DataType[] = ORT_DATA_TYPES): Uint8Array {
  const g = new OnnxGraphBuilder('identity');
  for (const t of datatypes) {
    g.input(`IN_${t}`, t, ['batch', `n_${t}`]).node('Identity', [`IN_${t}`], [`OUT_${t}`]).output(`OUT_${t}`, t, ['batch', `n_${t}`]);
  }
  return g.toBytes();
}

/**
 * VALUE = TABLE[INDEX]: Gather over a fixed FP32 table of `size` entries
 * (entry i holds i * 10) with INT64 indices [batch, 1] from the request. An
 * index outside the table makes ONNX Runtime fail the whole run, which is
 * what fault tests need: a batch that one bad request spoils.
 */
export function lookupModel(size = 4): Uint8Array {
  return new OnnxGraphBuilder('lookup')
    .input('INDEX', 'INT64', ['batch', 1])
    .initializer('TABLE', 'FP32', [size], new Float32Array(size).map((_, i) => i * 10))
    .node('Gather', ['TABLE', 'INDEX'], ['VALUE'], { axis: attr.int(0) })
    .output('VALUE', 'FP32', ['batch', 1])
    .toBytes();
}

/**
 * Triton's ragged batching example: INPUT is every element of the batch's
 * requests joined into one 1-D FP32 tensor (allow_ragged_batch), INDEX the
 * batch input BATCH_ACCUMULATED_ELEMENT_COUNT (where each request ends, as
 * FP32), and OUTPUT [requests, 1] each request's sum. Built as differences
 * of a running sum taken at the request ends.
 */
export function raggedSumModel(): Uint8Array {
  return new OnnxGraphBuilder('ragged_sum')
    .input('INPUT', 'FP32', ['elements'])
    .input('INDEX', 'FP32', ['batch'])
    .initializer('ZERO', 'FP32', [1], new Float32Array([0]))
    .initializer('AXIS', 'INT64', [], new BigInt64Array([0n]))
    .initializer('START', 'INT64', [1], new BigInt64Array([0n]))
    .initializer('END', 'INT64', [1], new BigInt64Array([-1n]))
    .initializer('COLUMN', 'INT64', [2], new BigInt64Array([-1n, 1n]))
    // running[k] = INPUT[0] + ... + INPUT[k-1], with running[0] = 0
    .node('CumSum', ['INPUT', 'AXIS'], ['cumsum'])
    .node('Concat', ['ZERO', 'cumsum'], ['running'], { axis: attr.int(0) })
    // totals at each request's end, and at the previous request's end
    .node('Cast', ['INDEX'], ['ends'], { to: attr.int(7) })
    .node('Gather', ['running', 'ends'], ['at_end'], { axis: attr.int(0) })
    .node('Concat', ['ZERO', 'at_end'], ['shifted'], { axis: attr.int(0) })
    .node('Slice', ['shifted', 'START', 'END'], ['at_start'])
    .node('Sub', ['at_end', 'at_start'], ['sums'])
    .node('Reshape', ['sums', 'COLUMN'], ['OUTPUT'])
    .output('OUTPUT', 'FP32', ['batch', 1])
    .toBytes();
}

/**
 * A running sum kept in implicit state (sequence_batching.state): OUTPUT =
 * STATE_IN + INPUT over FP32 [batch, 1], and STATE_OUT the same value for
 * the sequence's next request. The sequence batcher feeds STATE_IN (zeros on
 * a sequence's first request) and keeps STATE_OUT from clients.
 */
export function stateAccumulatorModel(): Uint8Array {
  return new OnnxGraphBuilder('state_accumulator')
    .input('INPUT', 'FP32', ['batch', 1])
    .input('STATE_IN', 'FP32', ['batch', 1])
    .node('Add', ['STATE_IN', 'INPUT'], ['OUTPUT'])
    .node('Identity', ['OUTPUT'], ['STATE_OUT'])
    .output('OUTPUT', 'FP32', ['batch', 1])
    .output('STATE_OUT', 'FP32', ['batch', 1])
    .toBytes();
}

/**
 * stateAccumulatorModel plus Triton-style control inputs echoed back, so a
 * test can read every control value the sequence batcher set per row:
 * START, END, READY INT32 [batch, 1] -> START_OUT, END_OUT, READY_OUT, and
 * CORRID [batch, 1] of `corridType` -> CORRID_OUT.
 */
export function stateAccumulatorControlsModel(corridType: 'UINT64' | 'INT64' | 'UINT32' | 'INT32' | 'BYTES' = 'UINT64'): Uint8Array {
  const g = new OnnxGraphBuilder('state_accumulator_controls')
    .input('INPUT', 'FP32', ['batch', 1])
    .input('STATE_IN', 'FP32', ['batch', 1])
    .node('Add', ['STATE_IN', 'INPUT'], ['OUTPUT'])
    .node('Identity', ['OUTPUT'], ['STATE_OUT'])
    .output('OUTPUT', 'FP32', ['batch', 1])
    .output('STATE_OUT', 'FP32', ['batch', 1]);
  for (const control of ['START', 'END', 'READY'] as const) {
    g.input(control, 'INT32', ['batch', 1]).node('Identity', [control], [`${control}_OUT`]).output(`${control}_OUT`, 'INT32', ['batch', 1]);
  }
  return g.input('CORRID', corridType, ['batch', 1]).node('Identity', ['CORRID'], ['CORRID_OUT']).output('CORRID_OUT', corridType, ['batch', 1])
    .toBytes();
}

export interface StateMlpOptions {
  /** Width of INPUT, the state and OUTPUT. */
  readonly width: number;
  /** Widths of the MLP's hidden layers, e.g. [2048, 2048]. */
  readonly hidden: readonly number[];
  /** Width of FEATURES. */
  readonly features: number;
  readonly seed: number;
}

/**
 * A stateful step with real compute per row, for sequence batching
 * benchmarks: OUTPUT = STATE_IN + INPUT over FP32 [batch, width] (a running
 * sum, exact for small integers, so every step's answer can be checked),
 * STATE_OUT the same for the sequence's next request, and FEATURES = an MLP
 * (Gemm + ReLU per hidden layer, then Gemm to `features`) over that running
 * sum, so each step reads the state the sequence carried and does work that
 * batching pays off on.
 */
export function stateMlpModel(options: StateMlpOptions): Uint8Array {
  const { width, hidden, features } = options;
  const random = seededRandom(options.seed);
  const g = new OnnxGraphBuilder('state_mlp')
    .input('INPUT', 'FP32', ['batch', width])
    .input('STATE_IN', 'FP32', ['batch', width])
    .node('Add', ['STATE_IN', 'INPUT'], ['OUTPUT'])
    .node('Identity', ['OUTPUT'], ['STATE_OUT']);
  const sizes = [width, ...hidden, features];
  let current = 'OUTPUT';
  for (let layer = 0; layer + 1 < sizes.length; layer++) {
    const fanIn = sizes[layer]!;
    const fanOut = sizes[layer + 1]!;
    const last = layer + 2 === sizes.length;
    g.initializer(`W${layer}`, 'FP32', [fanIn, fanOut], denseWeights(random, fanIn, fanOut));
    g.initializer(`B${layer}`, 'FP32', [fanOut], new Float32Array(fanOut).map(() => (random() * 2 - 1) * 0.01));
    const dense = last ? 'FEATURES' : `dense${layer}`;
    g.node('Gemm', [current, `W${layer}`, `B${layer}`], [dense]);
    current = dense;
    if (!last) {
      g.node('Relu', [dense], [`relu${layer}`]);
      current = `relu${layer}`;
    }
  }
  return g
    .output('OUTPUT', 'FP32', ['batch', width])
    .output('STATE_OUT', 'FP32', ['batch', width])
    .output('FEATURES', 'FP32', ['batch', features])
    .toBytes();
}

/** OUTPUT = INPUT transposed, over [batch, size, size] FP32: a model whose config can take flat [size * size] rows through `reshape`. */
export function transposeModel(size = 4): Uint8Array {
  return new OnnxGraphBuilder('transpose')
    .input('INPUT', 'FP32', ['batch', size, size])
    .node('Transpose', ['INPUT'], ['OUTPUT'], { perm: attr.ints([0, 2, 1]) })
    .output('OUTPUT', 'FP32', ['batch', size, size])
    .toBytes();
}

/**
 * Greedy CTC's arithmetic for a recogniser's output: for each time step of
 * PROBS [batch, steps, classes], the likeliest class (BEST, INT32) and its
 * probability (BEST_PROB). It turns a line's 26 KB per step into 8 bytes,
 * so what the `ocr` script reads back is small.
 */
export function ctcBestPathModel(classes: number): Uint8Array {
  return new OnnxGraphBuilder('ctc_best_path')
    .input('PROBS', 'FP32', ['batch', 'steps', classes])
    .node('ArgMax', ['PROBS'], ['best64'], { axis: attr.int(2), keepdims: attr.int(0) })
    .node('Cast', ['best64'], ['BEST'], { to: attr.int(6) })
    .node('ReduceMax', ['PROBS'], ['BEST_PROB'], { axes: attr.ints([2]), keepdims: attr.int(0) })
    .output('BEST', 'INT32', ['batch', 'steps'])
    .output('BEST_PROB', 'FP32', ['batch', 'steps'])
    .toBytes();
}
