/**
 * deploy/Dockerfile builds in one stage and runs in a slim one, as a
 * non-root user, with tini forwarding SIGTERM to the switchyard CLI.
 */
import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import { REPO_ROOT, readDeployFile } from './deploy-files.ts';
import { lastOf, parseDockerfile, type Stage } from './dockerfile.ts';

const dockerfile = parseDockerfile(readDeployFile('Dockerfile'));
const runtime = dockerfile.stages.at(-1)!;
const build = dockerfile.stages[0]!;

function runs(stage: Stage): string {
  return stage.instructions.filter((i) => i.keyword === 'RUN').map((i) => i.text).join('\n');
}

test('multi-stage: a build stage, then a node:24-bookworm-slim runtime stage (the current LTS, by default)', () => {
  assert.ok(dockerfile.stages.length >= 2, `${dockerfile.stages.length} FROM stage(s)`);
  assert.equal(dockerfile.globalArgs.get('NODE_VERSION'), '24', 'ARG NODE_VERSION defaults to the current LTS');
  assert.match(build.from, /^node:24-bookworm(-slim)?$/);
  assert.equal(runtime.from, 'node:24-bookworm-slim');
  assert.ok(build.name, 'the build stage is named');
  assert.ok(runtime.instructions.some((i) => i.keyword === 'COPY' && i.words.includes(`--from=${build.name}`)), 'the runtime stage copies from the build stage');
});

test('the build stage has the node-gyp toolchain, installs from the lockfile with deps/, and prunes dev dependencies', () => {
  const install = runs(build);
  for (const tool of ['python3', 'make', 'g++']) assert.match(install, new RegExp(`apt-get install[^\\n]*\\s${tool.replace('+', '\\+')}(\\s|$)`), `${tool} installed`);
  const npmCi = build.instructions.findIndex((i) => i.keyword === 'RUN' && /\bnpm ci\b/.test(i.text));
  const lock = build.instructions.findIndex((i) => i.keyword === 'COPY' && i.words.includes('package-lock.json'));
  const deps = build.instructions.findIndex((i) => i.keyword === 'COPY' && i.words.some((w) => w.replace(/\/$/, '') === 'deps'));
  assert.ok(npmCi >= 0, 'npm ci');
  assert.ok(lock >= 0 && lock < npmCi, 'package-lock.json (and package.json, whose allowScripts skips the CUDA download) are copied before npm ci');
  assert.ok(deps >= 0 && deps < npmCi, 'deps/ (the local package behind isolated-vm-node20) is copied before npm ci');
  assert.match(build.instructions.filter((i) => i.keyword === 'ENV').map((i) => i.text).join('\n'), /ONNXRUNTIME_NODE_INSTALL=skip/,
    'the CUDA download is skipped also by an npm that ignores allowScripts');
  assert.match(install, /npm prune --omit=dev/);
  assert.doesNotMatch(runs(runtime), /\b(g\+\+|make|python3)\b/, 'no compiler in the runtime stage');
});

test('the runtime stage runs as a non-root user', () => {
  const user = lastOf(runtime, 'USER');
  assert.ok(user, 'USER in the runtime stage');
  const name = user.words[0]!.split(':')[0]!;
  assert.notEqual(name, 'root');
  assert.notEqual(name, '0');
  assert.match(name, /^\d+$/, 'a numeric uid, so that runAsNonRoot can verify it');
});

test('EXPOSE 8000 8001 8002, STOPSIGNAL SIGTERM', () => {
  const exposed = runtime.instructions.filter((i) => i.keyword === 'EXPOSE').flatMap((i) => i.words.map((w) => w.replace(/\/tcp$/, '')));
  for (const port of ['8000', '8001', '8002']) assert.ok(exposed.includes(port), `EXPOSE ${port}`);
  assert.equal(lastOf(runtime, 'STOPSIGNAL')?.text, 'SIGTERM');
});

test('ENTRYPOINT: exec form, tini as PID 1, node --no-node-snapshot running bin/switchyard.mjs', () => {
  const entrypoint = lastOf(runtime, 'ENTRYPOINT');
  assert.ok(entrypoint?.execForm, 'exec form, so that no shell swallows SIGTERM');
  const words = entrypoint.words;
  assert.match(words[0]!, /(^|\/)tini$/);
  assert.equal(words[1], '--');
  assert.equal(words[2], 'node');
  assert.ok(words.includes('--no-node-snapshot'), 'isolated-vm asks for --no-node-snapshot on Node 20 and later');
  const script = words.find((w) => w.endsWith('bin/switchyard.mjs'));
  assert.ok(script, 'runs the switchyard CLI');
  assert.match(runs(runtime), /apt-get install[^\n]*\stini(\s|$)/, 'tini is installed');
  const cmd = lastOf(runtime, 'CMD');
  assert.ok(cmd?.execForm);
  assert.ok(cmd.words.includes('--model-repository=/models'));
});

test('what the Dockerfile copies from the context exists, and its .dockerignore keeps it', () => {
  const ignore = readDeployFile('Dockerfile.dockerignore').split('\n').map((l) => l.trim()).filter((l) => l && !l.startsWith('#') && !l.startsWith('!'));
  const patterns = ignore.map((p) => new RegExp(`^${p.replace(/^\//, '').replace(/[.+^${}()|[\]\\]/g, '\\$&').replace(/\*\*\//g, '(.*/)?').replace(/\*\*/g, '.*').replace(/\*/g, '[^/]*')}(/.*)?$`));
  const sources = dockerfile.stages.flatMap((s) => s.instructions)
    .filter((i) => i.keyword === 'COPY' && !i.words.some((w) => w.startsWith('--from=')))
    .flatMap((i) => i.words.filter((w) => !w.startsWith('--')).slice(0, -1));
  assert.ok(sources.length >= 5);
  for (const source of sources) {
    assert.ok(existsSync(join(REPO_ROOT, source)), `COPY ${source}: not in the repository`);
    const ignoredBy = patterns.find((p) => p.test(source.replace(/\/$/, '')));
    assert.equal(ignoredBy, undefined, `COPY ${source} is excluded by deploy/Dockerfile.dockerignore (${String(ignoredBy)})`);
  }
  for (const needed of ['bin/switchyard.mjs', 'server/cli.ts', 'engine/inference-engine.ts', 'proto/grpc_service.proto']) {
    assert.ok(sources.some((s) => needed === s || needed.startsWith(`${s.replace(/\/$/, '')}/`)), `${needed} reaches the image`);
  }
});
