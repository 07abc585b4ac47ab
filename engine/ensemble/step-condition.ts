/**
 * A condition on an ensemble step (Switchyard's extension): the step runs
 * only when it holds. Conditions come from a step's `when` and from the
 * cases of a `switch`, and read either a scalar tensor (an ensemble input
 * or a step's output: BOOL, or a number) or a request parameter.
 *
 *   when := operand [op literal]
 *   operand := parameters.NAME | TENSOR
 *   op := == | != | < | <= | > | >=
 *   literal := true | false | a number | "text" | 'text'
 *
 * Written alone, the operand must be BOOL (a tensor, or a parameter sent as
 * a boolean) and the step runs when it is true. A switch case is the test
 * `operand in {values}`, its default `operand not in {every case value}`.
 *
 * Missing values: a parameter the request does not send makes `!=` and
 * `not in` hold and everything else fail. A tensor that is not there (its
 * writer was skipped, or an optional input was not sent) skips the step,
 * as any input that is not there does.
 */
import { serverError } from '../errors.ts';
import type { ParameterValue } from '../inference-request.ts';
import { typedView, type DataType, type Tensor } from '../tensor.ts';

export type ConditionLiteral = boolean | number | string;
export type CompareOp = '==' | '!=' | '<' | '<=' | '>' | '>=';

export type ConditionOperand =
  | { readonly kind: 'tensor'; readonly tensor: string }
  | { readonly kind: 'parameter'; readonly name: string };

export type ConditionTest =
  | { readonly op: CompareOp; readonly value: ConditionLiteral }
  | { readonly op: 'in' | 'not in'; readonly values: readonly ConditionLiteral[] };

export interface StepCondition {
  readonly operand: ConditionOperand;
  readonly test: ConditionTest;
  /** How messages quote it: `when: parameters.route == "fast"`, `switch 'route' case "fast"`. */
  readonly origin: string;
}

export const PARAMETER_PREFIX = 'parameters.';

/** The values a test compares with. */
export function testValues(test: ConditionTest): readonly ConditionLiteral[] {
  return 'values' in test ? test.values : [test.value];
}
const OPS: readonly CompareOp[] = ['==', '!=', '<=', '>=', '<', '>'];

/** A parsed `when` before its operand is resolved against the ensemble. */
export interface ConditionExpression {
  readonly operand: string;
  readonly op: CompareOp | undefined;
  readonly value: ConditionLiteral | undefined;
}

/** Parses `operand [op literal]`; throws an Error whose message says what is wrong. */
export function parseConditionExpression(text: string): ConditionExpression {
  const trimmed = text.trim();
  let at = -1;
  let op: CompareOp | undefined;
  for (let i = 0; i < trimmed.length && at < 0; i++) {
    if (trimmed[i] === '"' || trimmed[i] === '\'') break;
    for (const candidate of OPS) {
      if (trimmed.startsWith(candidate, i)) {
        at = i;
        op = candidate;
        break;
      }
    }
    if (at < 0 && (trimmed[i] === '=' || trimmed[i] === '!')) {
      throw new Error(`'${trimmed}' has an unknown operator at '${trimmed.slice(i, i + 2)}': use ==, !=, <, <=, > or >=`);
    }
  }
  if (!op) {
    if (trimmed === '' || /\s/.test(trimmed)) {
      throw new Error(trimmed === '' ? 'is empty' : `'${trimmed}' is not a condition: write OPERAND, or OPERAND OP VALUE with OP one of ==, !=, <, <=, >, >=`);
    }
    return { operand: trimmed, op: undefined, value: undefined };
  }
  const operand = trimmed.slice(0, at).trim();
  const right = trimmed.slice(at + op.length).trim();
  if (/^[=<>!]/.test(right)) {
    throw new Error(`'${trimmed}' has an unknown operator '${op}${right[0]}': use ==, !=, <, <=, > or >=`);
  }
  if (operand === '') throw new Error(`'${trimmed}' has nothing before '${op}'`);
  if (right === '') throw new Error(`'${trimmed}' has nothing after '${op}'`);
  const value = parseLiteral(right, true);
  return { operand, op, value };
}

/**
 * A literal: true, false, a number, or quoted text. `quotedTextOnly`
 * refuses unquoted text (in an expression); in a parameter key it is text.
 */
