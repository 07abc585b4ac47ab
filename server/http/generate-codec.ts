/**
 * Triton's generate extension (POST .../generate and .../generate_stream):
 * a flat JSON object in, a flat JSON object out. Pure functions, no fastify.
 *
 * In: each key naming a model input becomes that tensor, shaped to the
 * input's dims (a string is one BYTES element, a number one element of the
 * input's datatype, an array one element per item); `parameters` holds
 * request parameters; any other key is a request parameter too, as in
 * Triton. Out: `model_name`, `model_version`, the response's parameters,
 * and one key per output, holding its only element or an array of them.
 */
import { bytesElementCount, checkBytesElementLimit, DEFAULT_MAX_BYTES_ELEMENTS } from '../../engine/bytes-tensor.ts';
import { didYouMean } from '../../engine/config/did-you-mean.ts';
import { quoted, serverError, type SwitchyardError } from '../../engine/errors.ts';
import type { InferenceRequest, ParameterValue } from '../../engine/inference-request.ts';
import type { InferenceResponse } from '../../engine/inference-response.ts';
import type { TensorMetadata } from '../../engine/inference-engine.ts';
import { isDataType, type Tensor } from '../../engine/tensor.ts';
import { parseJsonExact, quotedJson, showJson } from './exact-json.ts';
import { flattenData, tensorDataJson, tensorFromJson } from './json-tensor-data.ts';

export interface DecodedGenerate {
  readonly request: InferenceRequest;
  /** Top-level keys that name no input, passed on as request parameters (for the hint when an input is missing). */
  readonly extraKeys: readonly string[];
}

type Json = Record<string, unknown>;

const isObject = (v: unknown): v is Json => typeof v === 'object' && v !== null && !Array.isArray(v);

const isParameterValue = (v: unknown): v is ParameterValue =>
  typeof v === 'string' || typeof v === 'number' || typeof v === 'boolean' || typeof v === 'bigint';

/** Triton's words for a parameter that is not a string, number or boolean. */
function badParameter(name: string, where: string): SwitchyardError {
  return serverError('BAD_REQUEST', { detail: `${where}parameter '${quoted(name)}' has invalid type. It should be either 'int', 'bool', or 'string'.` });
}

/** The request, without the client's signal (the route adds it), as plain data: what a JSON codec process sends back. */
export function decodeGenerateBody(
  body: Buffer,
  inputs: readonly TensorMetadata[],
  target: { readonly model: string; readonly version?: string },
  maxBytesElements = DEFAULT_MAX_BYTES_ELEMENTS,
): DecodedGenerate {
  const json = parseBody(body.toString('utf8'));
  const byName = new Map(inputs.map((input) => [input.name, input]));
  const tensors: Tensor[] = [];
  const topLevel: Record<string, ParameterValue> = {};
  let given: Record<string, ParameterValue> = {};
  const extraKeys: string[] = [];
  for (const [key, value] of Object.entries(json)) {
    const input = byName.get(key);
    if (input) {
      tensors.push(tensorOf(input, value, maxBytesElements));
    } else if (key === 'parameters') {
      if (!isObject(value)) throw serverError('BAD_REQUEST', { detail: "Expected JSON object for keyword: 'parameters'" });
      for (const [name, v] of Object.entries(value)) if (!isParameterValue(v)) throw badParameter(name, "Converting keyword: 'parameters': ");
      given = value as Record<string, ParameterValue>;
    } else {
      if (!isParameterValue(value)) throw badParameter(key, '');
      topLevel[key] = value;
      extraKeys.push(key);
    }
  }
  const request: InferenceRequest = {
    modelName: target.model,
    ...(target.version ? { modelVersion: target.version } : {}),
    inputs: tensors,
    // The parameters object wins over a top-level key of the same name.
    parameters: { ...topLevel, ...given },
  };
  return { request, extraKeys };
}

function parseBody(text: string): Json {
  let parsed: unknown;
  try {
    parsed = parseJsonExact(text);
  } catch (err) {
    throw serverError('MALFORMED_JSON', { detail: (err as Error).message.replace(/ in JSON at position \d+.*$/, '') });
  }
  if (!isObject(parsed)) throw serverError('MALFORMED_JSON', { detail: 'the generate request must be a JSON object' });
  return parsed;
}

