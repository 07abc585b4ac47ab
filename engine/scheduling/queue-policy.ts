/**
 * Reads a request's scheduling parameters (Triton's schedule_policy
 * extension) against the model's dynamic_batching config: which priority
 * level it queues at, and when its queue timeout falls due.
 */
import { NO_QUEUE_POLICY, type DynamicBatchingSpec, type QueuePolicySpec } from '../config/compiled-model-config.ts';
import { serverError } from '../errors.ts';
import type { InferenceRequest, ParameterValue } from '../inference-request.ts';

export interface RequestPolicy {
  /** 0-based index into the scheduler's levels (0 is the highest priority). */
  readonly levelIndex: number;
  readonly policy: QueuePolicySpec;
  /** Queue timeout in microseconds, 0 for none. */
  readonly timeoutUs: number;
}

/** Every request's policy without dynamic_batching. */
const UNBATCHED: RequestPolicy = Object.freeze({ levelIndex: 0, policy: NO_QUEUE_POLICY, timeoutUs: 0 });
const NO_PARAMETERS: Readonly<Record<string, ParameterValue>> = Object.freeze({});

/** Parses `priority` and `timeout`. Without dynamic_batching both are ignored, as Triton ignores them. */
export function requestPolicy(model: string, spec: DynamicBatchingSpec | undefined, request: InferenceRequest): RequestPolicy {
  if (!spec) return UNBATCHED;
  const parameters = request.parameters ?? NO_PARAMETERS;
  let levelIndex = 0;
  const priority = nonNegativeInteger(model, 'priority', parameters['priority']);
  if (spec.priorityLevels > 0) {
    // 0 (or no parameter) picks the default level. A model without levels ignores priority, as Triton does.
    const level = priority === 0n ? spec.defaultPriorityLevel : priority;
    if (BigInt(level) > BigInt(spec.priorityLevels)) {
      throw serverError('BAD_PRIORITY', {
        model, got: String(priority), levels: spec.priorityLevels, defaultLevel: spec.defaultPriorityLevel,
      });
    }
    levelIndex = Number(level) - 1;
  }
  const policy = spec.queuePolicies[levelIndex]!;
  const requested = nonNegativeInteger(model, 'timeout', parameters['timeout']);
  let timeoutUs = policy.defaultTimeoutMicroseconds;
  // An override may only shorten the default; where overriding is not allowed the parameter is ignored (Triton's rule).
  if (policy.allowTimeoutOverride && requested > 0n && (timeoutUs === 0 || requested < BigInt(timeoutUs))) {
    timeoutUs = Number(requested);
  }
  return { levelIndex, policy, timeoutUs };
}

function nonNegativeInteger(model: string, parameter: string, value: ParameterValue | undefined): bigint {
  if (value === undefined) return 0n;
  if (typeof value === 'bigint' && value >= 0n) return value;
  if (typeof value === 'number' && Number.isSafeInteger(value) && value >= 0) return BigInt(value);
  throw serverError('BAD_SCHEDULE_PARAMETER', { model, parameter, got: typeof value === 'string' ? `'${value}'` : String(value) });
}
