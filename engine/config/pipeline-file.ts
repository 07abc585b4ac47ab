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
 *       when: parameters.mode != "cheap"          # optional: run only when this holds
 *   switches:                                     # optional: route by a parameter or a scalar tensor
 *     route: { on: parameters.route, cases: [ { value: fast, steps: [small] } ], default: [classify] }
 *
 * A list of step outputs ([small.CLASS, classify.CLASS]) is a join: one
 * tensor that whichever of those steps ran wrote. Outputs take a `default`
 * for when no step wrote them. Conditions, switches and defaults compile to
 * Switchyard's ensemble parameters (ensemble-extensions.ts).
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
import { EXTENSION_PREFIX } from '../ensemble/ensemble-extensions.ts';
import {
  describeLiteral, formatLiteral, parseConditionExpression, PARAMETER_PREFIX, type ConditionExpression, type ConditionLiteral,
} from '../ensemble/step-condition.ts';

export const PIPELINE_FILE_NAME = 'pipeline.yaml';

const TOP_LEVEL = ['description', 'max_batch_size', 'inputs', 'outputs', 'steps', 'switches', 'parameters'] as const;
const STEP_KEYS = ['model', 'version', 'inputs', 'outputs', 'description', 'when'] as const;
const TENSOR_KEYS = ['datatype', 'dims', 'optional'] as const;
const OUTPUT_KEYS = ['from', 'datatype', 'dims', 'default'] as const;
const SWITCH_KEYS = ['on', 'cases', 'default'] as const;
const CASE_KEYS = ['value', 'steps'] as const;
const STEP_NAME = /^[A-Za-z_][A-Za-z0-9_-]*$/;

type Obj = Record<string, unknown>;
const isObj = (v: unknown): v is Obj => typeof v === 'object' && v !== null && !Array.isArray(v);

interface PipelineStep {
  readonly model: string;
  readonly version: number;
  /** Member input -> what feeds it: one reference, or several joined. */
  readonly inputs: Map<string, Reference[]>;
  readonly exposed: string[];
  readonly when?: string;
}

