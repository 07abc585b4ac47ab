/** The one place where a model's config picks its scheduler. */
import { EnsembleScheduler } from '../ensemble/ensemble-scheduler.ts';
import { DynamicBatcher } from './dynamic-batcher.ts';
import { SequenceBatcher } from '../sequence/sequence-batcher.ts';
import type { Scheduler, SchedulerContext } from './scheduler.ts';

export function createScheduler(context: SchedulerContext): Scheduler {
  const scheduling = context.config.scheduling;
  switch (scheduling.kind) {
    case 'dynamic':
      // Models without dynamic_batching take the same path with batching off.
      return new DynamicBatcher(context, scheduling.batching);
    case 'sequence':
      return new SequenceBatcher(context, scheduling.batching);
    case 'ensemble':
      if (!context.infer) throw new Error(`ensemble '${context.config.name}' needs the server's infer entry to call its steps`);
      if (scheduling.plan.decoupled && !context.inferStream) {
        throw new Error(`decoupled ensemble '${context.config.name}' needs the server's inferStream entry to call its steps`);
      }
      return new EnsembleScheduler(context, scheduling.plan, context.infer);
  }
}
