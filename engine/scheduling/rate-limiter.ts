/**
 * Triton's rate limiter (--rate-limit=execution_count): one per server,
 * across every model, deciding which model instance executes next.
 *
 * An instance's group may declare resources it needs while it executes
 * (instance_group.rate_limiter.resources: name, count, global). Each resource
 * is a pool, per device or, when declared global, one for the whole server.
 * A pool's size is the largest count any registered instance asks for, unless
 * --rate-limit-resource names it; once any resource is named that way, every
 * resource an instance needs must be, and naming less than an instance needs
 * stops that instance's model from loading (Triton's two load errors below).
 *
 * An instance that has a batch to run asks for its resources (acquire) and
 * waits in one queue, shared by every model, ordered by the instance's
 * executions so far times its priority (0 counts as 1; a smaller product goes
 * first, so priority 2 gets half the turns of priority 1), then by arrival.
 * Only the head of the queue is tried, as in Triton: an instance needing
 * much is not passed forever by instances needing little. The resources are
 * held until the execution ends (release), and the head is tried again on
 * every release, arrival, cancellation and registration.
 *
 * With --rate-limit=off (Triton's default) there is no limiter: configs are
 * still checked, and every instance executes as soon as it is free.
 */

export type RateLimitMode = 'off' | 'execution_count';

/** One --rate-limit-resource=<name>:<count>[:<device>]. */
export interface RateLimitResourceSetting {
  readonly name: string;
  readonly count: number;
  /** undefined: every device (and global pools of that name). */
  readonly device?: number;
}

export interface RateLimiterOptions {
  readonly mode: RateLimitMode;
  /** Pool sizes set on the command line; a name given twice for the same device keeps the smaller count, as tritonserver does. */
  readonly resources?: readonly RateLimitResourceSetting[];
}

export const RATE_LIMITER_OFF: RateLimiterOptions = { mode: 'off', resources: [] };

/** One resource an instance needs, as instance_group.rate_limiter.resources declares it. */
export interface RateLimiterResourceSpec {
  readonly name: string;
  readonly global: boolean;
  readonly count: number;
}

/** instance_group.rate_limiter, compiled. */
export interface RateLimiterSpec {
  readonly resources: readonly RateLimiterResourceSpec[];
  /** As written; 0 (the default) counts as 1. */
  readonly priority: number;
}

export const NO_RATE_LIMITER_SPEC: RateLimiterSpec = { resources: [], priority: 0 };

/** What an execution holds while it runs. */
export interface ResourceGrant {
  /** Whether the instance had to wait (resources in use, or others ahead of it). */
  readonly waited: boolean;
  /** Gives the resources back and counts the execution; a second call does nothing. */
  release(): void;
}

/** The limiter as one instance's scheduler sees it. */
export interface InstanceGate {
  /**
   * Resolves once the instance may execute, with the resources to release when
   * it ends; or with undefined if `cancel` fires first, leaving its place and
   * holding nothing.
   */
  acquire(cancel?: AbortSignal): Promise<ResourceGrant | undefined>;
}

/** An instance known to the limiter; unregister once its model no longer executes. */
export interface RegisteredInstance extends InstanceGate {
  unregister(): void;
}

/** Pool key: a device number, or GLOBAL. */
type PoolKey = number | typeof GLOBAL;
const GLOBAL = 'global';
type Pools = Map<PoolKey, Map<string, number>>;

interface Registration {
  readonly name: string;
  readonly needs: Pools;
  readonly weight: number;
  executions: number;
}

interface Waiter {
  readonly registration: Registration;
  readonly arrival: number;
  readonly grant: (grant: ResourceGrant | undefined) => void;
  waited: boolean;
}

export class RateLimiter {
  private readonly explicit: Pools = new Map();
  private readonly registrations = new Set<Registration>();
  private pools: Pools = new Map();
  private readonly allocated: Pools = new Map();
  private readonly waiting: Waiter[] = [];
  private arrivals = 0;
  private attemptQueued = false;

  private constructor(options: RateLimiterOptions) {
    for (const { name, count, device } of options.resources ?? []) {
      const key = device ?? ALL_DEVICES;
      const pool = mapOf(this.explicit, key);
      const before = pool.get(name);
      pool.set(name, before === undefined ? count : Math.min(before, count));
    }
  }

  /** The server's limiter, or undefined when --rate-limit=off: then nothing is limited. */
  static create(options: RateLimiterOptions): RateLimiter | undefined {
    return options.mode === 'execution_count' ? new RateLimiter(options) : undefined;
  }

  /**
   * Adds an instance's needs to the pools. Throws, registering nothing, when
   * the pools can no longer serve every instance: a resource both global and
   * per device, or a --rate-limit-resource count below an instance's need.
   * @param device the device the instance runs on (CPU instances: 0, as in Triton)
   */
  register(name: string, device: number, spec: RateLimiterSpec): RegisteredInstance {
    const needs: Pools = new Map();
    for (const resource of spec.resources) mapOf(needs, resource.global ? GLOBAL : device).set(resource.name, resource.count);
    const registration: Registration = { name, needs, weight: Math.max(spec.priority, 1), executions: 0 };
    this.registrations.add(registration);
    try {
      this.pools = this.computePools();
    } catch (err) {
      this.registrations.delete(registration);
      throw err;
    }
    this.attempt();
    return {
      acquire: (cancel) => this.acquire(registration, cancel),
      unregister: () => {
        if (!this.registrations.delete(registration)) return;
        this.pools = this.computePools();
        this.attempt();
      },
    };
  }