interface PipelineSwitch {
  readonly on: string;
  readonly cases: ReadonlyArray<{ readonly value: ConditionLiteral; readonly steps: readonly string[]; readonly path: string }>;
  readonly defaultSteps?: readonly string[];
}

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
    for (const step of steps.values()) for (const refs of step.inputs.values()) refs.forEach(check);
    for (const output of outputs) output.from.forEach(check);

    // Which tensor each step output is: a pipeline output's name when an output takes it, else `step.OUTPUT`.
    // A join ([a.Y, b.Y]) makes several step outputs one tensor, of which at most one step writes per request.
    const groups = new Map<string, { tensor: string; members: string; output: string | undefined; path: string }>();
    const keyOf = (ref: Reference): string => `${ref.step}.${ref.name}`;
    const tensorOf = (refs: readonly Reference[], output?: string): string => {
      if (refs.length === 1 && refs[0]!.step === undefined) return refs[0]!.name;
      const members = refs.map(keyOf).sort().join(', ');
      const path = refs[0]!.path;
      if (refs.length > 1) {
        const input = refs.find((r) => r.step === undefined);
        if (input) this.fail(input.path, `joins pipeline input '${input.name}'; a join takes outputs of different steps`, 'write [step_a.OUTPUT, step_b.OUTPUT]');
        const sameStep = refs.find((r, i) => refs.findIndex((o) => o.step === r.step) !== i);
        if (sameStep) this.fail(path, `joins two outputs of step '${sameStep.step}'; a join takes outputs of different steps, of which one runs`, 'join outputs of steps in different branches');
      }
      let found: { tensor: string; members: string; output: string | undefined; path: string } | undefined;
      for (const ref of refs) {
        const group = groups.get(keyOf(ref));
        if (!group) continue;
        if (group.members !== members) {
          this.fail(path, `reads ${keyOf(ref)} ${refs.length > 1 ? `in the join [${members}]` : 'alone'}, but ${group.path} reads it ${group.members.includes(',') ? `in the join [${group.members}]` : 'alone'}`,
            'read a step output the same way everywhere: alone, or in one join');
        }
        found = group;
      }
      if (found && output !== undefined) {
        if (found.output !== undefined) {
          this.fail(path, `takes ${members}, which output '${found.output}' already takes; a step output is one tensor with one name`,
            `take ${members} once, or add a step that copies it`);
        }
      }
      if (found) return found.tensor;
      const group = { tensor: output ?? keyOf(refs[0]!), members, output, path };
      for (const ref of refs) groups.set(keyOf(ref), group);
      return group.tensor;
    };
    const outputTensors = outputs.map((output) => {
      if (output.from.length === 1 && output.from[0]!.step === undefined) {
        this.fail(output.from[0]!.path, `takes pipeline input '${output.from[0]!.name}' straight through; an output must come from a step`,
          'write step.OUTPUT');
      }
      return tensorOf(output.from, output.name);
    });
    const inputMaps = [...steps.values()].map((step) => Object.fromEntries([...step.inputs].map(([memberInput, refs]) => [memberInput, tensorOf(refs)])));

    // Conditions (when, switches) and output defaults become Switchyard's ensemble parameters, at their YAML lines.
    const extensions = new Map<string, { value: string; path: string }>();
    const when = [...steps.entries()].flatMap(([name, step], i) => (step.when === undefined ? [] : [{ name, i, text: step.when }]));
    for (const { name, i, text } of when) {
      const path = `steps.${name}.when`;
      let expression: ConditionExpression;
      try {
        expression = parseConditionExpression(text);
      } catch (err) {
        this.fail(path, `condition ${(err as Error).message}`, 'write e.g. parameters.route == "fast", a BOOL tensor alone, or step.SCORE > 0.5');
      }
      const operand = this.conditionOperand(expression.operand, path, check, tensorOf);
      extensions.set(`switchyard.step.${i}.when`, {
        value: expression.op ? `${operand} ${expression.op} ${formatLiteral(expression.value!)}` : operand, path,
      });
    }
    for (const [name, sw] of this.readSwitches(tree['switches'], stepNames)) {
      const on = this.conditionOperand(sw.on, `switches.${name}.on`, check, tensorOf);
      extensions.set(`switchyard.switch.${name}.on`, { value: on, path: `switches.${name}.on` });
      for (const c of sw.cases) {
        extensions.set(`switchyard.switch.${name}.case.${formatLiteral(c.value, true)}`, { value: c.steps.map((st) => stepNames.indexOf(st)).join(', '), path: c.path });
      }
      if (sw.defaultSteps) {
        extensions.set(`switchyard.switch.${name}.default`, { value: sw.defaultSteps.map((st) => stepNames.indexOf(st)).join(', '), path: `switches.${name}.default` });
      }
    }
    for (const output of outputs) {
      if (output.default !== undefined) {
        extensions.set(`switchyard.output.${output.name}.default`, { value: formatLiteral(output.default), path: `outputs.${output.name}.default` });
      }
    }

    // Each step output mapped once, at the first place it is referenced (for error lines).
    const outputRefs = new Map<string, Map<string, string>>(stepNames.map((s) => [s, new Map()]));
    for (const group of groups.values()) {
      for (const key of group.members.split(', ')) {
        const dot = key.indexOf('.');
        const map = outputRefs.get(key.slice(0, dot))!;
        if (!map.has(key.slice(dot + 1))) map.set(key.slice(dot + 1), group.path);
      }
    }
    for (const [name, step] of steps) {
      step.exposed.forEach((output, i) => {
        const ref = { step: name, name: output, path: `steps.${name}.outputs[${i}]` };
        if (!groups.has(keyOf(ref))) tensorOf([ref]);
        if (!outputRefs.get(name)!.has(output)) outputRefs.get(name)!.set(output, ref.path);
      });
    }

    const config: Obj = {
      platform: 'ensemble',
      max_batch_size: maxBatchSize,
      input: inputs.map((i) => tensorConfig(i.name, i.datatype, i.dims, i.optional)),
      output: outputs.map((o, i) => tensorConfig(outputTensors[i]!, o.datatype, o.dims, false)),
      ensemble_scheduling: {
        step: [...steps].map(([name, step], i) => ({
          model_name: step.model,
          model_version: step.version,
          input_map: inputMaps[i],
          output_map: Object.fromEntries([...outputRefs.get(name)!.keys()].map((o) => [o, groups.get(`${name}.${o}`)!.tensor])),
        })),
      },
    };
    const parameters = tree['parameters'] === undefined ? {} : this.readParameters(tree['parameters']);
    for (const [key, { value }] of extensions) parameters[key] = { string_value: value };
    if (Object.keys(parameters).length > 0) config['parameters'] = parameters;

    const at = (path: string): FieldAt => ({ field: path, line: this.sourceMap.lineOf(path) });
    const layout: EnsembleLayout = {
      kind: 'pipeline',
      stepLabel: (i, modelName) => `step '${stepNames[i]}' (model '${modelName}')`,
      step: (i) => at(`steps.${stepNames[i]}`),
      stepInput: (i, memberInput) => at(`steps.${stepNames[i]}.inputs.${memberInput}`),
      stepOutput: (i, memberOutput) => at(outputRefs.get(stepNames[i]!)?.get(memberOutput) ?? `steps.${stepNames[i]}`),
      ensembleInput: (name) => at(`inputs.${name}`),
      ensembleOutput: (name) => at(`outputs.${name}`),
      extension: (key) => at(extensions.get(key)?.path ?? 'parameters'),
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

  private readOutputs(value: unknown): Array<{ name: string; from: Reference[]; datatype?: DataType; dims?: number[]; default?: ConditionLiteral }> {
    if (!isObj(value) || Object.keys(value).length === 0) {
      this.fail('outputs', value === undefined ? 'is missing' : 'must be a non-empty mapping of output names to step outputs',
        'e.g. outputs: { CLASS: classify.CLASS }');
    }
    return Object.entries(value).map(([name, spec]) => {
      const path = `outputs.${name}`;
      if (typeof spec === 'string' || Array.isArray(spec)) return { name, from: this.references(spec, path) };
      if (!isObj(spec)) this.fail(path, 'must name a step output', 'e.g. CLASS: classify.CLASS, or { from: classify.CLASS, datatype: INT64, dims: [1] }');
      this.checkKeys(spec, path, OUTPUT_KEYS, 'a pipeline output');
      if (typeof spec['from'] !== 'string' && !Array.isArray(spec['from'])) this.fail(`${path}.from`, 'is missing', 'name the step output, e.g. from: classify.CLASS');
      const fallback = spec['default'];
      if (fallback !== undefined && typeof fallback !== 'number' && typeof fallback !== 'boolean' && typeof fallback !== 'string') {
        this.fail(`${path}.default`, `is ${JSON.stringify(fallback)}`, 'use one value (a number, true or false, or text), which fills the output\'s shape');
      }
      return {
        name, from: this.references(spec['from'], `${path}.from`), ...this.readSpec(path, spec),
        ...(fallback !== undefined ? { default: fallback } : {}),
      };
    });
  }

  private readSteps(value: unknown): Map<string, PipelineStep> {
    if (!isObj(value) || Object.keys(value).length === 0) {
      this.fail('steps', value === undefined ? 'is missing' : 'must be a non-empty mapping of step names to steps',
        'e.g. steps: { classify: { model: feature_classifier, inputs: { FEATURES: FEATURES } } }');
    }
    const steps = new Map<string, PipelineStep>();
    for (const [name, step] of Object.entries(value)) {
      const path = `steps.${name}`;
      if (!STEP_NAME.test(name)) {
        this.fail(path, `'${name}' is not a usable step name`, 'use letters, digits, _ and -, starting with a letter; no dots (step.OUTPUT uses them)');
      }
      if (`${name}.` === PARAMETER_PREFIX) this.fail(path, `'${name}' is reserved: conditions read request parameters as parameters.NAME`, 'give the step another name');
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
        return [memberInput, this.references(ref, refPath)] as const;
      }));
      const exposed = step['outputs'] ?? [];
      if (!Array.isArray(exposed) || exposed.some((o) => typeof o !== 'string')) {
        this.fail(`${path}.outputs`, 'must be a list of the model\'s output names', 'e.g. outputs: [LOGITS]');
      }
      const when = step['when'];
      if (when !== undefined && typeof when !== 'string' && typeof when !== 'boolean') {
        this.fail(`${path}.when`, `is ${JSON.stringify(when)}`, 'write a condition, e.g. when: parameters.route == "fast"');
      }
      steps.set(name, {
        model: step['model'], version, inputs: refs, exposed: exposed as string[],
        ...(when !== undefined ? { when: String(when) } : {}),
      });
    }
    return steps;
  }

  /** A tensor reference, or a join of step outputs written as a list. */
  private references(value: unknown, path: string): Reference[] {
    if (typeof value === 'string') return [this.reference(value, path)];
    if (Array.isArray(value) && value.length >= 2 && value.every((v) => typeof v === 'string')) {
      return value.map((v, i) => this.reference(v as string, `${path}[${i}]`));
    }
    this.fail(path, Array.isArray(value) ? 'must list two or more step outputs to join' : 'must name a tensor',
      'write a pipeline input name or step.OUTPUT, or a join [step_a.OUTPUT, step_b.OUTPUT]');
  }

  /** A condition's operand as the ensemble sees it: parameters.NAME as written, a reference as its tensor. */
  private conditionOperand(text: string, path: string, check: (ref: Reference) => void, tensorOf: (refs: readonly Reference[]) => string): string {
    if (text.startsWith(PARAMETER_PREFIX)) {
      if (text === PARAMETER_PREFIX) this.fail(path, `'${text}' names no parameter`, 'write parameters.NAME');
      return text;
    }
    const ref = this.reference(text, path);
    check(ref);
    return tensorOf([ref]);
  }

  private readSwitches(value: unknown, stepNames: readonly string[]): Map<string, PipelineSwitch> {
    const out = new Map<string, PipelineSwitch>();
    if (value === undefined) return out;
    if (!isObj(value)) this.fail('switches', 'must map switch names to switches', 'e.g. switches: { route: { on: parameters.route, cases: [...] } }');
    const stepList = (list: unknown, path: string): string[] => {
      if (!Array.isArray(list) || list.some((s) => typeof s !== 'string')) this.fail(path, 'must be a list of step names', 'e.g. steps: [classify]');
      return (list as string[]).map((name, i) => {
        if (!stepNames.includes(name)) {
          const guess = didYouMean(name, stepNames);
          this.fail(`${path}[${i}]`, `names step '${name}', which the pipeline does not have`, guess ? `did you mean '${guess}'?` : `use one of the steps: ${stepNames.join(', ')}`);
        }
        if ((list as string[]).indexOf(name) !== i) this.fail(`${path}[${i}]`, `lists step '${name}' twice`, 'list each step once');
        return name;
      });
    };
    for (const [name, sw] of Object.entries(value)) {
      const path = `switches.${name}`;
      if (!STEP_NAME.test(name)) this.fail(path, `'${name}' is not a usable switch name`, 'use letters, digits, _ and -, starting with a letter');
      if (!isObj(sw)) this.fail(path, 'must be a mapping with on, cases and default', 'e.g. { on: parameters.route, cases: [ { value: fast, steps: [small] } ], default: [full] }');
      this.checkKeys(sw, path, SWITCH_KEYS, 'a switch');
      if (typeof sw['on'] !== 'string' || sw['on'].trim() === '') this.fail(`${path}.on`, 'is missing', 'say what to route by: parameters.NAME, a pipeline input, or step.OUTPUT');
      if (!Array.isArray(sw['cases']) || sw['cases'].length === 0) this.fail(`${path}.cases`, 'must be a non-empty list of cases', 'e.g. cases: [ { value: fast, steps: [small] } ]');
      const cases = (sw['cases'] as unknown[]).map((c, i) => {
        const casePath = `${path}.cases[${i}]`;
        if (!isObj(c)) this.fail(casePath, 'must be a mapping with value and steps', 'e.g. { value: fast, steps: [small] }');
        this.checkKeys(c, casePath, CASE_KEYS, 'a switch case');
        const v = c['value'];
        if (typeof v !== 'number' && typeof v !== 'boolean' && typeof v !== 'string') {
          this.fail(`${casePath}.value`, v === undefined ? 'is missing' : `is ${JSON.stringify(v)}`, 'use a number, true or false, or text');
        }
        return { value: v as ConditionLiteral, steps: stepList(c['steps'], `${casePath}.steps`), path: casePath };
      });
      cases.forEach((c, i) => {
        const first = cases.findIndex((o) => o.value === c.value);
        if (first !== i) {
          this.fail(`${c.path}.value`, `repeats case ${describeLiteral(c.value)} of switch '${name}' (cases[${first}])`, 'merge the two cases, listing their steps together');
        }
        if (typeof c.value !== typeof cases[0]!.value) {
          this.fail(`${c.path}.value`, `is ${describeLiteral(c.value)}, but cases[0] is ${describeLiteral(cases[0]!.value)}: the values of one switch have one type`,
            'give every case a value of the same type (quote text that looks like a number)');
        }
      });
      const defaultSteps = sw['default'] === undefined ? undefined : stepList(sw['default'], `${path}.default`);
      out.set(name, { on: sw['on'].trim(), cases, ...(defaultSteps ? { defaultSteps } : {}) });
    }
    return out;
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
    const reserved = Object.keys(value).find((k) => k.startsWith(EXTENSION_PREFIX));
    if (reserved) {
      this.fail(`parameters.${reserved}`, `uses the prefix '${EXTENSION_PREFIX}', which Switchyard's ensemble extensions use`,
        'write conditions as a step\'s when:, switches: and an output\'s default:, or rename the parameter');
    }
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