export function parseLiteral(text: string, quotedTextOnly = false): ConditionLiteral {
  const t = text.trim();
  if ((t.startsWith('"') && t.endsWith('"') && t.length >= 2) || (t.startsWith('\'') && t.endsWith('\'') && t.length >= 2)) {
    return t.slice(1, -1);
  }
  if (t === 'true') return true;
  if (t === 'false') return false;
  if (/^[-+]?(\d+\.?\d*|\.\d+)([eE][-+]?\d+)?$/.test(t)) return Number(t);
  if (quotedTextOnly) throw new Error(`'${t}' is not a value: write true, false, a number, or text in quotes ("${t}")`);
  return t;
}

/** A literal as `parseLiteral` reads it back: text that would read as a number or boolean is quoted. */
export function formatLiteral(value: ConditionLiteral, forKey = false): string {
  if (typeof value !== 'string') return String(value);
  if (forKey && parseLiteral(value) === value && !/^["']/.test(value)) return value;
  return JSON.stringify(value);
}

export function describeLiteral(value: ConditionLiteral): string {
  return typeof value === 'string' ? `"${value}"` : String(value);
}

export function literalKind(value: ConditionLiteral): 'BOOL' | 'number' | 'string' {
  return typeof value === 'boolean' ? 'BOOL' : typeof value === 'number' ? 'number' : 'string';
}

/** Datatypes a condition tensor may have: BOOL, or a number that reads exactly as one. */
export function conditionKindOf(datatype: DataType): 'BOOL' | 'number' | undefined {
  if (datatype === 'BOOL') return 'BOOL';
  if (datatype === 'BYTES' || datatype === 'FP16' || datatype === 'BF16') return undefined;
  return 'number';
}

/** The one value a condition tensor holds for the request; every row of a batch must agree. */
export function tensorConditionValue(tensor: Tensor, ensemble: string, name: string): boolean | number {
  if (tensor.datatype === 'BYTES' || tensor.datatype === 'FP16' || tensor.datatype === 'BF16') {
    throw serverError('BAD_REQUEST', { detail: `ensemble '${ensemble}': condition tensor '${name}' is ${tensor.datatype}` });
  }
  const view = typedView(tensor.datatype, tensor.raw);
  if (view.length === 0) {
    throw serverError('BAD_REQUEST', { detail: `ensemble '${ensemble}': condition tensor '${name}' has no elements` });
  }
  const read = (i: number): boolean | number => (tensor.datatype === 'BOOL' ? view[i] !== 0 : Number(view[i]));
  const first = read(0);
  for (let i = 1; i < view.length; i++) {
    if (read(i) !== first) {
      throw serverError('BAD_REQUEST', {
        detail: `ensemble '${ensemble}': condition tensor '${name}' holds different values across the batch (${String(first)} and ${String(read(i))}); ` +
          'a condition decides for the whole request: send rows that take different paths as separate requests',
      });
    }
  }
  return first;
}

/**
 * Whether the condition holds for a value (undefined: a parameter the
 * request did not send). A parameter of another kind than the condition's
 * values is a 400 naming both.
 */
export function conditionHolds(condition: StepCondition, value: ParameterValue | undefined, ensemble: string, step: string): boolean {
  const { test } = condition;
  if (value === undefined) return test.op === '!=' || test.op === 'not in';
  const actual = typeof value === 'bigint' ? Number(value) : value;
  const expected = testValues(test)[0];
  if (expected !== undefined && typeof expected !== typeof actual) {
    const shown = typeof actual === 'string' ? `"${actual}"` : String(actual);
    throw serverError('BAD_REQUEST', {
      detail: `ensemble '${ensemble}': parameter '${condition.operand.kind === 'parameter' ? condition.operand.name : '?'}' is ${shown}, ` +
        `${literalKind(actual) === 'number' ? 'a number' : literalKind(actual) === 'BOOL' ? 'a boolean' : 'text'}, ` +
        `but ${step} runs on ${condition.origin}, which compares it with ${literalKind(expected) === 'number' ? 'a number' : literalKind(expected) === 'BOOL' ? 'a boolean' : 'text'}`,
    });
  }
  switch (test.op) {
    case 'in': return test.values.includes(actual);
    case 'not in': return !test.values.includes(actual);
    case '==': return actual === test.value;
    case '!=': return actual !== test.value;
    case '<': return actual < test.value;
    case '<=': return actual <= test.value;
    case '>': return actual > test.value;
    case '>=': return actual >= test.value;
  }
}
