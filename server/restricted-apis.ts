/**
 * Restricted APIs, as tritonserver's --http-restricted-api and
 * --grpc-restricted-protocol set them up: each API category can require one
 * header (gRPC: metadata key) with one value. The frontends tag every route
 * and RPC with its category and ask `restrictionFailure` before serving it.
 */
import { timingSafeEqual } from 'node:crypto';

/** Triton's API categories, under its names. */
export const API_CATEGORIES = [
  'health', 'metadata', 'inference', 'shared-memory', 'model-config', 'model-repository', 'statistics', 'trace', 'logging',
] as const;

export type ApiCategory = (typeof API_CATEGORIES)[number];

export interface ApiRestriction {
  /** Lower-case header name (gRPC: metadata key). */
  readonly header: string;
  readonly value: string;
}

/** Category -> the header that unlocks it; a category left out is open to everyone. */
export type RestrictedApis = Readonly<Partial<Record<ApiCategory, ApiRestriction>>>;

export function isApiCategory(value: unknown): value is ApiCategory {
  return typeof value === 'string' && (API_CATEGORIES as readonly string[]).includes(value);
}

/** Equal strings, compared in time that does not depend on where they differ. */
function sameValue(got: string, expected: string): boolean {
  const a = Buffer.from(got);
  const b = Buffer.from(expected);
  return a.length === b.length && timingSafeEqual(a, b);
}

/**
 * The header a call to `category` lacks, or undefined when it may go ahead.
 * `read` gives the values the caller sent under a (lower-case) name; exactly
 * one value, equal to the expected one, unlocks the category.
 */
export function restrictionFailure(
  restrictions: RestrictedApis | undefined,
  category: ApiCategory | undefined,
  read: (header: string) => readonly string[],
): string | undefined {
  if (!restrictions || !category) return undefined;
  const restriction = restrictions[category];
  if (!restriction) return undefined;
  const sent = read(restriction.header);
  return sent.length === 1 && sameValue(sent[0]!, restriction.value) ? undefined : restriction.header;
}

/**
 * The category of an HTTP route, from its fastify URL pattern. Rules by
 * shape rather than a list of routes, so a route added later under a known
 * shape (another `.../stats`) is covered without being listed.
 */
export function httpApiCategory(url: string): ApiCategory | undefined {
  if (url.startsWith('/v2/health/')) return 'health';
  if (url.startsWith('/v2/repository/')) return 'model-repository';
  if (url === '/v2/logging') return 'logging';
  if (/^\/v2\/(system|cuda)sharedmemory(\/|$)/.test(url)) return 'shared-memory';
  if (url === '/v2/trace/setting' || url.endsWith('/trace/setting')) return 'trace';
  if (url === '/v2' || /^\/v2\/models\/:model(\/versions\/:version)?$/.test(url)) return 'metadata';
  if (!url.startsWith('/v2/models/')) return undefined;
  const last = url.slice(url.lastIndexOf('/') + 1);
  switch (last) {
    case 'ready': return 'health';
    case 'config': return 'model-config';
    case 'stats': return 'statistics';
    case 'infer': case 'generate': case 'generate_stream': return 'inference';
    default: return undefined;
  }
}

/** The category of each RPC, Triton's assignment. */
export const GRPC_METHOD_CATEGORIES: Readonly<Record<string, ApiCategory>> = {
  ServerLive: 'health',
  ServerReady: 'health',
  ModelReady: 'health',
  Check: 'health',
  ServerMetadata: 'metadata',
  ModelMetadata: 'metadata',
  ModelInfer: 'inference',
  ModelStreamInfer: 'inference',
  ModelConfig: 'model-config',
  ModelStatistics: 'statistics',
  RepositoryIndex: 'model-repository',
  RepositoryModelLoad: 'model-repository',
  RepositoryModelUnload: 'model-repository',
  SystemSharedMemoryStatus: 'shared-memory',
  SystemSharedMemoryRegister: 'shared-memory',
  SystemSharedMemoryUnregister: 'shared-memory',
  CudaSharedMemoryStatus: 'shared-memory',
  CudaSharedMemoryRegister: 'shared-memory',
  CudaSharedMemoryUnregister: 'shared-memory',
  TraceSetting: 'trace',
  LogSettings: 'logging',
};
