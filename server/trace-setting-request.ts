/**
 * What the trace setting routes (HTTP) and the TraceSetting RPC share: the
 * model check Triton makes before anything else, and the reading of a
 * request's changes key by key in Triton's order.
 */
import { isSwitchyardError, serverError } from '../engine/errors.ts';
import type { InferenceEngine } from '../engine/inference-engine.ts';
import { TraceSettings, type TraceSettingChange } from '../engine/observability/trace/trace-settings.ts';

/** The keys Triton reads from a request, in the order it reads them; any other key is ignored. */
export const TRACE_SETTING_KEYS = ['trace_file', 'trace_level', 'trace_rate', 'trace_count', 'log_frequency'] as const;
export type TraceSettingKey = (typeof TRACE_SETTING_KEYS)[number];

/**
 * Throws Triton's error when `model` cannot take trace settings: NOT_FOUND
 * when the repository does not hold it, INVALID_ARG `Request for unknown
 * model : <m>` when it holds it but no version is ready.
 */
export function checkTraceModel(engine: InferenceEngine, model: string): void {
  try {
    engine.assertModelReady(model);
  } catch (err) {
    if (isSwitchyardError(err) && err.code === 'MODEL_NO_VERSIONS') throw serverError('TRACE_MODEL_NOT_READY', { model });
    throw err;
  }
}

/**
 * The changes a request asks for. `read` gives one key's change (undefined
 * when the request leaves the key out), or throws the protocol's own error
 * for a value of the wrong form (a JSON type, a second value). Triton parses
 * each key before it reads the next, so a form error is only the answer
 * when the keys before it parse: those are tried first on a scratch copy of
 * the settings, which changes nothing.
 */
export function traceSettingChanges(
  settings: TraceSettings, protocol: 'http' | 'grpc', read: (key: TraceSettingKey) => TraceSettingChange | undefined,
): Map<string, TraceSettingChange> {
  const changes = new Map<string, TraceSettingChange>();
  for (const key of TRACE_SETTING_KEYS) {
    let change: TraceSettingChange | undefined;
    try {
      change = read(key);
    } catch (err) {
      parseEarlierKeys(settings, changes, protocol);
      throw err;
    }
    if (change !== undefined) changes.set(key, change);
  }
  return changes;
}

/** Throws the first error Triton gives for these changes' values, if any; the check of the resulting setting comes later. */
function parseEarlierKeys(settings: TraceSettings, changes: ReadonlyMap<string, TraceSettingChange>, protocol: 'http' | 'grpc'): void {
  try {
    new TraceSettings(settings.startup).update(undefined, changes, protocol);
  } catch (err) {
    if (isSwitchyardError(err) && err.code === 'TRACE_SETTING_INVALID') return;
    throw err;
  }
}
