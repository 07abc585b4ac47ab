/**
 * The system shared memory extension's registry, shared by both frontends
 * (region names are one namespace, as in Triton): register, status,
 * unregister, and leases for requests that read or write tensors in
 * regions. As in Triton since 2.69, clients may register and use regions
 * only when the server runs with --allow-client-shm=true; status answers
 * either way.
 *
 * CUDA shared memory has no place on this build (no GPU). Its calls answer
 * as a CPU-only tritonserver does: status lists nothing, register is
 * refused ("GPUs not supported"), unregister has nothing to do. So clients
 * that clear every region at start (Triton's shm examples do) work.
 */
import { quoted, serverError } from '../errors.ts';
import { SharedMemoryLease, type SharedMemoryPlan } from './shared-memory-lease.ts';
import { SharedMemoryRegion, type SharedMemoryRegionStatus } from './shared-memory-region.ts';

/** --max-shm-regions: system shared memory regions registered at once, each one open file. */
export const DEFAULT_MAX_SHARED_MEMORY_REGIONS = 256;
/** Longest region name, in characters; a name is a map key held as long as the region. */
export const MAX_REGION_NAME_LENGTH = 1024;
/** Longest key taken for a look, in characters (a key names one file, at most 255 bytes, after its slashes). */
const MAX_KEY_LENGTH = 4096;

export interface SharedMemoryOptions {
  /** --allow-client-shm: whether clients may register and use regions. Default false. */
  readonly allowClient?: boolean;
  /** --max-shm-regions. Default DEFAULT_MAX_SHARED_MEMORY_REGIONS. */
  readonly maxRegions?: number;
}

/** What a CUDA shared memory status call reports of one region; never any on this build. */
export interface CudaSharedMemoryRegionStatus {
  readonly name: string;
  readonly device_id: number;
  readonly byte_size: number;
}

export class SharedMemoryManager {
  readonly allowClient: boolean;
  readonly maxRegions: number;
  private readonly regions = new Map<string, SharedMemoryRegion>();
  /** Names whose registration is opening its file; they count against the limit and as taken. */
  private readonly opening = new Set<string>();
  /** Unregistered regions that requests still held, until their files close. */
  private readonly retired = new Set<SharedMemoryRegion>();
  private closed = false;

  constructor(options: SharedMemoryOptions = {}) {
    this.allowClient = options.allowClient ?? false;
    this.maxRegions = options.maxRegions ?? DEFAULT_MAX_SHARED_MEMORY_REGIONS;
  }

  private assertAllowed(): void {
    if (!this.allowClient) throw serverError('CLIENT_SHM_DISABLED', {});
  }

  /**
   * Registers `key`'s bytes [offset, offset + byteSize) as region `name`.
   * Refused when client shared memory is off, the name is taken or empty,
   * the limit is reached, the key names nothing under /dev/shm, or the
   * range lies beyond the object's end.
   */
  async register(name: string, key: string, offset: number, byteSize: number): Promise<void> {
    this.assertAllowed();
    if (name === '') throw serverError('BAD_REQUEST', { detail: "'region name' is necessary to register system shared memory region" });
    if (name.length > MAX_REGION_NAME_LENGTH) {
      throw serverError('BAD_REQUEST', { detail: `shared memory region name '${quoted(name)}' is longer than ${MAX_REGION_NAME_LENGTH} characters` });
    }
    if (key.length > MAX_KEY_LENGTH) {
      throw serverError('BAD_REQUEST', { detail: `cannot register shared memory region '${quoted(name)}' - invalid shm key '${quoted(key)}': it is longer than ${MAX_KEY_LENGTH} characters` });
    }
    if (this.regions.has(name) || this.opening.has(name)) throw serverError('SHM_REGION_EXISTS', { region: name });
    if (this.regions.size + this.opening.size >= this.maxRegions) throw serverError('SHM_REGION_LIMIT', { limit: this.maxRegions });
    this.opening.add(name);
    try {
      const region = await SharedMemoryRegion.open(name, key, offset, byteSize);
      if (this.closed) {
        await region.close();
        throw serverError('SERVER_EXITING', {});
      }
      this.regions.set(name, region);
    } finally {
      this.opening.delete(name);
    }
  }

  /** Every region, or the one named (NOT_FOUND when there is none by that name). */
  status(name?: string): SharedMemoryRegionStatus[] {
    if (!name) return [...this.regions.values()].map((region) => region.status());
    const region = this.regions.get(name);
    if (!region) throw serverError('SHM_REGION_NOT_FOUND', { region: name, kind: 'system ' });
    return [region.status()];
  }

  /**
   * Unregisters the region named, or every region. An unknown name is not
   * an error (Triton's behaviour). A region that requests still use leaves
   * the registry now and closes its file when they finish.
   */
  async unregister(name?: string): Promise<void> {
    this.assertAllowed();
    const names = name ? [name] : [...this.regions.keys()];
    for (const region of this.retired) if (region.isClosed) this.retired.delete(region);
    const retiring: Promise<void>[] = [];
    for (const each of names) {
      const region = this.regions.get(each);
      if (!region) continue;
      this.regions.delete(each);
      this.retired.add(region);
      retiring.push(region.retire());
    }
    await Promise.all(retiring);
  }

  /**
   * Checks a request's plan against the registry (each region exists, each
   * tensor lies within its region) and holds the regions for the request.
   * Nothing is read yet; the caller releases the lease when done.
   */
  lease(plan: SharedMemoryPlan): SharedMemoryLease {
    this.assertAllowed();
    const held = new Map<string, SharedMemoryRegion>();
    for (const ref of [...plan.inputs.map((input) => input.ref), ...plan.outputs.values()]) {
      const region = this.regions.get(ref.region);
      if (!region) throw serverError('SHM_REGION_NOT_FOUND', { region: ref.region, kind: '' });
      region.checkRange(ref.offset, ref.byteSize);
      held.set(ref.region, region);
    }
    for (const region of held.values()) region.hold();
    return new SharedMemoryLease(plan, held);
  }

  /** CUDA shared memory status: nothing is ever registered; a name given is not found (or is a system region). */
  cudaStatus(name?: string): CudaSharedMemoryRegionStatus[] {
    if (!name) return [];
    if (this.regions.has(name)) throw serverError('SHM_REGION_KIND', { region: name, registered: 'system', asked: 'CUDA' });
    throw serverError('SHM_REGION_NOT_FOUND', { region: name, kind: 'cuda ' });
  }

  /** CUDA shared memory register: refused, there is no GPU. */
  cudaRegister(name: string): never {
    this.assertAllowed();
    if (name === '') throw serverError('BAD_REQUEST', { detail: "'region name' is necessary to register cuda shared memory region" });
    throw serverError('CUDA_SHM_UNSUPPORTED', { region: name });
  }

  /** CUDA shared memory unregister: there is never a CUDA region to let go of. */
  cudaUnregister(): void {
    this.assertAllowed();
  }

  /** Server shutdown: every region's file is closed, whoever still holds it. */
  async close(): Promise<void> {
    this.closed = true;
    const regions = [...this.regions.values(), ...this.retired];
    this.regions.clear();
    this.retired.clear();
    await Promise.all(regions.map((region) => region.close()));
  }
}
