/**
 * A request's place in a sequence, read from its parameters as Triton's
 * frontends read them: `sequence_id` (an unsigned 64-bit integer, or a
 * string), `sequence_start` and `sequence_end` (booleans). Integer IDs are
 * kept as bigints so that IDs past 2^53 stay exact; 0 and "" mean no ID.
 * The integer 5 and the string "5" are different sequences, as in Triton.
 */
import { serverError } from '../errors.ts';
import type { ParameterValue } from '../inference-request.ts';

export type CorrelationId =
  | { readonly kind: 'uint64'; readonly value: bigint }
  | { readonly kind: 'string'; readonly value: string };

export interface SequenceParameters {
  /** undefined when the request names no sequence (no parameter, 0 or ""). */
  readonly id: CorrelationId | undefined;
  readonly start: boolean;
  readonly end: boolean;
}

const UINT64_MAX = (1n << 64n) - 1n;

export function readSequenceParameters(parameters: Readonly<Record<string, ParameterValue>> | undefined): SequenceParameters {
  const given = parameters ?? {};
  return { id: readId(given['sequence_id']), start: readFlag('sequence_start', given['sequence_start']), end: readFlag('sequence_end', given['sequence_end']) };
}

/** The key sequences are looked up by: type and value, so 5 and "5" differ. */
export function correlationKey(id: CorrelationId): string {
  return id.kind === 'uint64' ? `u${id.value}` : `s${id.value}`;
}

/** The ID as Triton's messages print it: the number, or the string as it is. */
export function describeCorrelationId(id: CorrelationId): string {
  return String(id.value);
}

function readId(value: ParameterValue | undefined): CorrelationId | undefined {
  if (value === undefined) return undefined;
  if (typeof value === 'string') return value === '' ? undefined : { kind: 'string', value };
  const big = typeof value === 'bigint' ? value : typeof value === 'number' && Number.isSafeInteger(value) ? BigInt(value) : undefined;
  if (big === undefined || big < 0n || big > UINT64_MAX) {
    throw serverError('SEQUENCE_PARAMETER', { parameter: 'sequence_id', expected: 'an unsigned 64-bit integer or a string', got: shown(value) });
  }
  return big === 0n ? undefined : { kind: 'uint64', value: big };
}

function readFlag(parameter: string, value: ParameterValue | undefined): boolean {
  if (value === undefined) return false;
  if (typeof value !== 'boolean') throw serverError('SEQUENCE_PARAMETER', { parameter, expected: 'a boolean', got: shown(value) });
  return value;
}

function shown(value: ParameterValue): string {
  return typeof value === 'string' ? `'${value}'` : String(value);
}
