/**
 * Reads a model's config file into the plain ModelConfig object, plus a map
 * of where each field sits. config.pbtxt is protobuf text format (parsed by
 * protobufjs); config.yaml and config.json carry the same schema as a tree.
 * Every failure is a ModelConfigError naming file, line, field and a fix.
 */
import { basename } from 'node:path';
import protobuf from 'protobufjs';
import textformat from 'protobufjs/ext/textformat.js';
import { LineCounter, parseDocument } from 'yaml';
import { ModelConfigError } from './config-error.ts';
import { ConfigSourceMap, mapYamlDocument, scanTextFormat } from './config-source-map.ts';
import { didYouMean } from './did-you-mean.ts';
import type { EnsembleLayout } from '../ensemble/ensemble-layout.ts';
import { parsePipelineFile, PIPELINE_FILE_NAME } from './pipeline-file.ts';
import { modelConfigRoot, modelConfigType, toPlainObject, type ModelConfigObject } from './model-config-schema.ts';

export const CONFIG_FILE_NAMES = ['config.pbtxt', 'config.yaml', 'config.yml', 'config.json', PIPELINE_FILE_NAME] as const;
/** The forms a model config file may take, by extension; a named config (--model-config-name) may be any of them. */
export const CONFIG_FILE_EXTENSIONS = ['.pbtxt', '.yaml', '.yml', '.json'] as const;

export interface ParsedModelConfig {
  readonly file: string;
  readonly config: ModelConfigObject;
  readonly sourceMap: ConfigSourceMap;
  /** Set for a pipeline.yaml: where its steps are written. Triton ensembles get theirs from the config. */
  readonly ensembleLayout?: EnsembleLayout;
}

export function parseModelConfig(file: string, text: string): ParsedModelConfig {
  if (basename(file) === PIPELINE_FILE_NAME) return parsePipelineFile(file, text);
  if (file.endsWith('.pbtxt')) return parseTextFormat(file, text);
  return parseTree(file, text);
}

function parseTextFormat(file: string, text: string): ParsedModelConfig {
  const sourceMap = scanTextFormat(text);
  let message: protobuf.Message;
  try {
    message = textformat.fromText(modelConfigType(), text);
  } catch (err) {
    throw explainTextFormatError(file, sourceMap, err instanceof Error ? err.message : String(err));
  }
  return { file, config: toPlainObject(message), sourceMap };
}

const UNKNOWN_FIELD = /^\.?([\w.]+): unknown field '(\w+)'(?: \(line (\d+)\))?/;
const ENUM_EXPECTED = /^\.?([\w.]+): enum value expected/;
const LINE_SUFFIX = / \(line (\d+)\)$/;

function explainTextFormatError(file: string, sourceMap: ConfigSourceMap, message: string): ModelConfigError {
  const unknown = UNKNOWN_FIELD.exec(message);
  if (unknown) {
    const [, typeName, field, line] = unknown as unknown as [string, string, string, string | undefined];
    const at = line === undefined ? undefined : Number(line);
    const path = sourceMap.occurrencesOf(field).find(([, e]) => at === undefined || e.line === at)?.[0];
    return unknownFieldError(file, at ?? sourceMap.lineOf(field), typeName, path ?? field);
  }
  const enumProblem = ENUM_EXPECTED.exec(message);
  if (enumProblem) {
    const fieldName = enumProblem[1]!.split('.').pop()!;
    const field = modelConfigRoot().lookup(enumProblem[1]!) as protobuf.Field | null;
    const values = field?.resolvedType instanceof protobuf.Enum ? Object.keys(field.resolvedType.values) : [];
    const bad = sourceMap.occurrencesOf(fieldName).find(([, e]) => e.value !== undefined && !values.includes(e.value));
    const written = bad?.[1].value;
    const guess = written === undefined ? undefined : didYouMean(written, values);
    return new ModelConfigError({
      file,
      line: bad?.[1].line,
      field: bad?.[0] ?? fieldName,
      problem: written === undefined ? 'expects an enum value' : `'${written}' is not a valid value`,
      fix: guess ? `did you mean '${guess}'? Valid values: ${values.join(', ')}` : `use one of ${values.join(', ')}`,
    });
  }
  const lineMatch = LINE_SUFFIX.exec(message);
  const problem = message.replace(LINE_SUFFIX, '');
  if (NUMBER_PROBLEM.test(problem)) {
    const culprit = numberCulprit(sourceMap);
    if (culprit) return new ModelConfigError({ file, ...culprit });
  }
  const fieldMatch = /^\.?inference\.([\w.]+?)\.(\w+): (.*)$/.exec(problem);
  return new ModelConfigError({
    file,
    line: lineMatch ? Number(lineMatch[1]) : fieldMatch ? sourceMap.lineOf(fieldMatch[2]!) : undefined,
    field: fieldMatch ? fieldMatch[2]! : 'config',
    problem: fieldMatch ? fieldMatch[3]! : `is not valid protobuf text format (${problem})`,
    fix: 'write the field as `name: value` for scalars and `name { ... }` or `name [ {...}, {...} ]` for messages, as in Triton\'s model configuration docs',
  });
}

