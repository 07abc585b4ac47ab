#!/usr/bin/env -S node --no-node-snapshot
// The `switchyard` executable (npx switchyard ...). The sources are
// TypeScript run through tsx, so register its loader before importing them.
// --no-node-snapshot: isolated-vm (TypeScript models) asks for it on Node 20 and later.
import { register } from 'tsx/esm/api';

register();
const { main } = await import('../server/cli.ts');
await main(process.argv.slice(2));
