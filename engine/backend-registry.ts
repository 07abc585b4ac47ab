/**
 * The backends a server runs with, by `backend` name and by `platform`.
 * The engine never builds a backend: whoever composes the server (see
 * server/composition-root.ts) creates one registry and passes it to
 * InferenceEngine.create, so a third-party backend is one more object in it.
 */
import type { Backend } from './backend.ts';
import type { BackendCatalog } from './config/backend-catalog.ts';
import { ENSEMBLE_BACKEND } from './config/compile-model-config.ts';

export interface BackendRegistryOptions {
  /** The backend of configs that name neither backend nor platform. Default: the first backend given. */
  readonly defaultBackend?: string;
}

export class BackendRegistry implements BackendCatalog {
  readonly defaultBackend: string | undefined;

  private constructor(
    private readonly byName: ReadonlyMap<string, Backend>,
    private readonly byPlatform: ReadonlyMap<string, string>,
    defaultBackend: string | undefined,
  ) {
    this.defaultBackend = defaultBackend;
  }

  /**
   * Throws when two backends share a name or a platform, when one takes the
   * name or platform 'ensemble' (the engine runs ensembles itself), or when
   * defaultBackend names none of them.
   */
  static of(backends: readonly Backend[], options: BackendRegistryOptions = {}): BackendRegistry {
    const byName = new Map<string, Backend>();
    const byPlatform = new Map<string, string>();
    for (const backend of backends) {
      if (backend.name === '' || backend.name === ENSEMBLE_BACKEND) throw new Error(`a backend may not be named '${backend.name}'`);
      if (byName.has(backend.name)) throw new Error(`two backends are named '${backend.name}'`);
      byName.set(backend.name, backend);
      for (const platform of backend.platforms ?? []) {
        if (platform === '' || platform === ENSEMBLE_BACKEND) throw new Error(`backend '${backend.name}' may not claim the platform '${platform}'`);
        const holder = byPlatform.get(platform);
        if (holder !== undefined) throw new Error(`backends '${holder}' and '${backend.name}' both claim the platform '${platform}'`);
        byPlatform.set(platform, backend.name);
      }
    }
    const defaultBackend = options.defaultBackend ?? backends[0]?.name;
    if (defaultBackend !== undefined && !byName.has(defaultBackend)) throw new Error(`the default backend '${defaultBackend}' is not among the backends given`);
    return new BackendRegistry(byName, byPlatform, defaultBackend);
  }

  /** The backend called `name`, if the server has it. */
  get(name: string): Backend | undefined {
    return this.byName.get(name);
  }

  backendOfPlatform(platform: string): string | undefined {
    return this.byPlatform.get(platform);
  }

  list(): readonly Backend[] {
    return [...this.byName.values()];
  }
}
