/**
 * Builds an ensemble's step graph with graphlib and validates it against the
 * member models' compiled configs, at load time. Every problem is a
 * ModelConfigError at the line the user wrote, naming the ensemble, the
 * step and the tensor:
 *   - a step model that does not exist or is not ready, or a max_batch_size
 *     larger than the member's;
 *   - member inputs or outputs the model does not have, or inputs it needs
 *     that nothing feeds;
 *   - a tensor read but never written, or written twice;
 *   - an ensemble input no step reads, an output no step writes;
 *   - a cycle;
 *   - datatype or shape mismatches between the writer and the reader;
 *   - a step that reads the outputs of two decoupled steps neither of which
 *     follows the other, in Triton's words (tensors from before a decoupled
 *     step may be read after it, which Triton refuses).
 *   - Switchyard's conditional steps (ensemble-conditions.ts): conditions
 *     on tensors no step writes, of the wrong type, or that can never hold;
 *     tensors written by steps that could both run; output defaults of the
 *     wrong type.
 * An ensemble with a decoupled step is decoupled itself.
 * The ensemble's own inputs and outputs may leave out datatype and dims;
 * they are completed from the members that read or write them.
 */
import graphlib from 'graphlib';
import { ModelConfigError } from '../config/config-error.ts';
import type { CompiledModelConfig, TensorSpec } from '../config/compiled-model-config.ts';
import { didYouMean } from '../config/did-you-mean.ts';
import { formatShape, type DataType } from '../tensor.ts';
import type { EnsembleLayout, FieldAt } from './ensemble-layout.ts';
import { streamWithin, type EnsemblePlan, type PlannedStep, type StreamLayout, type TensorLink } from './ensemble-plan.ts';
import { checkConditionalGraph, checkConditionTypes, resolveConditions, type ConditionGraph, type ConditionTensor } from './ensemble-conditions.ts';
import { hasExtensions, NO_EXTENSIONS, type EnsembleExtensions } from './ensemble-extensions.ts';
import { conditionKindOf, describeLiteral, literalKind } from './step-condition.ts';
import type { OutputDefault } from './output-default.ts';

/** The compiled config of the ready member version a step calls, or why there is none. */
export type MemberLookup = (model: string, version: number) => { readonly config: CompiledModelConfig } | { readonly problem: string };

export interface DeclaredTensor {
  readonly name: string;
  readonly datatype: DataType | undefined;
  /** undefined when the config leaves the dims out. */
  readonly dims: readonly number[] | undefined;
  readonly optional: boolean;
}

export interface EnsembleStepSource {
  readonly modelName: string;
  /** -1 for the latest ready version. */
  readonly modelVersion: number;
  /** Member input -> ensemble tensor. */
  readonly inputMap: Readonly<Record<string, string>>;
  /** Member output -> ensemble tensor. */
  readonly outputMap: Readonly<Record<string, string>>;
}

export interface EnsembleSource {
  readonly name: string;
  readonly file: string;
  readonly layout: EnsembleLayout;
  readonly maxBatchSize: number;
  readonly inputs: readonly DeclaredTensor[];
  readonly outputs: readonly DeclaredTensor[];
  readonly steps: readonly EnsembleStepSource[];
  /** ensemble_scheduling.max_inflight_requests; 0 for no limit. */
  readonly maxInflightRequests: number;
  /** Switchyard's conditional steps and output defaults; none when absent. */
  readonly extensions?: EnsembleExtensions;
}

export interface BuiltEnsemble {
  readonly plan: EnsemblePlan;
  /** The ensemble's inputs and outputs, completed from the members. */
  readonly inputs: readonly TensorSpec[];
  readonly outputs: readonly TensorSpec[];
  /** Things that load but are probably mistakes (a step whose outputs nothing reads). */
  readonly warnings: readonly string[];
}

interface Member {
  readonly config: CompiledModelConfig;
}

