/**
 * Implicit state (Triton's sequence_batching.state): each sequence carries
 * tensors that the model reads from its state inputs and writes to its
 * state outputs. A sequence starts from the configured initial state; after
 * every successful request the state outputs become the next request's
 * state inputs. State outputs never reach the client.
 */
import type { SequenceStateSpec } from '../config/compiled-model-config.ts';
import { ownedCopy } from '../memory/owned-buffer.ts';
import type { FixedTensor, Tensor } from '../tensor.ts';

/** One sequence's state tensors, by the model input they feed. Replaced whole, never changed in place. */
export type StateTensors = ReadonlyMap<string, FixedTensor>;

export class ImplicitState {
  /** The model outputs that hold the next state; requests ask for them on top of what the client wants. */
  readonly outputNames: readonly string[];
  private readonly outputs: ReadonlySet<string>;

  constructor(private readonly specs: readonly SequenceStateSpec[], private readonly batched: boolean) {
    this.outputNames = specs.map((s) => s.outputName);
    this.outputs = new Set(this.outputNames);
  }

  /** A new sequence's state. */
  initial(): StateTensors {
    return new Map(this.specs.map((s) => [s.inputName, {
      name: s.inputName, datatype: s.datatype, shape: this.batched ? [1, ...s.initialDims] : [...s.initialDims], raw: ownedCopy(s.initialData),
    }]));
  }

  /**
   * The state after a request answered with `outputs`: each state output,
   * copied into memory of its own (the output may be a view into a batch's
   * buffer) and renamed to the input it feeds. A state the model did not
   * return keeps its value, as Triton keeps a state the backend did not update.
   */
  next(previous: StateTensors, outputs: readonly Tensor[]): StateTensors {
    const next = new Map(previous);
    for (const spec of this.specs) {
      const out = outputs.find((t) => t.name === spec.outputName);
      if (!out || out.datatype === 'BYTES') continue;
      next.set(spec.inputName, { name: spec.inputName, datatype: out.datatype, shape: [...out.shape], raw: ownedCopy(out.raw) });
    }
    return next;
  }

  /** What the client gets: the outputs without the state. */
  clientOutputs(outputs: readonly Tensor[]): Tensor[] {
    return outputs.filter((t) => !this.outputs.has(t.name));
  }
}
