/**
 * The declarative pipeline form of an ensemble: `<model>/pipeline.yaml`.
 *
 *   max_batch_size: 8
 *   inputs:
 *     FEATURES: { datatype: FP32, dims: [32] }   # the spec may be left out
 *   outputs:
 *     CLASS: classify.CLASS                       # or { from: classify.CLASS, datatype, dims }
 *   steps:
 *     normalize:
 *       model: feature_normalizer
 *       inputs: { RAW: FEATURES }                 # member input: pipeline input or step.OUTPUT
 *     classify:
 *       model: feature_classifier
 *       version: 1                                # optional; the latest ready version otherwise
 *       inputs: { FEATURES: normalize.NORMALIZED }
 *
 * It compiles to exactly the ModelConfig a Triton ensemble would be written
 * as (platform "ensemble", ensemble_scheduling.step with input_map and
 * output_map), so everything after parsing is shared with config.pbtxt
 * ensembles. A step output that a pipeline output names is that output's
 * tensor; any other step output is the tensor `step.OUTPUT`.
 */
import { LineCounter, parseDocument } from 'yaml';
import { fromConfigDataType, isDataType, toConfigDataType, type DataType } from '../tensor.ts';
import type { EnsembleLayout, FieldAt } from '../ensemble/ensemble-layout.ts';
import { ModelConfigError } from './config-error.ts';
import { mapYamlDocument, type ConfigSourceMap } from './config-source-map.ts';
import { didYouMean } from './did-you-mean.ts';
import { modelConfigType, toPlainObject } from './model-config-schema.ts';
import type { ParsedModelConfig } from './parse-model-config.ts';

export const PIPELINE_FILE_NAME = 'pipeline.yaml';

const TOP_LEVEL = ['description', 'max_batch_size', 'inputs', 'outputs', 'steps', 'parameters'] as const;
const STEP_KEYS = ['model', 'version', 'inputs', 'outputs', 'description'] as const;
const TENSOR_KEYS = ['datatype', 'dims', 'optional'] as const;
const OUTPUT_KEYS = ['from', 'datatype', 'dims'] as const;
const STEP_NAME = /^[A-Za-z_][A-Za-z0-9_-]*$/;

type Obj = Record<string, unknown>;
const isObj = (v: unknown): v is Obj => typeof v === 'object' && v !== null && !Array.isArray(v);

interface Reference {
  /** The step written before the dot, or undefined for a pipeline input. */
  readonly step: string | undefined;
  readonly name: string;
  /** Where the reference is written. */
  readonly path: string;
}

export function parsePipelineFile(file: string, text: string): ParsedModelConfig {
  const lines = new LineCounter();
  const doc = parseDocument(text, { lineCounter: lines, uniqueKeys: true, prettyErrors: false });
  const syntax = doc.errors[0];
  if (syntax) {
    throw new ModelConfigError({
      file, line: syntax.linePos?.[0].line ?? lines.linePos(syntax.pos[0]).line, field: 'pipeline',
      problem: `is not valid YAML (${syntax.message.split('\n')[0]})`, fix: 'correct the syntax at that line',
    });
  }
  const sourceMap = mapYamlDocument(doc, lines);
  return new PipelineCompiler(file, sourceMap).compile(doc.toJS() ?? {});
}

class PipelineCompiler {
  constructor(private readonly file: string, private readonly sourceMap: ConfigSourceMap) {}

  private fail(path: string, problem: string, fix: string): never {
    throw new ModelConfigError({ file: this.file, line: this.sourceMap.lineOf(path), field: path || 'pipeline', problem, fix });
  }

  private checkKeys(value: Obj, path: string, known: readonly string[], what: string): void {
    for (const key of Object.keys(value)) {
      if (known.includes(key)) continue;
      const guess = didYouMean(key, known);
      this.fail(path ? `${path}.${key}` : key, `is not a field of ${what}`, guess ? `did you mean '${guess}'?` : `use ${known.join(', ')}`);
    }
  }

