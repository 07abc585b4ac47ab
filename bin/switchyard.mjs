#!/usr/bin/env node
// The `switchyard` executable (npx switchyard ...). The sources are
// TypeScript run through tsx, so register its loader before importing them.
import { register } from 'tsx/esm/api';

register();
const { main } = await import('../server/cli.ts');
await main(process.argv.slice(2));