/**
 * A field's value as the input's tensor. Its shape is the input's, with
 * the last -1 taking what the value holds and any other -1 (a batch
 * dimension before it) taking 1: "hi" for dims [1] of a batching model is
 * [1, 1], [1, 2, 3] for dims [-1] is [1, 3].
 */
function tensorOf(input: TensorMetadata, value: unknown, maxBytesElements: number): Tensor {
  const { name, datatype } = input;
  if (!isDataType(datatype)) throw serverError('BAD_REQUEST', { detail: `input '${quoted(name)}' has datatype ${datatype}, which generate cannot fill` });
  if (isObject(value) || value === null) {
    throw serverError('UNPARSABLE_FIELD', { field: name, detail: `input '${quoted(name)}' is ${datatype}: give a value or an array of values, not ${quotedJson(value)}` });
  }
  let values: unknown[];
  try {
    values = flattenData(value);
  } catch (err) {
    throw serverError('UNPARSABLE_FIELD', { field: name, detail: `input '${quoted(name)}': ${(err as Error).message}` });
  }
  const shape = [...input.shape];
  const known = shape.reduce((n, d) => (d >= 0 ? n * d : n), 1);
  const last = shape.lastIndexOf(-1);
  shape.forEach((d, i) => {
    if (d === -1) shape[i] = i === last ? (known > 0 ? values.length / known : 0) : 1;
  });
  if (!shape.every((d) => Number.isInteger(d)) || shape.reduce((n, d) => n * d, 1) !== values.length) {
    throw serverError('UNPARSABLE_FIELD', {
      field: name,
      detail: `input '${quoted(name)}' has shape [${input.shape.join(',')}], which cannot hold the ${values.length} element(s) given`,
    });
  }
  if (datatype === 'BYTES') checkBytesElementLimit(name, values.length, maxBytesElements);
  try {
    return tensorFromJson(name, datatype, shape, values);
  } catch (err) {
    // Same words as the infer codec's, naming the field rather than 'data'.
    const detail = (err as Error).message.replace(/^Unable to parse 'data': /, '');
    throw serverError('UNPARSABLE_FIELD', { field: name, detail });
  }
}

/**
 * The missing-inputs error, plus which top-level fields were taken as
 * parameters, so that a misspelt input name is named (with a suggestion).
 */
export function explainMissingInputs(error: SwitchyardError, decoded: DecodedGenerate, inputs: readonly TensorMetadata[]): SwitchyardError {
  if (error.code !== 'MISSING_INPUTS' || decoded.extraKeys.length === 0) return error;
  const names = inputs.map((i) => i.name);
  const listed = decoded.extraKeys.map((key) => {
    const guess = didYouMean(key, names);
    return `'${quoted(key)}'${guess ? ` (did you mean '${guess}'?)` : ''}`;
  });
  return serverError('BAD_REQUEST', {
    detail: `${error.message} The generate request's field(s) ${listed.join(', ')} name no input of model '${decoded.request.modelName}' ` +
      `(inputs: ${names.join(', ')}), so they were passed as request parameters.`,
  });
}

/** One response as the generate object: model, version, response parameters, then one key per output. */
export function encodeGenerateResponse(response: InferenceResponse): string {
  const fields = [`"model_name":${JSON.stringify(response.modelName)}`, `"model_version":${JSON.stringify(response.modelVersion)}`];
  for (const [key, value] of Object.entries(response.parameters ?? {})) fields.push(`${JSON.stringify(key)}:${showJson(value)}`);
  for (const tensor of response.outputs) {
    const data = tensorDataJson(tensor);
    const count = tensor.datatype === 'BYTES' ? bytesElementCount(tensor) : tensor.shape.reduce((n, d) => n * d, 1);
    fields.push(`${JSON.stringify(tensor.name)}:${count === 1 ? data.slice(1, -1) : data}`);
  }
  return `{${fields.join(',')}}`;
}