/** A tensor as one side of a link sees it: datatype and full shape (batch dimension included as -1). */
interface Side {
  readonly datatype: DataType;
  readonly shape: readonly number[];
  readonly what: string;
}

export function buildEnsemble(source: EnsembleSource, lookup: MemberLookup): BuiltEnsemble {
  return new EnsembleGraphBuilder(source, lookup).build();
}

class EnsembleGraphBuilder {
  private readonly members: Member[] = [];
  private readonly labels: string[] = [];

  constructor(private readonly source: EnsembleSource, private readonly lookup: MemberLookup) {}

  private fail(at: FieldAt, problem: string, fix: string): never {
    throw new ModelConfigError({ file: this.source.file, line: at.line, field: at.field, problem, fix });
  }

  private get ensemble(): string {
    return `ensemble '${this.source.name}'`;
  }

  private step(i: number): string {
    return `${this.ensemble} ${this.labels[i]}`;
  }

  build(): BuiltEnsemble {
    const { source } = this;
    const layout = source.layout;
    if (source.steps.length === 0) {
      this.fail({ field: 'ensemble_scheduling.step', line: undefined }, `${this.ensemble} has no steps`, 'add at least one step that runs a model');
    }
    source.steps.forEach((step, i) => {
      this.labels.push(layout.stepLabel(i, step.modelName || '?'));
      this.members.push(this.resolveMember(step, i));
    });
    const ensembleInputs = new Map(source.inputs.map((t) => [t.name, t]));

    // Who writes each tensor. Several writers (a join) are allowed only when at most one of them runs for a request.
    const extensions = source.extensions ?? NO_EXTENSIONS;
    const conditional = hasExtensions(extensions);
    const producer = new Map<string, number>();
    const writers = new Map<string, number[]>();
    source.steps.forEach((step, i) => {
      for (const [memberOutput, tensor] of Object.entries(step.outputMap)) {
        const at = layout.stepOutput(i, memberOutput);
        if (ensembleInputs.has(tensor)) {
          this.fail(at, `${this.step(i)} writes tensor '${tensor}' (from output '${memberOutput}'), which is also an ensemble input: a tensor is written once`,
            `give the step's output another tensor name`);
        }
        const earlier = producer.get(tensor);
        if (earlier !== undefined && !conditional) {
          this.fail(at, `${this.step(i)} writes tensor '${tensor}' (from output '${memberOutput}'), which ${this.labels[earlier]} writes too: a tensor is written once`,
            'give one of the two outputs another tensor name (or, with Switchyard\'s switch, put the two steps in different cases)');
        }
        if (earlier === undefined) producer.set(tensor, i);
        const list = writers.get(tensor) ?? [];
        if (!list.includes(i)) list.push(i);
        writers.set(tensor, list);
      }
    });

    // Who reads each tensor; every read tensor must exist.
    const consumers = new Map<string, number[]>();
    const known = [...ensembleInputs.keys(), ...producer.keys()];
    source.steps.forEach((step, i) => {
      for (const [memberInput, tensor] of Object.entries(step.inputMap)) {
        if (!ensembleInputs.has(tensor) && !producer.has(tensor)) {
          const guess = didYouMean(tensor, known);
          this.fail(layout.stepInput(i, memberInput),
            `${this.step(i)} reads tensor '${tensor}' (into input '${memberInput}'), but no step writes it and it is not an ensemble input`,
            guess ? `did you mean '${guess}'?` : `write '${tensor}' with a step's output, or declare it as an ensemble input`);
        }
        const list = consumers.get(tensor) ?? [];
        if (!list.includes(i)) list.push(i);
        consumers.set(tensor, list);
      }
    });

    const graph: ConditionGraph = {
      ensemble: this.ensemble, labels: this.labels, layout, fail: (at, problem, fix) => this.fail(at, problem, fix),
      writers, inputs: new Set(ensembleInputs.keys()),
    };
    const located = conditional ? resolveConditions(graph, extensions, source.steps.length) : [];
    // A condition reads its tensor as a step input does: for load order, readiness and memory.
    located.forEach((conditions, i) => {
      for (const { condition } of conditions) {
        if (condition.operand.kind !== 'tensor') continue;
        const list = consumers.get(condition.operand.tensor) ?? [];
        if (!list.includes(i)) list.push(i);
        consumers.set(condition.operand.tensor, list);
      }
    });

    for (const output of source.outputs) {
      if (producer.has(output.name)) continue;
      const guess = didYouMean(output.name, [...producer.keys()]);
      this.fail(layout.ensembleOutput(output.name),
        `${this.ensemble} output '${output.name}' cannot be reached: no step writes a tensor of that name` +
        (ensembleInputs.has(output.name) ? ' (it is an ensemble input, and outputs must come from a step)' : ''),
        guess ? `did you mean '${guess}'? Otherwise map a step output to '${output.name}'` : `map a step output to '${output.name}'`);
    }
    for (const input of source.inputs) {
      if (!consumers.has(input.name)) {
        this.fail(layout.ensembleInput(input.name), `${this.ensemble} input '${input.name}' is not read by any step`,
          `feed it to a step's input, or remove it from the ensemble inputs`);
      }
    }
    if (source.outputs.length === 0) {
      this.fail({ field: 'output', line: undefined }, `${this.ensemble} has no outputs`, 'declare the tensors the ensemble returns');
    }

    const conditionReads = located.map((conditions) => conditions.flatMap(({ condition: c }) => (c.operand.kind === 'tensor' ? [c.operand.tensor] : [])));
    const order = this.order(writers, conditionReads);
    const streams = this.checkDecoupledFlow(order, producer);
    const decoupled = streams !== undefined;
    if (decoupled && conditional) {
      const key = [...extensions.when.values()][0]?.at ?? extensions.switches[0]?.at ?? [...extensions.defaults.values()][0]!.at;
      const step = this.members.findIndex((m) => m.config.decoupled === true);
      this.fail(key, `${this.ensemble} has conditional steps or output defaults, and ${this.labels[step]} is decoupled: conditions in a decoupled ensemble are not supported`,
        'route before the decoupled model in an ensemble of its own, or remove the condition');
    }
    const inputs = source.inputs.map((t) => this.completeInput(t, consumers.get(t.name)!));
    const outputs = source.outputs.map((t) => this.completeOutput(t, producer.get(t.name)!));
    this.checkLinks(new Map(inputs.map((t) => [t.name, t])));

    // Per step, the tensors it cannot run without: those feeding a required member input, and its condition tensors.
    const needs = source.steps.map((step, i) => new Set([
      ...Object.entries(step.inputMap).filter(([member]) => !this.members[i]!.config.inputByName.get(member)!.optional).map(([, t]) => t),
      ...(conditionReads[i] ?? []),
    ]));
    const inputSpecs = new Map(inputs.map((t) => [t.name, t]));
    const tensorOf = (name: string): ConditionTensor => {
      const input = inputSpecs.get(name);
      if (input) return { datatype: input.datatype, dims: input.dims, what: `ensemble input '${name}'` };
      const writer = producer.get(name)!;
      const member = Object.entries(source.steps[writer]!.outputMap).find(([, t]) => t === name)![0];
      const side = this.memberSide(writer, 'output', member);
      return { datatype: side.datatype, dims: this.members[writer]!.config.maxBatchSize > 0 ? side.shape.slice(1) : side.shape, what: side.what };
    };
    if (conditional) {
      checkConditionTypes(graph, located, tensorOf);
      const kind = (name: string): 'BOOL' | 'number' | undefined => conditionKindOf(tensorOf(name).datatype);
      checkConditionalGraph(graph, located, order, needs.map((n) => [...n]), kind);
    }
    const outputDefaults = this.outputDefaults(extensions, new Map(outputs.map((t) => [t.name, t])));
    const optionalNeeded = inputs.some((t) => t.optional && needs.some((n) => n.has(t.name)));
    const planConditional = conditional || optionalNeeded;
    const joins = new Map([...writers].filter(([, list]) => list.length > 1));

    const steps: PlannedStep[] = source.steps.map((step, i) => ({
      index: i,
      label: this.labels[i]!,
      modelName: step.modelName,
      modelVersion: step.modelVersion === -1 ? undefined : String(step.modelVersion),
      inputs: links(step.inputMap),
      outputs: links(step.outputMap),
      decoupled: this.members[i]!.config.decoupled === true,
      ...(located[i]?.length ? { conditions: located[i]!.map((l) => l.condition) } : {}),
      needs: needs[i]!,
    }));
    const read = new Set([...consumers.keys(), ...source.outputs.map((o) => o.name)]);
    const warnings = steps.filter((s) => !s.outputs.some((o) => read.has(o.tensor)))
      .map((s) => `${this.ensemble} ${s.label}: nothing reads its outputs, so it only runs when switchyard_debug_tensors asks for them`);
    const plan: EnsemblePlan = {
      ensemble: source.name,
      steps,
      inputs: source.inputs.map((t) => t.name),
      outputs: source.outputs.map((t) => t.name),
      producer,
      consumers,
      written: [...new Set(order.flatMap((i) => steps[i]!.outputs.map((o) => o.tensor)))],
      order,
      members: [...new Set(source.steps.map((s) => s.modelName))],
      decoupled,
      maxInflightRequests: source.maxInflightRequests,
      ...(planConditional ? { conditional: true } : {}),
      ...(joins.size > 0 ? { joins } : {}),
      ...(outputDefaults.size > 0 ? { outputDefaults } : {}),
      ...(streams ? { streams } : {}),
    };
    return { plan, inputs, outputs, warnings };
  }

