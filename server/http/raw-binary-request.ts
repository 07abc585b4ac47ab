/**
 * Triton's raw binary request: `Inference-Header-Content-Length: 0` and the
 * whole body is the data of the model's one input. Nothing names the input,
 * its datatype or its shape, so they come from the model's config, as
 * Triton's core deduces them: the config's dims, with a batch dim of 1 for
 * a batching model; one variable dim (-1) is deduced from the byte size;
 * a BYTES input must have shape [1] and the body is its one element. Every
 * output goes back as binary data. Pure: no fastify, no I/O.
 */
import { bytesTensor, checkBytesElementLimit } from '../../engine/bytes-tensor.ts';
import { quoted, serverError } from '../../engine/errors.ts';
import type { InferenceRequest } from '../../engine/inference-request.ts';
import type { TensorMetadata } from '../../engine/inference-engine.ts';
import { elementByteSize, isDataType, type Tensor } from '../../engine/tensor.ts';
import type { InferBody } from './infer-codec.ts';

/** What the deduction reads from the model: its inputs as model metadata lists them, and whether it batches. */
export interface RawRequestModel {
  readonly inputs: readonly TensorMetadata[];
  readonly maxBatchSize: number;
}

const invalid = (detail: string): Error => serverError('BAD_REQUEST', { detail });

/** The shape of the raw input, with the index of its one variable dim (or -1), or Triton's error. */
function deducedShape(input: TensorMetadata, batched: boolean): { shape: number[]; variable: number } {
  const dims = batched ? input.shape.slice(1) : input.shape;
  const shape = batched ? [1] : [];
  let variable = -1;
  for (const dim of dims) {
    if (dim === -1) {
      if (variable !== -1) {
        throw invalid(`The shape of the raw input '${quoted(input.name)}' can not be deduced because there are more than one variable-sized dimension`);
      }
      variable = shape.length;
    }
    shape.push(dim);
  }
  return { shape, variable };
}

/** The request a raw binary body makes for `target`'s model: one input from the body, every output binary. */
export function decodeRawBinaryRequest(
  body: Buffer,
  model: RawRequestModel,
  target: { readonly model: string; readonly version?: string },
  maxBytesElements: number,
): InferBody {
  if (model.inputs.length !== 1) {
    throw invalid(`Raw request must only have 1 input (found 1) to be deduced but got ${model.inputs.length} inputs in '${quoted(target.model)}' model configuration`);
  }
  const input = model.inputs[0]!;
  const { datatype, name } = input;
  if (!isDataType(datatype)) throw invalid(`raw input '${quoted(name)}' has datatype ${quoted(datatype)}, which no request can carry`);
  const { shape, variable } = deducedShape(input, model.maxBatchSize > 0);
  let tensor: Tensor;
  if (datatype === 'BYTES') {
    const one = variable === -1 && shape.every((d) => d === 1);
    if (!one) throw invalid(`For BYTE datatype raw input '${quoted(name)}', the model must have input shape [1]`);
    checkBytesElementLimit(name, 1, maxBytesElements);
    // The body is the one element; the wire form gives it its 4-byte length prefix.
    tensor = bytesTensor(name, shape, [body]);
  } else {
    if (variable !== -1) {
      const fixed = shape.reduce((n, d, i) => (i === variable ? n : n * d), 1) * elementByteSize(datatype)!;
      shape[variable] = fixed === 0 ? 0 : Math.floor(body.byteLength / fixed);
    }
    tensor = { name, datatype, shape, raw: body };
  }
  const request: InferenceRequest = {
    modelName: target.model,
    ...(target.version ? { modelVersion: target.version } : {}),
    inputs: [tensor],
    parameters: {},
  };
  return { request, binaryDefault: true, binaryByOutput: new Map() };
}