const NUMBER_PROBLEM = /integer value|number expected|out of range/;

/**
 * protobufjs's text format parser names no field when a number is malformed
 * or out of range: find the scalar written for a numeric field that the
 * YAML/JSON check refuses, so both forms give the same error.
 */
function numberCulprit(sourceMap: ConfigSourceMap): { line: number; field: string; problem: string; fix: string } | undefined {
  for (const [path, written, line] of sourceMap.scalars()) {
    let type: protobuf.Type | undefined = modelConfigType();
    let field: protobuf.Field | undefined;
    const named: string[] = [];
    for (const part of path.split('.')) {
      const name = part.replace(/\[\d+\]$/, '');
      field = type?.fields[name];
      if (!field || field.map) break;
      // The scanner indexes every message it meets; only repeated fields keep the index in the name.
      named.push(field.repeated ? part : name);
      field.resolve();
      type = field.resolvedType instanceof protobuf.Type ? field.resolvedType : undefined;
    }
    if (!field || field.map || !(field.type in INTEGER_RANGES || field.type === 'float' || field.type === 'double')) continue;
    const wrong = scalarProblem(field, written);
    if (wrong) return { line, field: named.join('.'), ...wrong };
  }
  return undefined;
}

function unknownFieldError(file: string, line: number | undefined, typeName: string, field: string): ModelConfigError {
  const type = modelConfigRoot().lookupType(typeName);
  const known = type.fieldsArray.map((f) => f.name);
  const guess = didYouMean(field.replace(/\[\d+\]$/, '').split('.').pop()!, known);
  return new ModelConfigError({
    file,
    line,
    field,
    problem: `unknown field in ${type.name}`,
    fix: guess ? `did you mean '${guess}'?` : `remove it; ${type.name} has the fields ${known.join(', ')}`,
  });
}

function parseTree(file: string, text: string): ParsedModelConfig {
  const lines = new LineCounter();
  const doc = parseDocument(text, { lineCounter: lines, uniqueKeys: true, prettyErrors: false });
  const syntax = doc.errors[0];
  if (syntax) {
    throw new ModelConfigError({
      file,
      line: syntax.linePos?.[0].line ?? lines.linePos(syntax.pos[0]).line,
      field: 'config',
      problem: `is not valid ${file.endsWith('.json') ? 'JSON' : 'YAML'} (${syntax.message.split('\n')[0]})`,
      fix: 'correct the syntax at that line',
    });
  }
  const sourceMap = mapYamlDocument(doc, lines);
  const tree: unknown = doc.toJS() ?? {};
  const normalized = normalizeTree(file, sourceMap, modelConfigType(), tree, '');
  let message: protobuf.Message;
  try {
    message = modelConfigType().fromObject(normalized as Record<string, unknown>);
  } catch (err) {
    throw new ModelConfigError({
      file, field: 'config', problem: err instanceof Error ? err.message : String(err),
      fix: 'check the field types against the ModelConfig schema',
    });
  }
  return { file, config: toPlainObject(message), sourceMap };
}

const snakeCase = (name: string): string => name.replace(/[A-Z]/g, (c) => `_${c.toLowerCase()}`);

/**
 * Checks a YAML/JSON tree against the schema before protobufjs sees it
 * (fromObject silently drops unknown keys). Accepts camelCase keys as the
 * protobuf JSON mapping does, and enum values by name or number.
 */
function normalizeTree(file: string, sourceMap: ConfigSourceMap, type: protobuf.Type, tree: unknown, path: string): unknown {
  if (typeof tree !== 'object' || tree === null || Array.isArray(tree)) {
    throw new ModelConfigError({
      file, line: sourceMap.lineOf(path), field: path || 'config',
      problem: `must be an object (a ${type.name} message)`, fix: 'write it as a mapping of field names to values',
    });
  }
  const out: Record<string, unknown> = {};
  for (const [key, value] of Object.entries(tree)) {
    const fieldPath = path ? `${path}.${key}` : key;
    const field = type.fields[key] ?? type.fields[snakeCase(key)];
    if (!field) {
      const known = type.fieldsArray.map((f) => f.name);
      const guess = didYouMean(key, known);
      throw new ModelConfigError({
        file, line: sourceMap.lineOf(fieldPath), field: fieldPath, problem: `unknown field in ${type.name}`,
        fix: guess ? `did you mean '${guess}'?` : `remove it; ${type.name} has the fields ${known.join(', ')}`,
      });
    }
    field.resolve();
    const convert = (item: unknown, itemPath: string): unknown => {
      if (field.resolvedType instanceof protobuf.Type) {
        return normalizeTree(file, sourceMap, field.resolvedType, item, itemPath);
      }
      const wrong = scalarProblem(field, item);
      if (wrong) throw new ModelConfigError({ file, line: sourceMap.lineOf(itemPath), field: itemPath, ...wrong });
      return item;
    };
    if (field.map) {
      if (typeof value !== 'object' || value === null || Array.isArray(value)) {
        throw new ModelConfigError({
          file, line: sourceMap.lineOf(fieldPath), field: fieldPath, problem: 'must be a mapping',
          fix: `write it as { key: value } pairs`,
        });
      }
      out[field.name] = Object.fromEntries(Object.entries(value).map(([k, v]) => [k, convert(v, `${fieldPath}.${k}`)]));
    } else if (field.repeated) {
      const items = Array.isArray(value) ? value : [value];
      out[field.name] = items.map((item, index) => convert(item, `${fieldPath}[${index}]`));
    } else {
      out[field.name] = convert(value, fieldPath);
    }
  }
  return out;
}