  /** switchyard.output.<NAME>.default: an output the ensemble has, with fixed dims, and a value of its datatype's kind. */
  private outputDefaults(extensions: EnsembleExtensions, outputs: ReadonlyMap<string, TensorSpec>): Map<string, OutputDefault> {
    const defaults = new Map<string, OutputDefault>();
    for (const [name, { value, at }] of extensions.defaults) {
      const spec = outputs.get(name);
      if (!spec) {
        const guess = didYouMean(name, [...outputs.keys()]);
        this.fail(at, `${this.ensemble} has a default for output '${name}', which it does not have`, guess ? `did you mean '${guess}'?` : `use one of its outputs: ${[...outputs.keys()].join(', ')}`);
      }
      const kind = spec.datatype === 'BYTES' ? 'string' : conditionKindOf(spec.datatype);
      if (!kind) this.fail(at, `${this.ensemble} output '${name}' is ${spec.datatype}, which a default cannot fill`, 'give defaults to BOOL, numeric or BYTES outputs');
      if (literalKind(value) !== kind) {
        this.fail(at, `${this.ensemble} output '${name}' is ${spec.datatype}, but its default ${describeLiteral(value)} is a ${literalKind(value) === 'BOOL' ? 'boolean' : literalKind(value)}`,
          kind === 'BOOL' ? 'use true or false' : kind === 'number' ? 'use a number' : 'use text in quotes');
      }
      if (typeof value === 'number' && /INT/.test(spec.datatype) && !Number.isInteger(value)) {
        this.fail(at, `${this.ensemble} output '${name}' is ${spec.datatype}, but its default ${value} is not a whole number`, 'use a whole number');
      }
      if (spec.dims.some((d) => d < 0)) {
        this.fail(at, `${this.ensemble} output '${name}' has a variable size (dims [${spec.dims.join(',')}]), so a default cannot know its shape`,
          'give the output fixed dims, or leave out the default (the output is then absent when no step writes it)');
      }
      defaults.set(name, { value, datatype: spec.datatype, dims: [...spec.dims], batched: this.source.maxBatchSize > 0 });
    }
    return defaults;
  }