  compile(tree: unknown): ParsedModelConfig {
    if (!isObj(tree)) this.fail('', 'must be a mapping with inputs, outputs and steps', 'see docs/ensembles.md for the pipeline format');
    this.checkKeys(tree, '', TOP_LEVEL, 'a pipeline');
    const maxBatchSize = tree['max_batch_size'] ?? 0;
    if (typeof maxBatchSize !== 'number' || !Number.isInteger(maxBatchSize) || maxBatchSize < 0) {
      this.fail('max_batch_size', `is ${JSON.stringify(maxBatchSize)}`, 'use 0 for a pipeline without a batch dimension, or the largest batch it takes');
    }
    const inputs = this.readInputs(tree['inputs']);
    const steps = this.readSteps(tree['steps']);
    const outputs = this.readOutputs(tree['outputs']);

    const stepNames = [...steps.keys()];
    const check = (ref: Reference): void => {
      if (ref.step === undefined) {
        if (!inputs.some((i) => i.name === ref.name)) {
          const guess = didYouMean(ref.name, [...inputs.map((i) => i.name), ...stepNames]);
          this.fail(ref.path, `'${ref.name}' is not a pipeline input, and has no 'step.' in front to name a step output`,
            guess ? `did you mean '${guess}'? Declare pipeline inputs under inputs:` : 'declare it under inputs:, or write step.OUTPUT');
        }
      } else if (!steps.has(ref.step)) {
        const guess = didYouMean(ref.step, stepNames);
        this.fail(ref.path, `names step '${ref.step}', which the pipeline does not have`,
          guess ? `did you mean '${guess}'?` : `use one of the steps: ${stepNames.join(', ')}`);
      }
    };
    for (const step of steps.values()) for (const ref of step.inputs.values()) check(ref);
    for (const output of outputs) check(output.from);

    // A step output that a pipeline output names is that output's tensor.
    const outputTensor = new Map<string, string>();
    for (const output of outputs) {
      if (output.from.step === undefined) {
        this.fail(output.from.path, `takes pipeline input '${output.from.name}' straight through; an output must come from a step`,
          'write step.OUTPUT');
      }
      const key = `${output.from.step}.${output.from.name}`;
      const taken = outputTensor.get(key);
      if (taken) {
        this.fail(output.from.path, `takes ${key}, which output '${taken}' already takes; a step output is one tensor with one name`,
          `take ${key} once, or add a step that copies it`);
      }
      outputTensor.set(key, output.name);
    }
    const tensorOf = (ref: Reference): string => ref.step === undefined ? ref.name
      : outputTensor.get(`${ref.step}.${ref.name}`) ?? `${ref.step}.${ref.name}`;

    // Each step output mapped once, at the first place it is referenced (for error lines).
    const outputRefs = new Map<string, Map<string, string>>(stepNames.map((s) => [s, new Map()]));
    const noteOutput = (ref: Reference): void => {
      if (ref.step !== undefined && !outputRefs.get(ref.step)!.has(ref.name)) outputRefs.get(ref.step)!.set(ref.name, ref.path);
    };
    for (const step of steps.values()) for (const ref of step.inputs.values()) noteOutput(ref);
    for (const output of outputs) noteOutput(output.from);
    for (const [name, step] of steps) {
      step.exposed.forEach((output, i) => noteOutput({ step: name, name: output, path: `steps.${name}.outputs[${i}]` }));
    }

    const config: Obj = {
      platform: 'ensemble',
      max_batch_size: maxBatchSize,
      input: inputs.map((i) => tensorConfig(i.name, i.datatype, i.dims, i.optional)),
      output: outputs.map((o) => tensorConfig(o.name, o.datatype, o.dims, false)),
      ensemble_scheduling: {
        step: [...steps].map(([name, step]) => ({
          model_name: step.model,
          model_version: step.version,
          input_map: Object.fromEntries([...step.inputs].map(([memberInput, ref]) => [memberInput, tensorOf(ref)])),
          output_map: Object.fromEntries([...outputRefs.get(name)!.keys()].map((o) => [o, tensorOf({ step: name, name: o, path: '' })])),
        })),
      },
    };
    if (tree['parameters'] !== undefined) config['parameters'] = this.readParameters(tree['parameters']);

    const at = (path: string): FieldAt => ({ field: path, line: this.sourceMap.lineOf(path) });
    const layout: EnsembleLayout = {
      kind: 'pipeline',
      stepLabel: (i, modelName) => `step '${stepNames[i]}' (model '${modelName}')`,
      step: (i) => at(`steps.${stepNames[i]}`),
      stepInput: (i, memberInput) => at(`steps.${stepNames[i]}.inputs.${memberInput}`),
      stepOutput: (i, memberOutput) => at(outputRefs.get(stepNames[i]!)?.get(memberOutput) ?? `steps.${stepNames[i]}`),
      ensembleInput: (name) => at(`inputs.${name}`),
      ensembleOutput: (name) => at(`outputs.${name}`),
    };
    const message = modelConfigType().fromObject(config);
    return { file: this.file, config: toPlainObject(message), sourceMap: this.sourceMap, ensembleLayout: layout };
  }