  /** The size of a pool ('global' or a device number), for logs and tests; undefined when no instance needs it. */
  poolSize(resource: string, where: PoolKey): number | undefined {
    return this.pools.get(where)?.get(resource);
  }

  /** Instances waiting for their turn now. */
  get waitingCount(): number {
    return this.waiting.length;
  }

  private acquire(registration: Registration, cancel: AbortSignal | undefined): Promise<ResourceGrant | undefined> {
    if (cancel?.aborted) return Promise.resolve(undefined);
    return new Promise((resolve) => {
      const onCancel = (): void => {
        const at = this.waiting.indexOf(waiter);
        if (at < 0) return;
        this.waiting.splice(at, 1);
        resolve(undefined);
        // It may have been the head that held everyone back.
        this.attempt();
      };
      const waiter: Waiter = {
        registration, arrival: this.arrivals++, waited: false,
        grant: (grant) => {
          cancel?.removeEventListener('abort', onCancel);
          resolve(grant);
        },
      };
      cancel?.addEventListener('abort', onCancel, { once: true });
      this.waiting.push(waiter);
      this.attempt();
      if (this.waiting.includes(waiter)) waiter.waited = true;
    });
  }

  /**
   * After a release, the next grant waits for the current task's synchronous
   * work: the scheduler that released usually asks again at once for its next
   * batch, and must be in the queue when turns are compared, as Triton stages
   * a released instance again before it allocates.
   */
  private attemptSoon(): void {
    if (this.attemptQueued) return;
    this.attemptQueued = true;
    queueMicrotask(() => {
      this.attemptQueued = false;
      this.attempt();
    });
  }

  /** Grants the head of the queue while its resources are free; stops at the first head that must wait. */
  private attempt(): void {
    while (this.waiting.length > 0) {
      let head = 0;
      for (let i = 1; i < this.waiting.length; i++) if (this.before(this.waiting[i]!, this.waiting[head]!)) head = i;
      const waiter = this.waiting[head]!;
      if (!this.fits(waiter.registration.needs)) return;
      this.waiting.splice(head, 1);
      this.take(waiter.registration.needs, 1);
      let released = false;
      waiter.grant({
        waited: waiter.waited,
        release: () => {
          if (released) return;
          released = true;
          waiter.registration.executions++;
          this.take(waiter.registration.needs, -1);
          this.attemptSoon();
        },
      });
    }
  }

  private before(a: Waiter, b: Waiter): boolean {
    const pa = a.registration.executions * a.registration.weight;
    const pb = b.registration.executions * b.registration.weight;
    return pa < pb || (pa === pb && a.arrival < b.arrival);
  }

  private fits(needs: Pools): boolean {
    for (const [key, resources] of needs) {
      for (const [name, count] of resources) {
        const used = this.allocated.get(key)?.get(name) ?? 0;
        if (used + count > (this.pools.get(key)?.get(name) ?? 0)) return false;
      }
    }
    return true;
  }

  private take(needs: Pools, sign: 1 | -1): void {
    for (const [key, resources] of needs) {
      const used = mapOf(this.allocated, key);
      for (const [name, count] of resources) used.set(name, (used.get(name) ?? 0) + sign * count);
    }
  }

  /** Every pool's size from what the registered instances need and what the command line sets; throws Triton's errors. */
  private computePools(): Pools {
    const pools: Pools = new Map();
    for (const { needs } of this.registrations) {
      for (const [key, resources] of needs) {
        const pool = mapOf(pools, key);
        for (const [name, count] of resources) pool.set(name, Math.max(pool.get(name) ?? 0, count));
      }
    }
    for (const name of pools.get(GLOBAL)?.keys() ?? []) {
      for (const [key, pool] of pools) {
        if (key !== GLOBAL && pool.has(name)) {
          throw new Error(`Resource "${name}" is present as both global and device-specific resource in the model configuration.`);
        }
      }
    }
    if (this.explicit.size === 0) return pools;
    for (const [key, pool] of pools) {
      for (const [name, needed] of pool) {
        // A global pool takes the largest count given for its name on any device; a device's, its own or the every-device one.
        const given = key === GLOBAL
          ? [...this.explicit.values()].map((p) => p.get(name) ?? 0)
          : [this.explicit.get(key)?.get(name) ?? 0, this.explicit.get(ALL_DEVICES)?.get(name) ?? 0];
        const count = Math.max(0, ...given);
        if (count < needed) {
          throw new Error(`Resource count for "${name}" is limited to ${count} which will prevent scheduling of one or more model instances, ` +
            `the minimum required count is ${needed}`);
        }
        pool.set(name, count);
      }
    }
    return pools;
  }
}

/** The explicit-pool key of a --rate-limit-resource given without a device. */
const ALL_DEVICES = -1;

function mapOf(pools: Pools, key: PoolKey): Map<string, number> {
  let pool = pools.get(key);
  if (!pool) {
    pool = new Map();
    pools.set(key, pool);
  }
  return pool;
}