  private resolveMember(step: EnsembleStepSource, i: number): Member {
    const at = this.source.layout.step(i);
    if (!step.modelName) this.fail(at, `${this.step(i)} has no model_name`, 'name the model the step runs');
    if (Object.keys(step.inputMap).length === 0) {
      this.fail(at, `${this.step(i)} maps no inputs`, `map each input of '${step.modelName}' to an ensemble tensor`);
    }
    if (Object.keys(step.outputMap).length === 0) {
      this.fail(at, `${this.step(i)} maps no outputs`, `map the outputs of '${step.modelName}' that later steps or the ensemble use`);
    }
    if (step.modelName === this.source.name) {
      this.fail(at, `${this.step(i)} runs the ensemble itself`, 'a step runs another model');
    }
    const found = this.lookup(step.modelName, step.modelVersion);
    if ('problem' in found) {
      this.fail(at, `${this.step(i)} cannot use model '${step.modelName}'${step.modelVersion === -1 ? '' : ` version ${step.modelVersion}`}: ${found.problem}`,
        'fix or add that model (the ensemble loads after its members), or change the step');
    }
    const member = found.config;
    const ensembleMbs = this.source.maxBatchSize;
    if (ensembleMbs > 0 && member.maxBatchSize < ensembleMbs) {
      this.fail(at, `${this.ensemble} has max_batch_size ${ensembleMbs}, larger than the max_batch_size ${member.maxBatchSize} of ${this.labels[i]}` +
        (member.maxBatchSize === 0 ? ', which does not batch' : ''),
      member.maxBatchSize === 0
        ? 'set the ensemble max_batch_size to 0 (its dims then hold full shapes), or let the member batch'
        : `set the ensemble max_batch_size to at most ${member.maxBatchSize}`);
    }
    for (const memberInput of Object.keys(step.inputMap)) {
      if (!member.inputByName.has(memberInput)) {
        const names = member.inputs.map((t) => t.name);
        const guess = didYouMean(memberInput, names);
        this.fail(this.source.layout.stepInput(i, memberInput), `${this.step(i)} maps input '${memberInput}', which model '${step.modelName}' does not have`,
          guess ? `did you mean '${guess}'? Its inputs: ${names.join(', ')}` : `use its inputs: ${names.join(', ')}`);
      }
    }
    const unfed = member.inputs.filter((t) => !t.optional && !(t.name in step.inputMap)).map((t) => `'${t.name}'`);
    if (unfed.length > 0) {
      this.fail(at, `${this.step(i)} does not feed input${unfed.length > 1 ? 's' : ''} ${unfed.join(', ')} of model '${step.modelName}'`,
        'map every required input of the model to an ensemble tensor');
    }
    for (const memberOutput of Object.keys(step.outputMap)) {
      if (!member.outputByName.has(memberOutput)) {
        const names = member.outputs.map((t) => t.name);
        const guess = didYouMean(memberOutput, names);
        this.fail(this.source.layout.stepOutput(i, memberOutput), `${this.step(i)} maps output '${memberOutput}', which model '${step.modelName}' does not have`,
          guess ? `did you mean '${guess}'? Its outputs: ${names.join(', ')}` : `use its outputs: ${names.join(', ')}`);
      }
    }
    return { config: member };
  }

