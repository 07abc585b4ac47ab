/**
 * SharedMemoryManager and its leases on real objects in /dev/shm: a region
 * unregistered while a request holds it stays open for that request and
 * closes when it lets go; a plan is checked whole before any region is
 * held; inputs come back in request order; close() closes every file.
 */
import assert from 'node:assert/strict';
import { readdir, readFile, readlink, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { after, test } from 'node:test';
import { SwitchyardError } from '../../../engine/errors.ts';
import { SharedMemoryManager } from '../../../engine/memory/shared-memory-manager.ts';
import { SHARED_MEMORY_DIRECTORY } from '../../../engine/memory/shared-memory-region.ts';
import type { SharedMemoryPlan } from '../../../engine/memory/shared-memory-lease.ts';
import type { Tensor } from '../../../engine/tensor.ts';

const KEY = `/switchyard_unit_${process.pid}`;
const FILE = join(SHARED_MEMORY_DIRECTORY, KEY.slice(1));

async function openDescriptors(): Promise<number> {
  let count = 0;
  for (const fd of await readdir('/proc/self/fd')) {
    const link = await readlink(`/proc/self/fd/${fd}`).catch(() => '');
    if (link === FILE || link === `${FILE} (deleted)`) count++;
  }
  return count;
}

/** 0..15 as INT32 bytes. */
const DATA = Buffer.from(Int32Array.from({ length: 16 }, (_, i) => i).buffer);

const plan = (region: string, offset = 0, byteSize = 16): SharedMemoryPlan => ({
  inputs: [{ index: 1, name: 'B', datatype: 'INT32', shape: [4], ref: { region, offset, byteSize } }],
  outputs: new Map([['OUT', { region, offset: 48, byteSize: 16 }]]),
});

after(async () => {
  await rm(FILE, { force: true });
});

test('a region unregistered while a lease holds it serves that lease, then closes when the lease is released', async () => {
  await writeFile(FILE, DATA);
  const manager = new SharedMemoryManager({ allowClient: true });
  await manager.register('r', KEY, 0, 64);
  const lease = manager.lease(plan('r', 16));
  await manager.unregister('r');
  assert.deepEqual(manager.status(), [], 'the name leaves the registry at once');
  await manager.register('r', KEY, 0, 64);
  assert.equal(await openDescriptors(), 2, 'the same name may be registered again while the old region is still held');
  await manager.unregister('r');
  assert.equal(await openDescriptors(), 1, 'the new, unheld region closed at once');

  const a: Tensor = { name: 'A', datatype: 'INT32', shape: [4], raw: new Uint8Array(16) };
  const c: Tensor = { name: 'C', datatype: 'INT32', shape: [4], raw: new Uint8Array(16) };
  const inputs = await lease.readInputs('m', [a, c], 100);
  assert.deepEqual(inputs.map((t) => t.name), ['A', 'B', 'C'], 'inputs in request order');
  assert.deepEqual([...new Int32Array(inputs[1]!.raw.slice().buffer)], [4, 5, 6, 7]);
  await lease.writeOutputs([{ name: 'OUT', datatype: 'INT32', shape: [4], raw: new Uint8Array(Int32Array.of(-1, -2, -3, -4).buffer) }]);
  const written = await readFile(FILE);
  assert.deepEqual([...new Int32Array(written.buffer.slice(written.byteOffset + 48, written.byteOffset + 64))], [-1, -2, -3, -4]);
  await lease.release();
  await lease.release();
  assert.equal(await openDescriptors(), 0, 'released: the file is closed');
  await manager.close();
});

test('a plan is checked whole before any region is held: a bad second place holds nothing', async () => {
  await writeFile(FILE, DATA);
  const manager = new SharedMemoryManager({ allowClient: true });
  await manager.register('r', KEY, 0, 64);
  const bad: SharedMemoryPlan = { ...plan('r'), outputs: new Map([['OUT', { region: 'r', offset: 60, byteSize: 16 }]]) };
  assert.throws(() => manager.lease(bad), (err: unknown) => err instanceof SwitchyardError && /^Invalid offset \+ byte size/.test(err.message));
  await manager.unregister();
  assert.equal(await openDescriptors(), 0, 'nothing held the region, so unregister closed it');
  await manager.close();
});

test('an input whose byte size disagrees with its shape is refused before anything is read', async () => {
  await writeFile(FILE, DATA);
  const manager = new SharedMemoryManager({ allowClient: true });
  await manager.register('r', KEY, 0, 64);
  const lease = manager.lease(plan('r', 0, 12));
  await assert.rejects(lease.readInputs('m', [], 100), /^SwitchyardError: input byte size mismatch for input 'B' for model 'm'\. Expected 16, got 12$/);
  await lease.release();
  await manager.close();
});

test('close() closes every file, those of unregistered regions still held included', async () => {
  await writeFile(FILE, DATA);
  const manager = new SharedMemoryManager({ allowClient: true, maxRegions: 2 });
  await manager.register('a', KEY, 0, 64);
  await manager.register('b', KEY, 0, 64);
  await assert.rejects(manager.register('c', KEY, 0, 64), /its limit \(--max-shm-regions\)/);
  manager.lease(plan('a'));
  await manager.unregister('a');
  assert.equal(await openDescriptors(), 2);
  await manager.close();
  assert.equal(await openDescriptors(), 0);
  assert.throws(() => manager.lease(plan('b')), /Unable to find shared memory region: 'b'/);
});

test('without allowClient, register, unregister and leases are refused; status answers', async () => {
  const manager = new SharedMemoryManager();
  await assert.rejects(manager.register('r', KEY, 0, 4), /^SwitchyardError: Client shared memory is disabled/);
  await assert.rejects(manager.unregister(), /Client shared memory is disabled/);
  assert.throws(() => manager.lease(plan('r')), /Client shared memory is disabled/);
  assert.deepEqual(manager.status(), []);
  await manager.close();
});
