/**
 * What the repository holds for one model: its folder, its versions, and
 * one explicit state saying whether it serves, failed, or was unloaded.
 */
import type { ModelVersion } from './model-version.ts';

/**
 * The state of a model as a whole (each version has its own lifecycle too):
 * - loaded: its versions were loaded; they say which are READY.
 * - reload-failed: loaded, and a later load of it (a reload, or an edit
 *   found by polling) failed; it keeps serving, and `reason` says why the
 *   new one was refused.
 * - failed: it could not load at all (bad config, no versions); `reason` says why.
 * - unloaded: unloaded on request, or gone from the repository: still
 *   listed, no longer counted for the server's readiness. `failure` is kept
 *   when it had failed before it was unloaded.
 */
export type ModelState =
  | { readonly kind: 'loaded' }
  | { readonly kind: 'reload-failed'; readonly reason: string }
  | { readonly kind: 'failed'; readonly reason: string }
  | { readonly kind: 'unloaded'; readonly failure: string | undefined };

export interface ModelEntry {
  readonly name: string;
  /** With namespacing, the repository folder the model came from ('' for a load request's own files). */
  readonly namespace?: string;
  readonly dir: string;
  /** Versions selected by the policy, highest first. */
  readonly versions: ReadonlyMap<number, ModelVersion>;
  readonly state: ModelState;
  /** What the model folder held when it was read; polling compares it. */
  readonly fingerprint?: string;
  /** A temporary folder holding the files a load request sent; removed when the entry is replaced. */
  readonly overrideDir?: string;
}

/** Why the model as a whole could not load, if it could not (also after it was unloaded). */
export function modelFailure(entry: ModelEntry): string | undefined {
  switch (entry.state.kind) {
    case 'failed': return entry.state.reason;
    case 'unloaded': return entry.state.failure;
    default: return undefined;
  }
}

/** Whether the entry is in service: not unloaded, with a READY version. */
export function isServing(entry: ModelEntry | undefined): boolean {
  return entry !== undefined && entry.state.kind !== 'unloaded' && [...entry.versions.values()].some((v) => v.state === 'READY');
}

/** The entry taken out of service on request, still listed. */
export function unloadedEntry(entry: ModelEntry): ModelEntry {
  return { ...entry, state: { kind: 'unloaded', failure: modelFailure(entry) } };
}