  /**
   * Which responses each tensor comes with, as Triton labels them: ensemble
   * inputs and what is computed from them alone have label 0, and every
   * decoupled step starts a label of its own, since each of its responses
   * runs the steps after it once more. A label's parent is the label its
   * decoupled step read from. A step may read tensors of one label and of
   * that label's ancestors: each response of the deepest one runs the step
   * once, with the ancestors' tensors as they were for that response (the
   * request's inputs are the same for all; Triton refuses this, #7275). A
   * step whose inputs carry labels that are not on one line of descent
   * (two decoupled steps side by side) could not tell which responses
   * belong together, and is refused in Triton's words.
   * Answers the streams when any step is decoupled, else undefined.
   */
  private checkDecoupledFlow(order: readonly number[], producer: ReadonlyMap<string, number>): StreamLayout | undefined {
    const tensor = new Map<string, number>();
    const parent: number[] = [-1];
    const step: number[] = [];
    const layout: StreamLayout = { tensor, step, parent };
    for (const i of order) {
      const source = this.source.steps[i]!;
      const reads = [...new Set(Object.values(source.inputMap))].map((t) => (producer.get(t) === undefined ? 0 : tensor.get(t)!));
      const deepest = reads.find((l) => reads.every((other) => streamWithin(layout, l, other)));
      if (deepest === undefined) {
        this.fail(this.source.layout.step(i),
          `in ensemble ${this.source.name}, step of model '${source.modelName}' receives inputs originated from different decoupled models`,
          'feed the step tensors of one decoupled step (and of the steps after it), with any tensors computed before that step; ' +
          'never the outputs of two decoupled steps that do not follow one another');
      }
      step[i] = deepest ?? 0;
      let written = step[i]!;
      if (this.members[i]!.config.decoupled === true) {
        parent.push(written);
        written = parent.length - 1;
      }
      for (const t of Object.values(source.outputMap)) tensor.set(t, written);
    }
    for (const name of this.source.inputs.map((t) => t.name)) tensor.set(name, 0);
    return parent.length > 1 ? layout : undefined;
  }

