/**
 * Where an ensemble's parts are written in its file, so that a problem
 * found when the graph is built points at the line the user wrote: Triton's
 * `ensemble_scheduling.step[1].input_map` in a config.pbtxt, or
 * `steps.classify.inputs.FEATURES` in a pipeline.yaml.
 */
import type { ConfigSourceMap } from '../config/config-source-map.ts';

export interface FieldAt {
  /** The field as the message shows it. */
  readonly field: string;
  readonly line: number | undefined;
}

export interface EnsembleLayout {
  /** 'triton' for ensemble_scheduling in a config file, 'pipeline' for pipeline.yaml. */
  readonly kind: 'triton' | 'pipeline';
  /** How messages name step i: `step 'classify' (model 'm')` in a pipeline, `step 2 ('m')` in a Triton ensemble. */
  stepLabel(step: number, modelName: string): string;
  step(step: number): FieldAt;
  stepInput(step: number, memberInput: string): FieldAt;
  stepOutput(step: number, memberOutput: string): FieldAt;
  /** The ensemble's own input or output declaration for the tensor. */
  ensembleInput(name: string): FieldAt;
  ensembleOutput(name: string): FieldAt;
  /** A Switchyard extension (ensemble-extensions.ts), by its parameter key. */
  extension(key: string): FieldAt;
}

type Obj = Record<string, unknown>;

/** The layout of Triton's ensemble_scheduling, read from the parsed config and its source map. */
export function tritonLayout(config: Obj, sourceMap: ConfigSourceMap): EnsembleLayout {
  const steps = ((config['ensemble_scheduling'] as Obj | undefined)?.['step'] as Obj[] | undefined) ?? [];
  const at = (field: string, linePath = field): FieldAt => ({ field, line: sourceMap.lineOf(linePath) });
  const mapEntry = (step: number, map: 'input_map' | 'output_map', key: string): FieldAt => {
    const base = `ensemble_scheduling.step[${step}].${map}`;
    const index = Object.keys((steps[step]?.[map] as Obj | undefined) ?? {}).indexOf(key);
    return at(`${base}["${key}"]`, index < 0 ? base : `${base}[${index}]`);
  };
  const declared = (kind: 'input' | 'output', name: string): FieldAt => {
    const index = ((config[kind] as Obj[] | undefined) ?? []).findIndex((t) => t['name'] === name);
    return index < 0 ? at(kind) : at(`${kind}[${index}]`);
  };
  return {
    kind: 'triton',
    stepLabel: (step, modelName) => `step ${step + 1} ('${modelName}')`,
    step: (step) => at(`ensemble_scheduling.step[${step}]`),
    stepInput: (step, memberInput) => mapEntry(step, 'input_map', memberInput),
    stepOutput: (step, memberOutput) => mapEntry(step, 'output_map', memberOutput),
    ensembleInput: (name) => declared('input', name),
    ensembleOutput: (name) => declared('output', name),
    extension: (key) => {
      const written = sourceMap.scalars().find(([path, value]) => /^parameters\[\d+\]\.key$/.test(path) && value === key);
      return { field: `parameters["${key}"]`, line: written ? written[2] : sourceMap.lineOf(`parameters.${key}`) };
    },
  };
}
