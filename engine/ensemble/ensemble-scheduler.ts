/**
 * The scheduler of an ensemble: it queues nothing itself. Each request
 * becomes an EnsembleRun whose steps go back through the server's infer(),
 * where every member model batches and schedules on its own.
 *
 * A decoupled ensemble (one with a decoupled step) runs each request as an
 * EnsembleStreamRun instead, and sends its responses as they come.
 *
 * ensemble_scheduling.max_inflight_requests gives each step one limiter,
 * shared by every request of the ensemble, as Triton does.
 *
 * The request parameter `switchyard_debug_tensors` adds intermediate
 * tensors to the answer: `true` for every tensor the steps write, or a
 * comma-separated list of tensor names.
 */
import { serverError } from '../errors.ts';
import type { InferenceRequest, ParameterValue } from '../inference-request.ts';
import type { FailureReason, ModelStats } from '../observability/model-stats.ts';
import type { NormalizedRequest } from '../request-normalizer.ts';
import { readSequenceParameters } from '../sequence/correlation-id.ts';
import type { InferFunction } from '../infer-function.ts';
import type { InferStreamFunction } from '../response-stream.ts';
import { InflightCounter } from '../scheduling/inflight-counter.ts';
import type { Scheduler, SchedulerContext } from '../scheduling/scheduler.ts';
import type { Tensor } from '../tensor.ts';
import type { ComputeTiming } from '../backend.ts';
import type { EnsemblePlan } from './ensemble-plan.ts';
import { EnsembleRun, isChain, renamed, type EnsembleRunContext } from './ensemble-run.ts';
import { EnsembleStreamRun } from './ensemble-stream-run.ts';
import { StepInflightLimiter } from './step-inflight-limiter.ts';
import { defaultOutputTensor } from './output-default.ts';

export const DEBUG_TENSORS_PARAMETER = 'switchyard_debug_tensors';

const NO_TIME: ComputeTiming = { inputNs: 0, inferNs: 0, outputNs: 0 };

export class EnsembleScheduler implements Scheduler {
  private readonly run: EnsembleRunContext;
  private readonly inferStream: InferStreamFunction | undefined;
  private readonly stats: ModelStats;
  private readonly inflight = new InflightCounter();
  private stopped = false;

  constructor(context: SchedulerContext, private readonly plan: EnsemblePlan, infer: InferFunction) {
    this.stats = context.stats;
    this.stats.trackSteps(plan.steps.map((s) => ({ step: s.label, model: s.modelName })));
    const limit = plan.maxInflightRequests;
    if (limit > 0) context.logger.info(`Ensemble model '${plan.ensemble}' configured with max_inflight_requests: ${limit}`);
    this.run = {
      plan, infer, stats: context.stats, pool: context.bufferPool, ownParameters: [DEBUG_TENSORS_PARAMETER], chain: isChain(plan),
      ...(limit > 0 ? { limiters: plan.steps.map(() => new StepInflightLimiter(limit)) } : {}),
    };
    this.inferStream = context.inferStream;
  }


  async enqueue(request: InferenceRequest, normalized: NormalizedRequest): Promise<readonly Tensor[]> {
    if (this.stopped) throw serverError('SERVER_STOPPING', { model: this.plan.ensemble });
    const debug = debugTensors(this.plan, request.parameters?.[DEBUG_TENSORS_PARAMETER]);
    const wanted = [...normalized.outputs, ...debug.filter((t) => !normalized.outputs.includes(t))];
    const started = performance.now();
    request.trace?.mark('QUEUE_START');
    this.inflight.enter();
    try {
      if (this.plan.decoupled) {
        await this.runDecoupled(request, wanted);
        this.stats.recordSuccess((performance.now() - started) * 1e6, 0, NO_TIME);
        return [];
      }
      const values = await new EnsembleRun(this.run, request, wanted).run();
      const ns = (performance.now() - started) * 1e6;
      this.stats.recordExecution(normalized.batchSize, NO_TIME);
      this.stats.recordSuccess(ns, 0, NO_TIME);
      // A debug tensor can be an optional input the request left out; it is simply absent. So is an output no step
      // wrote (its writers were skipped, or its member did not produce it), unless the ensemble gives it a default.
      return wanted.flatMap((name) => {
        const tensor = values.get(name);
        if (tensor) return [renamed(tensor, name, tensor.datatype !== 'BYTES' && tensor.pooled === true)];
        const fallback = this.plan.outputDefaults?.get(name);
        return fallback ? [defaultOutputTensor(name, fallback, normalized.batchSize)] : [];
      });
    } catch (err) {
      this.stats.recordFailure((performance.now() - started) * 1e6, failureReason(err));
      throw err;
    } finally {
      this.inflight.leave();
    }
  }