  /** Topological order of the steps, or the cycle that prevents one. */
  private order(writers: ReadonlyMap<string, readonly number[]>, conditionReads: readonly (readonly string[])[]): number[] {
    const graph = new graphlib.Graph({ directed: true });
    this.source.steps.forEach((_, i) => graph.setNode(String(i)));
    this.source.steps.forEach((step, i) => {
      for (const tensor of [...Object.values(step.inputMap), ...(conditionReads[i] ?? [])]) {
        for (const from of writers.get(tensor) ?? []) graph.setEdge(String(from), String(i), tensor);
      }
    });
    const cycle = graphlib.alg.findCycles(graph)[0];
    if (cycle) {
      const members = cycle.map(Number).sort((a, b) => a - b);
      const path = members.map((i) => {
        const next = members.find((j) => graph.hasEdge(String(i), String(j)))!;
        return `${this.labels[i]} writes '${graph.edge(String(i), String(next))}', read by ${this.labels[next]}`;
      });
      this.fail(this.source.layout.step(members[0]!), `${this.ensemble} has a cycle: ${path.join('; ')}`,
        'a step cannot read, directly or through other steps, a tensor it writes');
    }
    return graphlib.alg.topsort(graph).map(Number);
  }

  private memberSide(i: number, kind: 'input' | 'output', name: string): Side {
    const config = this.members[i]!.config;
    const spec = (kind === 'input' ? config.inputByName : config.outputByName).get(name)!;
    return {
      datatype: spec.datatype,
      shape: config.maxBatchSize > 0 ? [-1, ...spec.dims] : spec.dims,
      what: `${kind} '${name}' of ${this.labels[i]}`,
    };
  }

  private ensembleShape(dims: readonly number[]): number[] {
    return this.source.maxBatchSize > 0 ? [-1, ...dims] : [...dims];
  }

  /** The ensemble's dims for a member's full shape: without the batch dimension when the ensemble batches. */
  private ensembleDims(side: Side, at: FieldAt, tensor: string): number[] {
    if (this.source.maxBatchSize === 0) return [...side.shape];
    if (side.shape.length === 0) {
      this.fail(at, `${this.ensemble} batches (max_batch_size ${this.source.maxBatchSize}) but ${side.what}, which '${tensor}' connects to, has no batch dimension`,
        'set the ensemble max_batch_size to 0');
    }
    return side.shape.slice(1);
  }

