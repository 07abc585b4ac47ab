/**
 * Writes ONNX models from TypeScript, deterministically: the same calls give
 * the same bytes, so generated models can be committed and checked. Uses our
 * own subset of the ONNX schema (proto/onnx.proto) through protobufjs.
 */
import { fileURLToPath } from 'node:url';
import protobuf from 'protobufjs';
import type { DataType } from '../engine/tensor.ts';

const ONNX_PROTO = fileURLToPath(new URL('../proto/onnx.proto', import.meta.url));

let modelType: protobuf.Type | undefined;
function onnxModelType(): protobuf.Type {
  if (!modelType) {
    const root = new protobuf.Root();
    root.loadSync(ONNX_PROTO, { keepCase: true });
    root.resolveAll();
    modelType = root.lookupType('onnx.ModelProto');
  }
  return modelType;
}

/** ONNX TensorProto.DataType numbers for KServe datatypes. */
export const ONNX_ELEMENT_TYPES: Readonly<Record<DataType, number>> = {
  FP32: 1, UINT8: 2, INT8: 3, UINT16: 4, INT16: 5, INT32: 6, INT64: 7, BYTES: 8, BOOL: 9,
  FP16: 10, FP64: 11, UINT32: 12, UINT64: 13, BF16: 16,
};

/** A dimension: a size, or a symbolic name for a dynamic size. */
export type Dim = number | string;

type Attribute =
  | { readonly kind: 'int'; readonly value: number }
  | { readonly kind: 'float'; readonly value: number }
  | { readonly kind: 'ints'; readonly value: readonly number[] }
  | { readonly kind: 'string'; readonly value: string };

interface ValueInfo { name: string; type: { tensor_type: { elem_type: number; shape: { dim: object[] } } } }

export class OnnxGraphBuilder {
  private readonly inputs: ValueInfo[] = [];
  private readonly outputs: ValueInfo[] = [];
  private readonly nodes: object[] = [];
  private readonly initializers: object[] = [];
  private nodeCount = 0;

  constructor(private readonly graphName: string) {}

  input(name: string, datatype: DataType, shape: readonly Dim[]): this {
    this.inputs.push(valueInfo(name, datatype, shape));
    return this;
  }

  output(name: string, datatype: DataType, shape: readonly Dim[]): this {
    this.outputs.push(valueInfo(name, datatype, shape));
    return this;
  }

  /** A constant tensor stored in the model, given as little-endian bytes. */
  initializer(name: string, datatype: Exclude<DataType, 'BYTES'>, dims: readonly number[], data: ArrayBufferView): this {
    this.initializers.push({
      name,
      data_type: ONNX_ELEMENT_TYPES[datatype],
      dims: [...dims],
      raw_data: new Uint8Array(data.buffer, data.byteOffset, data.byteLength),
    });
    return this;
  }

  node(opType: string, inputs: readonly string[], outputs: readonly string[], attributes: Readonly<Record<string, Attribute>> = {}): this {
    this.nodes.push({
      name: `${opType.toLowerCase()}_${this.nodeCount++}`,
      op_type: opType,
      input: [...inputs],
      output: [...outputs],
      attribute: Object.entries(attributes).map(([name, a]) => attributeProto(name, a)),
    });
    return this;
  }

  /** Serialized ModelProto. */
  toBytes(opsetVersion = 13): Uint8Array {
    const type = onnxModelType();
    const model = type.fromObject({
      ir_version: 8,
      opset_import: [{ domain: '', version: opsetVersion }],
      producer_name: 'switchyard-generator',
      producer_version: '1',
      graph: {
        name: this.graphName,
        node: this.nodes,
        initializer: this.initializers,
        input: this.inputs,
        output: this.outputs,
      },
    });
    return type.encode(model).finish();
  }
}

export const attr = {
  int: (value: number): Attribute => ({ kind: 'int', value }),
  float: (value: number): Attribute => ({ kind: 'float', value }),
  ints: (value: readonly number[]): Attribute => ({ kind: 'ints', value }),
  string: (value: string): Attribute => ({ kind: 'string', value }),
};

function attributeProto(name: string, a: Attribute): object {
  switch (a.kind) {
    case 'int': return { name, type: 2, i: a.value };
    case 'float': return { name, type: 1, f: a.value };
    case 'ints': return { name, type: 7, ints: [...a.value] };
    case 'string': return { name, type: 3, s: new TextEncoder().encode(a.value) };
  }
}

function valueInfo(name: string, datatype: DataType, shape: readonly Dim[]): ValueInfo {
  return {
    name,
    type: {
      tensor_type: {
        elem_type: ONNX_ELEMENT_TYPES[datatype],
        shape: { dim: shape.map((d) => (typeof d === 'number' ? { dim_value: d } : { dim_param: d })) },
      },
    },
  };
}

/** Small deterministic PRNG (mulberry32) for weights. */
export function seededRandom(seed: number): () => number {
  let state = seed >>> 0;
  return () => {
    state = (state + 0x6d2b79f5) >>> 0;
    let t = state;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/** Weights uniform in ±1/sqrt(fanIn), the usual scale for a dense layer. */
export function denseWeights(random: () => number, fanIn: number, fanOut: number): Float32Array {
  const scale = 1 / Math.sqrt(fanIn);
  const w = new Float32Array(fanIn * fanOut);
  for (let i = 0; i < w.length; i++) w[i] = (random() * 2 - 1) * scale;
  return w;
}