  /** A decoupled ensemble's request: its responses go out through request.onResponse as the runs produce them. */
  private async runDecoupled(request: InferenceRequest, wanted: readonly string[]): Promise<void> {
    const send = request.onResponse;
    if (!send || !this.inferStream) throw serverError('DECOUPLED_UNARY', { model: this.plan.ensemble });
    const parameters = this.responseParameters(request);
    await new EnsembleStreamRun(this.run, this.inferStream, request, wanted, (outputs) => send({ outputs, parameters, final: false })).run();
  }

  /**
   * As in Triton, every response of an ensemble carries the sequence flags
   * its steps ran with, which are the request's: sequence_id (0 without
   * one), sequence_start and sequence_end.
   */
  responseParameters(request: InferenceRequest): Readonly<Record<string, ParameterValue>> {
    const sequence = readSequenceParameters(request.parameters);
    return { sequence_id: sequence.id?.value ?? 0, sequence_start: sequence.start, sequence_end: sequence.end };
  }

  inflightCount(): number {
    return this.inflight.count;
  }

  idle(): Promise<void> {
    return this.inflight.idle();
  }

  /** Takes no new requests and waits for the running ones, whose steps finish or fail on their own. */
  async stop(): Promise<void> {
    this.stopped = true;
    await this.inflight.idle();
  }
}

/** Member errors that say a step could not be scheduled at all, rather than that it ran and failed. */
const NOT_SCHEDULED = new Set(['SERVER_STOPPING', 'SERVER_EXITING', 'MODEL_NOT_FOUND', 'MODEL_VERSION_UNAVAILABLE', 'MODEL_NO_VERSIONS']);

/**
 * Why an ensemble request failed, from the error of the step that failed:
 * a member's queue refused it, it was cancelled, the member was gone, or
 * otherwise the step ran and failed, which for an ensemble is its backend.
 */
function failureReason(err: unknown): FailureReason {
  const code = (err as { code?: unknown } | null)?.code;
  if (code === 'CANCELLED') return 'CANCELED';
  if (code === 'QUEUE_FULL' || code === 'QUEUE_TIMEOUT') return 'REJECTED';
  if (typeof code === 'string' && NOT_SCHEDULED.has(code)) return 'OTHER';
  return 'BACKEND';
}

/** The tensors `switchyard_debug_tensors` asks for; a name the ensemble does not have is a 400 naming it. */
export function debugTensors(plan: EnsemblePlan, value: ParameterValue | undefined): readonly string[] {
  if (value === undefined || value === false || value === '' || value === 'false') return [];
  if (value === true || value === 'true') return plan.written;
  if (typeof value !== 'string') {
    throw serverError('BAD_REQUEST', {
      detail: `parameter '${DEBUG_TENSORS_PARAMETER}' of ensemble '${plan.ensemble}' is ${String(value)}: use true, or a comma-separated list of tensor names`,
    });
  }
  const names = value.split(',').map((n) => n.trim()).filter((n) => n !== '');
  const known = new Set([...plan.inputs, ...plan.written]);
  for (const name of names) {
    if (!known.has(name)) {
      throw serverError('BAD_REQUEST', {
        detail: `parameter '${DEBUG_TENSORS_PARAMETER}' names tensor '${name}', which ensemble '${plan.ensemble}' does not have; ` +
          `its tensors are ${[...known].map((n) => `'${n}'`).join(', ')}`,
      });
    }
  }
  return [...new Set(names)];
}
