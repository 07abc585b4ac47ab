/**
 * The isolated-vm module built for the running Node. One isolated-vm line
 * cannot serve every Node: 5.x builds only against Node 20's V8, 6.x only
 * against Node 22's and later. package.json lists both as optional
 * dependencies and npm installs the one whose `engines` match (see
 * deps/README.md), so this picks by the running Node's major version rather
 * than by whatever happens to be on disk.
 *
 * Types: 'isolated-vm-types' is a tsconfig `paths` name for whichever line's
 * isolated-vm.d.ts is installed (5 and 6 declare the same API). It is used
 * in type imports only; a path named 'isolated-vm' itself would also
 * redirect tsx's runtime require of the real package.
 */
import { createRequire } from 'node:module';
import { setFlagsFromString } from 'node:v8';
import type IsolatedVm from 'isolated-vm-types';

const NODE_MAJOR = Number(process.versions.node.split('.')[0]);

/** The optional dependency that carries isolated-vm for this Node. */
export const ISOLATED_VM_PACKAGE = NODE_MAJOR >= 22 ? 'isolated-vm-node22' : 'isolated-vm-node20';

function load(): typeof IsolatedVm {
  try {
    return createRequire(import.meta.url)(ISOLATED_VM_PACKAGE) as typeof IsolatedVm;
  } catch (err) {
    throw new Error(
      `TypeScript models need ${ISOLATED_VM_PACKAGE} (isolated-vm for Node ${process.versions.node}), which did not load; `
      + 'Switchyard supports Node 20, 22 and 24: run `npm ci` with the Node that runs the server', { cause: err });
  }
}

/*
 * Isolates made from here on have V8's gc(). The bootstrap takes it off the
 * script's global before any script code runs and keeps it for the host,
 * which collects garbage before judging that a large ctx.infer answer does
 * not fit under memory_limit_mb (isolated-vm aborts the process on a copy
 * that does not fit, so the host must judge first, and answers a script let
 * go would otherwise count against it).
 */
setFlagsFromString('--expose-gc');

export const isolatedVm = load();
