/**
 * What one inference request takes from and gives to system shared memory,
 * and its hold on the regions involved. The frontends' codecs turn the
 * shared_memory_region / _offset / _byte_size parameters into a plan (plain
 * data, so it crosses from a JSON codec process); the shared memory manager
 * checks the plan and holds its regions in a lease; the frontend reads the
 * inputs through the lease before inference, writes the outputs after, and
 * releases it exactly once.
 */
import { decodeBytesInput } from '../bytes-tensor.ts';
import { serverError } from '../errors.ts';
import { fixedByteSize, type DataType, type Tensor } from '../tensor.ts';
import type { SharedMemoryRegion } from './shared-memory-region.ts';

/** The request parameters that place one tensor in shared memory, Triton's names. */
export const SHARED_MEMORY_PARAMETERS = ['shared_memory_region', 'shared_memory_offset', 'shared_memory_byte_size'] as const;

/** Where one tensor lies: a registered region's name, an offset into the region, a size in bytes. */
export interface SharedMemoryRef {
  readonly region: string;
  readonly offset: number;
  readonly byteSize: number;
}

/** An input whose data is in shared memory, with its place among the request's inputs. */
export interface SharedMemoryInput {
  readonly index: number;
  readonly name: string;
  readonly datatype: DataType;
  readonly shape: readonly number[];
  readonly ref: SharedMemoryRef;
}

/** A request's tensors in shared memory: inputs to read, and outputs (by name) to write. */
export interface SharedMemoryPlan {
  readonly inputs: readonly SharedMemoryInput[];
  readonly outputs: ReadonlyMap<string, SharedMemoryRef>;
}

export class SharedMemoryLease {
  private released = false;

  /** `regions` are held (hold() called once each) by the manager on the lease's behalf. */
  constructor(
    private readonly plan: SharedMemoryPlan,
    private readonly regions: ReadonlyMap<string, SharedMemoryRegion>,
  ) {}

  /** Names of the outputs that go to shared memory, and so leave the response without data. */
  get outputNames(): ReadonlySet<string> {
    return new Set(this.plan.outputs.keys());
  }

  /**
   * The request's inputs with those in shared memory read in, in request
   * order. `inputs` are the others, in order. A fixed-size input's byte size
   * is checked against its shape before anything is read.
   */
  async readInputs(model: string, inputs: readonly Tensor[], maxBytesElements: number): Promise<Tensor[]> {
    for (const { name, datatype, shape, ref } of this.plan.inputs) {
      if (datatype === 'BYTES') continue;
      const expected = fixedByteSize(datatype, shape);
      if (expected !== ref.byteSize) throw serverError('INPUT_BYTE_SIZE', { model, input: name, expected, got: ref.byteSize });
    }
    const read = await Promise.all(this.plan.inputs.map(async ({ name, datatype, shape, ref }): Promise<Tensor> => {
      const data = await this.region(ref).read(ref.offset, ref.byteSize);
      return datatype === 'BYTES' ? decodeBytesInput(name, shape, data, maxBytesElements) : { name, datatype, shape, raw: data };
    }));
    const merged: Tensor[] = [];
    let next = 0;
    for (const [i, input] of this.plan.inputs.entries()) {
      while (merged.length < input.index && next < inputs.length) merged.push(inputs[next++]!);
      merged.push(read[i]!);
    }
    while (next < inputs.length) merged.push(inputs[next++]!);
    return merged;
  }

  /**
   * Writes each shared memory output's bytes (BYTES: length-prefixed, as on
   * the wire) into its place. Every size is checked before anything is
   * written, so a too-small place leaves every region untouched.
   */
  async writeOutputs(outputs: readonly Tensor[]): Promise<void> {
    const writes: Array<[SharedMemoryRef, Uint8Array]> = [];
    for (const tensor of outputs) {
      const ref = this.plan.outputs.get(tensor.name);
      if (!ref) continue;
      if (tensor.raw.byteLength > ref.byteSize) {
        throw serverError('SHM_OUTPUT_TOO_SMALL', { output: tensor.name, size: ref.byteSize, needed: tensor.raw.byteLength });
      }
      writes.push([ref, tensor.raw]);
    }
    await Promise.all(writes.map(([ref, data]) => this.region(ref).write(ref.offset, data)));
  }

  /** Lets go of the regions; an unregistered one closes its file when its last lease goes. Safe to call more than once. */
  async release(): Promise<void> {
    if (this.released) return;
    this.released = true;
    await Promise.all([...this.regions.values()].map((region) => region.release()));
  }

  private region(ref: SharedMemoryRef): SharedMemoryRegion {
    if (this.released) throw new Error('shared memory lease used after release');
    return this.regions.get(ref.region)!;
  }
}
