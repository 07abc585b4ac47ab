import assert from 'node:assert/strict';
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { test } from 'node:test';
import { mlpModel } from '../../generator/models.ts';
import { bundledModels, PIPELINES_DIR } from '../../pipelines/generate.ts';

test('regenerating the bundled models gives byte-identical files', async () => {
  const models = bundledModels();
  assert.ok(models.size >= 2);
  for (const [path, bytes] of models) {
    const committed = await readFile(join(PIPELINES_DIR, path));
    assert.ok(Buffer.from(bytes).equals(committed), `${path} differs from a fresh generation: run npm run generate-models`);
  }
});

test('the generator is deterministic and the seed changes the weights', () => {
  const a = mlpModel({ sizes: [8, 16, 2], seed: 1 });
  const b = mlpModel({ sizes: [8, 16, 2], seed: 1 });
  const c = mlpModel({ sizes: [8, 16, 2], seed: 2 });
  assert.ok(Buffer.from(a).equals(Buffer.from(b)));
  assert.ok(!Buffer.from(a).equals(Buffer.from(c)));
});
