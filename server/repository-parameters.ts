/**
 * The parameters of the model repository extension's load and unload calls,
 * read the same way for HTTP (a JSON object) and gRPC (a map of
 * ModelRepositoryParameter). Load takes `config` (the model config as JSON
 * text) and `file:<path>` (a file of the model folder: base64 text over
 * HTTP, bytes over gRPC); unload takes `unload_dependents`. Anything else is
 * refused naming the parameter, so a typo never passes silently.
 */
import { serverError } from '../engine/errors.ts';
import type { LoadModelOptions, UnloadModelOptions } from '../engine/inference-engine.ts';

/** One parameter value as either frontend decoded it. */
export type RepositoryParameter =
  | { readonly kind: 'bool'; readonly value: boolean }
  | { readonly kind: 'int'; readonly value: number }
  | { readonly kind: 'string'; readonly value: string }
  | { readonly kind: 'bytes'; readonly value: Uint8Array };

const FILE_PREFIX = 'file:';
/** NAME_MAX on Linux: the longest name of one file or folder, in bytes. */
const MAX_FILE_NAME_BYTES = 255;
const BASE64 = /^[A-Za-z0-9+/]*={0,2}$/;

function invalid(name: string, detail: string): never {
  throw serverError('UNPARSABLE_FIELD', { field: `parameters.${name}`, detail });
}

/** Base64 text, strictly: Buffer.from would skip bad characters and load a corrupt file. */
function decodeBase64(name: string, text: string): Uint8Array {
  const compact = text.replace(/\s+/g, '');
  if (compact.length % 4 !== 0 || !BASE64.test(compact)) invalid(name, 'expected the file content as base64 text');
  return Buffer.from(compact, 'base64');
}

export function loadOptionsFromParameters(parameters: ReadonlyMap<string, RepositoryParameter>): LoadModelOptions {
  let config: string | undefined;
  const files = new Map<string, Uint8Array>();
  for (const [name, parameter] of parameters) {
    if (name === 'config') {
      if (parameter.kind !== 'string') invalid(name, 'expected the model config as a JSON string');
      config = parameter.value;
    } else if (name.startsWith(FILE_PREFIX)) {
      const path = name.slice(FILE_PREFIX.length);
      if (path === '') invalid(name, "expected a path after 'file:', such as 'file:1/model.onnx'");
      const tooLong = path.split('/').find((part) => Buffer.byteLength(part) > MAX_FILE_NAME_BYTES);
      if (tooLong !== undefined) {
        // Triton fails these with "failed to poll from model repository" (and a 500); the words stay, the status is the client's 400.
        invalid(name, `failed to poll from model repository: the file name '${tooLong}' is ${Buffer.byteLength(tooLong)} bytes, ` +
          `past the ${MAX_FILE_NAME_BYTES}-byte limit of one path component (NAME_MAX)`);
      }
      if (parameter.kind === 'bytes') files.set(path, parameter.value);
      else if (parameter.kind === 'string') files.set(path, decodeBase64(name, parameter.value));
      else invalid(name, 'expected the file content (base64 text over HTTP, bytes over gRPC)');
    } else {
      invalid(name, "not a load parameter: load takes 'config' and 'file:<version>/<file name>'");
    }
  }
  return { ...(config !== undefined ? { config } : {}), ...(files.size > 0 ? { files } : {}) };
}

export function unloadOptionsFromParameters(parameters: ReadonlyMap<string, RepositoryParameter>): UnloadModelOptions {
  let unloadDependents = false;
  for (const [name, parameter] of parameters) {
    if (name !== 'unload_dependents') invalid(name, "not an unload parameter: unload takes 'unload_dependents'");
    if (parameter.kind !== 'bool') invalid(name, 'expected true or false');
    unloadDependents = parameter.value;
  }
  return { unloadDependents };
}

/** The `parameters` object of an HTTP load or unload body, typed. */
export function parametersFromJson(value: Readonly<Record<string, unknown>> | undefined): Map<string, RepositoryParameter> {
  const parameters = new Map<string, RepositoryParameter>();
  for (const [name, v] of Object.entries(value ?? {})) {
    if (typeof v === 'boolean') parameters.set(name, { kind: 'bool', value: v });
    else if (typeof v === 'number' && Number.isInteger(v)) parameters.set(name, { kind: 'int', value: v });
    else if (typeof v === 'string') parameters.set(name, { kind: 'string', value: v });
    else invalid(name, 'expected a string, a boolean or an integer');
  }
  return parameters;
}

/** The `parameters` map of a gRPC RepositoryModelLoad or RepositoryModelUnload request, typed. */
export function parametersFromGrpc(value: unknown): Map<string, RepositoryParameter> {
  const parameters = new Map<string, RepositoryParameter>();
  for (const [name, raw] of Object.entries((value ?? {}) as Record<string, Record<string, unknown>>)) {
    const choice = raw['parameter_choice'] as string | undefined
      ?? ['bool_param', 'int64_param', 'string_param', 'bytes_param'].find((k) => raw[k] !== undefined && raw[k] !== null);
    switch (choice) {
      case 'bool_param': parameters.set(name, { kind: 'bool', value: raw['bool_param'] === true }); break;
      case 'int64_param': parameters.set(name, { kind: 'int', value: Number(raw['int64_param']) }); break;
      case 'string_param': parameters.set(name, { kind: 'string', value: String(raw['string_param']) }); break;
      case 'bytes_param': parameters.set(name, { kind: 'bytes', value: raw['bytes_param'] as Uint8Array }); break;
      default: invalid(name, 'the parameter has no value: set bool_param, int64_param, string_param or bytes_param');
    }
  }
  return parameters;
}