  private readInputs(value: unknown): Array<{ name: string; datatype?: DataType; dims?: number[]; optional: boolean }> {
    if (value === undefined || value === null) {
      this.fail('inputs', 'is missing', 'list the pipeline inputs, e.g. inputs: { FEATURES: { datatype: FP32, dims: [32] } }');
    }
    if (Array.isArray(value)) {
      return value.map((name, i) => {
        if (typeof name !== 'string' || name === '') this.fail(`inputs[${i}]`, 'is not a tensor name', 'write the input name');
        return { name, optional: false };
      });
    }
    if (!isObj(value)) this.fail('inputs', 'must be a mapping of input names to specs, or a list of names', 'e.g. inputs: { FEATURES: { datatype: FP32, dims: [32] } }');
    return Object.entries(value).map(([name, spec]) => {
      const path = `inputs.${name}`;
      if (spec === null || spec === undefined) return { name, optional: false };
      if (!isObj(spec)) this.fail(path, 'must be a mapping with datatype and dims (or empty)', 'e.g. { datatype: FP32, dims: [32] }');
      this.checkKeys(spec, path, TENSOR_KEYS, 'a pipeline input');
      return { name, ...this.readSpec(path, spec), optional: spec['optional'] === true };
    });
  }

  private readOutputs(value: unknown): Array<{ name: string; from: Reference; datatype?: DataType; dims?: number[] }> {
    if (!isObj(value) || Object.keys(value).length === 0) {
      this.fail('outputs', value === undefined ? 'is missing' : 'must be a non-empty mapping of output names to step outputs',
        'e.g. outputs: { CLASS: classify.CLASS }');
    }
    return Object.entries(value).map(([name, spec]) => {
      const path = `outputs.${name}`;
      if (typeof spec === 'string') return { name, from: this.reference(spec, path) };
      if (!isObj(spec)) this.fail(path, 'must name a step output', 'e.g. CLASS: classify.CLASS, or { from: classify.CLASS, datatype: INT64, dims: [1] }');
      this.checkKeys(spec, path, OUTPUT_KEYS, 'a pipeline output');
      if (typeof spec['from'] !== 'string') this.fail(`${path}.from`, 'is missing', 'name the step output, e.g. from: classify.CLASS');
      return { name, from: this.reference(spec['from'], `${path}.from`), ...this.readSpec(path, spec) };
    });
  }

