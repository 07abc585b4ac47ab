/** The one place where a model's config picks its scheduler. */
import type { BackendInstance } from '../../backends/backend.ts';
import type { CompiledModelConfig } from '../config/compiled-model-config.ts';
import type { Logger } from '../logger.ts';
import { DynamicBatcher } from './dynamic-batcher.ts';
import type { Scheduler } from './scheduler.ts';

export function createScheduler(config: CompiledModelConfig, instances: readonly BackendInstance[], logger: Logger): Scheduler {
  const scheduling = config.scheduling;
  switch (scheduling.kind) {
    case 'dynamic':
      return new DynamicBatcher(config, instances, scheduling.batching, logger);
    case 'sequence':
      throw new Error('sequence_batching is not available in this Switchyard build yet; remove it to serve the model statelessly');
    case 'ensemble':
      throw new Error('ensemble_scheduling is not available in this Switchyard build yet');
  }
}
