/**
 * The JSON object body of a small control request (repository, logging):
 * empty means {}, anything but a JSON object is a 400 naming what is wrong.
 */
import { serverError } from '../../engine/errors.ts';

/** `what` names the body in the error, e.g. 'the log settings'. */
export function jsonObjectBody(body: unknown, what = 'the request body'): Record<string, unknown> {
  const text = Buffer.isBuffer(body) ? body.toString('utf8').trim() : '';
  if (text === '') return {};
  let parsed: unknown;
  try {
    parsed = JSON.parse(text);
  } catch (err) {
    throw serverError('MALFORMED_JSON', { detail: (err as Error).message });
  }
  if (typeof parsed !== 'object' || parsed === null || Array.isArray(parsed)) {
    throw serverError('MALFORMED_JSON', { detail: `${what} must be a JSON object` });
  }
  return parsed as Record<string, unknown>;
}