  private readSteps(value: unknown): Map<string, { model: string; version: number; inputs: Map<string, Reference>; exposed: string[] }> {
    if (!isObj(value) || Object.keys(value).length === 0) {
      this.fail('steps', value === undefined ? 'is missing' : 'must be a non-empty mapping of step names to steps',
        'e.g. steps: { classify: { model: feature_classifier, inputs: { FEATURES: FEATURES } } }');
    }
    const steps = new Map<string, { model: string; version: number; inputs: Map<string, Reference>; exposed: string[] }>();
    for (const [name, step] of Object.entries(value)) {
      const path = `steps.${name}`;
      if (!STEP_NAME.test(name)) {
        this.fail(path, `'${name}' is not a usable step name`, 'use letters, digits, _ and -, starting with a letter; no dots (step.OUTPUT uses them)');
      }
      if (!isObj(step)) this.fail(path, 'must be a mapping with model and inputs', `e.g. ${name}: { model: my_model, inputs: { INPUT: INPUT } }`);
      this.checkKeys(step, path, STEP_KEYS, 'a step');
      if (typeof step['model'] !== 'string' || step['model'] === '') this.fail(`${path}.model`, 'is missing', 'name the model this step runs');
      const version = step['version'] ?? -1;
      if (typeof version !== 'number' || !Number.isInteger(version) || version < -1 || version === 0) {
        this.fail(`${path}.version`, `is ${JSON.stringify(version)}`, 'use a version number, or leave it out for the latest ready version');
      }
      const inputs = step['inputs'];
      if (!isObj(inputs) || Object.keys(inputs).length === 0) {
        this.fail(`${path}.inputs`, inputs === undefined ? 'is missing' : 'must map the model\'s inputs to tensors',
          'e.g. inputs: { INPUT: FEATURES } or { INPUT: other_step.OUTPUT }');
      }
      const refs = new Map(Object.entries(inputs).map(([memberInput, ref]) => {
        const refPath = `${path}.inputs.${memberInput}`;
        if (typeof ref !== 'string') this.fail(refPath, 'must name a tensor', 'write a pipeline input name or step.OUTPUT');
        return [memberInput, this.reference(ref, refPath)] as const;
      }));
      const exposed = step['outputs'] ?? [];
      if (!Array.isArray(exposed) || exposed.some((o) => typeof o !== 'string')) {
        this.fail(`${path}.outputs`, 'must be a list of the model\'s output names', 'e.g. outputs: [LOGITS]');
      }
      steps.set(name, { model: step['model'], version, inputs: refs, exposed: exposed as string[] });
    }
    return steps;
  }

  private reference(text: string, path: string): Reference {
    const dot = text.indexOf('.');
    if (dot < 0) return { step: undefined, name: text, path };
    const step = text.slice(0, dot);
    const name = text.slice(dot + 1);
    if (step === '' || name === '') this.fail(path, `'${text}' is not a tensor reference`, 'write a pipeline input name or step.OUTPUT');
    return { step, name, path };
  }

  private readSpec(path: string, spec: Obj): { datatype?: DataType; dims?: number[] } {
    const out: { datatype?: DataType; dims?: number[] } = {};
    if (spec['datatype'] !== undefined) {
      const written = String(spec['datatype']);
      const datatype = written.startsWith('TYPE_') ? fromConfigDataType(written) : written;
      if (!isDataType(datatype)) {
        this.fail(`${path}.datatype`, `'${written}' is not a datatype`, 'use a KServe datatype such as FP32, INT64 or BYTES');
      }
      out.datatype = datatype;
    }
    if (spec['dims'] !== undefined) {
      const dims = spec['dims'];
      if (!Array.isArray(dims) || dims.some((d) => typeof d !== 'number' || !Number.isInteger(d) || (d < 1 && d !== -1))) {
        this.fail(`${path}.dims`, `is ${JSON.stringify(dims)}`, 'use a list of sizes, -1 for a variable size, without the batch dimension');
      }
      out.dims = dims as number[];
    }
    return out;
  }

  private readParameters(value: unknown): Obj {
    if (!isObj(value)) this.fail('parameters', 'must be a mapping of names to values', 'e.g. parameters: { owner: search-team }');
    return Object.fromEntries(Object.entries(value).map(([k, v]) => [k, { string_value: String(v) }]));
  }
}

function tensorConfig(name: string, datatype: DataType | undefined, dims: number[] | undefined, optional: boolean): Obj {
  return {
    name,
    ...(datatype ? { data_type: toConfigDataType(datatype) } : {}),
    ...(dims ? { dims } : {}),
    ...(optional ? { optional } : {}),
  };
}
