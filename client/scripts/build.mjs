/**
 * Builds the package into client/dist: JavaScript and .d.ts from the
 * TypeScript sources, plus the .proto files the gRPC transport reads, so
 * the built package needs nothing outside client/.
 */
import { spawnSync } from 'node:child_process';
import { copyFileSync, mkdirSync, rmSync } from 'node:fs';
import { createRequire } from 'node:module';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const clientDir = fileURLToPath(new URL('..', import.meta.url));
const distDir = path.join(clientDir, 'dist');
const protoSource = path.join(clientDir, '..', 'proto');
const PROTOS = ['grpc_service.proto', 'model_config.proto'];

rmSync(distDir, { recursive: true, force: true });

const tsc = path.join(path.dirname(createRequire(import.meta.url).resolve('typescript/package.json')), 'bin', 'tsc');
const compiled = spawnSync(process.execPath, [tsc, '-p', path.join(clientDir, 'tsconfig.json')], { stdio: 'inherit' });
if (compiled.status !== 0) {
  process.stderr.write('client build: tsc failed\n');
  process.exit(compiled.status ?? 1);
}

mkdirSync(path.join(distDir, 'proto'), { recursive: true });
for (const file of PROTOS) copyFileSync(path.join(protoSource, file), path.join(distDir, 'proto', file));
process.stdout.write(`client build: ${path.relative(process.cwd(), distDir) || 'dist'} ready\n`);