  private completeInput(declared: DeclaredTensor, readers: readonly number[]): TensorSpec {
    const at = this.source.layout.ensembleInput(declared.name);
    const first = readers.find((i) => Object.values(this.source.steps[i]!.inputMap).includes(declared.name));
    if (first === undefined) {
      // Only conditions read it: nothing to complete it from.
      if (!declared.datatype || !declared.dims) {
        this.fail(at, `${this.ensemble} input '${declared.name}' is read only by conditions, so its datatype and dims cannot be completed from a step`,
          'declare its data_type and dims');
      }
      return tensorSpec(declared.name, declared.datatype, declared.dims, declared.optional);
    }
    const link = Object.entries(this.source.steps[first]!.inputMap).find(([, t]) => t === declared.name)![0];
    const side = this.memberSide(first, 'input', link);
    const dims = declared.dims ?? this.ensembleDims(side, at, declared.name);
    return tensorSpec(declared.name, declared.datatype ?? side.datatype, dims, declared.optional);
  }

  private completeOutput(declared: DeclaredTensor, writer: number): TensorSpec {
    const link = Object.entries(this.source.steps[writer]!.outputMap).find(([, t]) => t === declared.name)![0];
    const side = this.memberSide(writer, 'output', link);
    const at = this.source.layout.ensembleOutput(declared.name);
    const spec = tensorSpec(declared.name, declared.datatype ?? side.datatype, declared.dims ?? this.ensembleDims(side, at, declared.name), false);
    this.compare(at, declared.name, side, { datatype: spec.datatype, shape: this.ensembleShape(spec.dims), what: `ensemble output '${declared.name}'` });
    return spec;
  }

  /** Every link: the writer's (or ensemble input's) datatype and shape against the reader's; the writers of a join against each other. */
  private checkLinks(inputs: ReadonlyMap<string, TensorSpec>): void {
    const writers = new Map<string, Side>();
    this.source.steps.forEach((step, i) => {
      for (const [memberOutput, tensor] of Object.entries(step.outputMap)) {
        const side = this.memberSide(i, 'output', memberOutput);
        const first = writers.get(tensor);
        if (first) this.compare(this.source.layout.stepOutput(i, memberOutput), tensor, first, side);
        else writers.set(tensor, side);
      }
    });
    for (const [name, spec] of inputs) {
      writers.set(name, { datatype: spec.datatype, shape: this.ensembleShape(spec.dims), what: `ensemble input '${name}'` });
    }
    this.source.steps.forEach((step, i) => {
      for (const [memberInput, tensor] of Object.entries(step.inputMap)) {
        this.compare(this.source.layout.stepInput(i, memberInput), tensor, writers.get(tensor)!, this.memberSide(i, 'input', memberInput));
      }
    });
  }

  private compare(at: FieldAt, tensor: string, writer: Side, reader: Side): void {
    if (writer.datatype !== reader.datatype) {
      this.fail(at, `${this.ensemble}: tensor '${tensor}' is ${writer.datatype} as ${writer.what}, but ${reader.what} takes ${reader.datatype}`,
        'connect tensors of the same datatype, or add a step that converts it');
    }
    const fits = writer.shape.length === reader.shape.length
      && writer.shape.every((d, k) => d === -1 || reader.shape[k] === -1 || d === reader.shape[k]);
    if (!fits) {
      const batchHint = this.source.maxBatchSize === 0 && Math.abs(writer.shape.length - reader.shape.length) === 1
        ? ' (with ensemble max_batch_size 0, ensemble dims are full shapes, batch dimension included)' : '';
      this.fail(at, `${this.ensemble}: tensor '${tensor}' is ${formatShape(writer.shape)} as ${writer.what}, but ${reader.what} takes ${formatShape(reader.shape)}${batchHint}`,
        'connect tensors whose shapes agree (-1 matches any size; the batch dimension shows as -1)');
    }
  }
}

function links(map: Readonly<Record<string, string>>): TensorLink[] {
  return Object.entries(map).map(([member, tensor]) => ({ member, tensor }));
}

function tensorSpec(name: string, datatype: DataType, dims: readonly number[], optional: boolean): TensorSpec {
  return { name, datatype, dims: [...dims], modelDims: [...dims], optional, allowRaggedBatch: false };
}