const INT32: readonly [bigint, bigint] = [-(2n ** 31n), 2n ** 31n - 1n];
const UINT32: readonly [bigint, bigint] = [0n, 2n ** 32n - 1n];
const INT64: readonly [bigint, bigint] = [-(2n ** 63n), 2n ** 63n - 1n];
const UINT64: readonly [bigint, bigint] = [0n, 2n ** 64n - 1n];
const INTEGER_RANGES: Readonly<Record<string, readonly [bigint, bigint]>> = {
  int32: INT32, sint32: INT32, sfixed32: INT32, uint32: UINT32, fixed32: UINT32,
  int64: INT64, sint64: INT64, sfixed64: INT64, uint64: UINT64, fixed64: UINT64,
};
const FLOAT_MAX = 3.4028234663852886e38;
/** The token protobuf's text parser stops at for a value that is not an integer: the sign of a negative, a number, or a quoted string. */
function protobufToken(value: unknown): string {
  const text = String(value);
  if (/^-/.test(text)) return '-';
  return /^[0-9.eE+]+$/.test(text) || typeof value !== 'string' ? text : JSON.stringify(text);
}
const describeValue = (v: unknown): string => (typeof v === 'string' ? `'${v}'` : v === null ? 'null' : Array.isArray(v) ? 'a list' : typeof v === 'object' ? 'an object' : String(v));

/**
 * Why a YAML/JSON value cannot be the scalar `field` holds, as config.pbtxt's
 * parser would refuse it: protobufjs's fromObject would coerce it instead
 * ('abc' and 1e308 to 0, 1e10 wrapped to 1410065408, null dropped).
 */
function scalarProblem(field: protobuf.Field, value: unknown): { problem: string; fix: string } | undefined {
  const given = describeValue(value);
  if (value === null || value === undefined) return { problem: 'is null', fix: 'give it a value, or leave the field out for its default' };
  if (field.resolvedType instanceof protobuf.Enum) {
    const values = field.resolvedType.values;
    const names = Object.keys(values);
    if (typeof value === 'string') {
      if (names.includes(value)) return undefined;
      const guess = didYouMean(value, names);
      return { problem: `${given} is not a valid value`, fix: guess ? `did you mean '${guess}'? Valid values: ${names.join(', ')}` : `use one of ${names.join(', ')}` };
    }
    if (typeof value === 'number' && Object.values(values).includes(value)) return undefined;
    return { problem: `${given} is not a valid value`, fix: `use one of ${names.join(', ')}` };
  }
  const range = INTEGER_RANGES[field.type];
  if (range) {
    const integer = typeof value === 'number' ? (Number.isInteger(value) ? BigInt(value) : undefined)
      : typeof value === 'string' && /^-?[0-9]+$/.test(value) ? BigInt(value) : undefined;
    const bounds = `between ${range[0]} and ${range[1]}`;
    // Triton's protobuf parser words these as "Expected integer, got: <token>" and "Integer out of range (<value>)"; its tests match on that.
    if (integer === undefined || (integer < 0n && range[0] === 0n)) {
      return { problem: `is ${given}, not a whole number${range[0] === 0n ? ' of 0 or more' : ''} (Expected integer, got: ${protobufToken(value)})`, fix: `write a whole number ${bounds} (${field.type})` };
    }
    if (integer > range[1] || integer < range[0]) return { problem: `is ${given}, outside the ${field.type} range (Integer out of range (${String(value)}))`, fix: `write a whole number ${bounds}` };
    return undefined;
  }
  if (field.type === 'float' || field.type === 'double') {
    const number = typeof value === 'number' ? value : typeof value === 'string' && value.trim() !== '' ? Number(value) : Number.NaN;
    const max = field.type === 'float' ? FLOAT_MAX : Number.MAX_VALUE;
    if (!Number.isFinite(number)) return { problem: `is ${given}, not a number`, fix: `write a finite ${field.type}` };
    if (Math.abs(number) > max) return { problem: `is ${given}, outside the ${field.type} range`, fix: `write a number of at most ${max} in size` };
    return undefined;
  }
  if (field.type === 'bool') {
    return typeof value === 'boolean' ? undefined : { problem: `is ${given}, not true or false`, fix: 'write true or false' };
  }
  return typeof value === 'string' ? undefined : { problem: `is ${given}, not a string`, fix: 'write the value as a quoted string' };
}
