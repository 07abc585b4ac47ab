/**
 * tritonserver's --http-header-forward-pattern and --grpc-header-forward-pattern:
 * every request header (gRPC metadata entry) whose name the pattern matches
 * becomes a string parameter of the inference request, named as the header
 * and holding its value, so scripts and ensemble steps read it like any
 * other request parameter. As in Triton:
 * - the pattern matches anywhere in the name (unanchored) and ignores case,
 *   unless it starts with `(?-i)`;
 * - a matching header named after a parameter Triton reserves (sequence_id,
 *   priority, ..., or starting `triton_`) fails the request;
 * - headers are added after the body's parameters, so a forwarded header
 *   replaces a body parameter of the same name (and a header sent twice
 *   keeps its last value).
 * The pattern is a JavaScript regular expression; RE2's inline flags other
 * than a leading `(?i)` / `(?-i)` are refused when it is compiled.
 */
import { serverError } from '../engine/errors.ts';

/** Parameter names Triton keeps for itself (its kReservedParameterKeys), besides every `triton_` name. */
export const RESERVED_PARAMETER_KEYS: readonly string[] = [
  'sequence_id', 'sequence_start', 'sequence_end', 'priority', 'timeout', 'headers', 'binary_data_output',
];

const LEADING_CASE_FLAG = /^\(\?(-?)i\)/;

export class HeaderForwardPattern {
  private constructor(private readonly regex: RegExp) {}

  /** Compiles a pattern as tritonserver takes it; throws SyntaxError with JavaScript's reason when it is not one. */
  static compile(pattern: string): HeaderForwardPattern {
    let source = pattern;
    let ignoreCase = true;
    for (let flag = LEADING_CASE_FLAG.exec(source); flag; flag = LEADING_CASE_FLAG.exec(source)) {
      ignoreCase = flag[1] !== '-';
      source = source.slice(flag[0].length);
    }
    return new HeaderForwardPattern(new RegExp(source, ignoreCase ? 'i' : ''));
  }

  /**
   * The parameters the matching headers make, in the order given (a later
   * value of one name wins). Names are as the client wrote them.
   */
  parameters(headers: Iterable<readonly [name: string, value: string]>): Record<string, string> {
    const out: Record<string, string> = {};
    for (const [name, value] of headers) {
      if (!this.regex.test(name)) continue;
      if (RESERVED_PARAMETER_KEYS.includes(name) || name.startsWith('triton_')) throw serverError('HEADER_RESERVED', { header: name });
      out[name] = value;
    }
    return out;
  }
}

/** A header value as the bytes the client sent, read as UTF-8 (Node hands HTTP and HTTP/2 header values over as latin1). */
export function headerText(latin1: string): string {
  return /[^\x00-\x7f]/.test(latin1) ? Buffer.from(latin1, 'latin1').toString('utf8') : latin1;
}
