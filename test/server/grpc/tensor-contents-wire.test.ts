/**
 * InferTensorContents read off the wire: packed and unpacked runs (and
 * both mixed, across several `contents` occurrences), int32 negatives as
 * ten-byte varints, 64-bit extremes, bool as any varint, fp32/fp64 bits
 * kept exactly (NaN payloads, infinities, -0), the narrow types' ranges,
 * and malformed data refused rather than read past.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { grpcType } from '../../../server/grpc/grpc-schema.ts';
import { protoVarint } from '../../helpers/grpc-raw-client.ts';
import { LoopSlice } from '../../../server/grpc/loop-slice.ts';
import { countContents, readBytesContents, readFixedContents, type ContentsWire } from '../../../server/grpc/tensor-contents-wire.ts';
import type { FixedDataType } from '../../../engine/tensor.ts';

const contentsType = grpcType('inference.InferTensorContents');

/** protobufjs's own encoding of InferTensorContents (packed, as proto3 writes repeated scalars). */
const packed = (contents: Record<string, unknown>): Buffer => Buffer.from(contentsType.encode(contentsType.fromObject(contents)).finish());

const varint = protoVarint;

/** Unpacked elements of a varint field: a tag before each. */
const unpackedVarints = (field: number, values: readonly bigint[]): Buffer => Buffer.concat(values.flatMap((v) => [varint(BigInt(field * 8)), varint(v)]));

/** Several contents occurrences laid out in one message, as an input holding them all. */
function wire(...occurrences: Buffer[]): ContentsWire {
  const spans = [];
  let at = 0;
  for (const o of occurrences) {
    spans.push({ start: at, end: at + o.byteLength });
    at += o.byteLength;
  }
  return { message: Buffer.concat(occurrences), spans };
}

async function read(contents: ContentsWire, datatype: FixedDataType): Promise<Uint8Array> {
  const slice = new LoopSlice();
  const counted = await countContents(contents, 'X', 16, slice);
  const count = [...counted.elements.values()].reduce((a, b) => a + b, 0);
  return readFixedContents(contents, 'X', datatype, count, slice);
}

const view = <T>(Ctor: new (b: ArrayBuffer, o: number, n: number) => T, raw: Uint8Array, size: number): T => new Ctor(raw.buffer as ArrayBuffer, raw.byteOffset, raw.byteLength / size);

test('int32: packed, with negatives written as ten-byte varints', async () => {
  const values = [0, 1, -1, 2147483647, -2147483648, 300];
  const bytes = packed({ int_contents: values });
  assert.ok(bytes.includes(Buffer.from([0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01])), 'protobufjs writes -1 as ten bytes');
  assert.deepEqual([...view(Int32Array, await read(wire(bytes), 'INT32'), 4)], values);
});

test('int32: unpacked, and packed and unpacked runs across two contents occurrences, in order', async () => {
  const contents = wire(
    Buffer.concat([unpackedVarints(2, [5n, -7n]), packed({ int_contents: [8, 9] })]),
    Buffer.concat([packed({ int_contents: [-10] }), unpackedVarints(2, [11n])]),
  );
  assert.deepEqual((await countContents(contents, 'X', 16, new LoopSlice())).elements, new Map([['int_contents', 6]]));
  assert.deepEqual([...view(Int32Array, await read(contents, 'INT32'), 4)], [5, -7, 8, 9, -10, 11]);
});

test('int64 and uint64 extremes keep every bit', async () => {
  const signed = [-(2n ** 63n), 2n ** 63n - 1n, -1n, 0n, 1n];
  const fromPacked = await read(wire(packed({ int64_contents: signed.map(String) })), 'INT64');
  assert.deepEqual([...view(BigInt64Array, fromPacked, 8)], signed);
  const fromUnpacked = await read(wire(unpackedVarints(3, signed)), 'INT64');
  assert.deepEqual([...view(BigInt64Array, fromUnpacked, 8)], signed);
  const unsigned = [2n ** 64n - 1n, 2n ** 63n, 0n, 4294967296n];
  assert.deepEqual([...view(BigUint64Array, await read(wire(packed({ uint64_contents: unsigned.map(String) })), 'UINT64'), 8)], unsigned);
});

test('uint32, and the narrow types refused outside their range', async () => {
  assert.deepEqual([...view(Uint32Array, await read(wire(packed({ uint_contents: [0, 4294967295] })), 'UINT32'), 4)], [0, 4294967295]);
  assert.deepEqual([...view(Int8Array, await read(wire(packed({ int_contents: [-128, 127, -1] })), 'INT8'), 1)], [-128, 127, -1]);
  assert.deepEqual([...view(Uint16Array, await read(wire(packed({ uint_contents: [65535, 1] })), 'UINT16'), 2)], [65535, 1]);
  await assert.rejects(read(wire(packed({ int_contents: [1, 128] })), 'INT8'), { message: "input 'X': element 1 is 128, outside the INT8 range -128..127" });
  await assert.rejects(read(wire(packed({ int_contents: [-32769] })), 'INT16'), /element 0 is -32769, outside the INT16 range/);
  await assert.rejects(read(wire(packed({ uint_contents: [256] })), 'UINT8'), /element 0 is 256, outside the UINT8 range 0..255/);
});

test('bool: any non-zero varint is true, high bits included', async () => {
  const contents = wire(Buffer.concat([packed({ bool_contents: [true, false] }), unpackedVarints(1, [2n, 2n ** 40n, 0n])]));
  assert.deepEqual([...await read(contents, 'BOOL')], [1, 0, 1, 1, 0]);
});

test('fp32 and fp64: bit patterns copied exactly, packed and unpacked', async () => {
  const f32 = Buffer.alloc(16);
  [0x7fc00001, 0xff800000, 0x80000000, 0x3f800000].forEach((bits, i) => f32.writeUInt32LE(bits, i * 4));
  const packedF32 = Buffer.concat([varint(BigInt(6 * 8 + 2)), varint(16n), f32]);
  assert.deepEqual(Buffer.from(await read(wire(packedF32), 'FP32')), f32);
  const f64 = Buffer.alloc(24);
  f64.writeBigUInt64LE(0x7ff0000000000001n, 0);
  f64.writeDoubleLE(Number.POSITIVE_INFINITY, 8);
  f64.writeDoubleLE(-0, 16);
  const unpackedF64 = Buffer.concat([0, 8, 16].flatMap((at) => [varint(BigInt(7 * 8 + 1)), f64.subarray(at, at + 8)]));
  assert.deepEqual(Buffer.from(await read(wire(unpackedF64), 'FP64')), f64);
});

test('counts name every field with elements, and only those', async () => {
  const counted = await countContents(wire(packed({ fp32_contents: [1, 2], int_contents: [], bytes_contents: [Buffer.from('ab')] })), 'X', 16, new LoopSlice());
  assert.deepEqual(counted.elements, new Map([['fp32_contents', 2], ['bytes_contents', 1]]));
  assert.equal(counted.bytesContentsBytes, 2);
});

test('bytes_contents: the wire form, and one entry past the limit refused naming the limit', async () => {
  const contents = wire(packed({ bytes_contents: [Buffer.from('ab'), Buffer.alloc(0), Buffer.from('c')] }));
  const counted = await countContents(contents, 'TEXT', 3, new LoopSlice());
  assert.deepEqual([...await readBytesContents(contents, 3, counted.bytesContentsBytes, new LoopSlice())], [2, 0, 0, 0, 97, 98, 0, 0, 0, 0, 1, 0, 0, 0, 99]);
  await assert.rejects(countContents(contents, 'TEXT', 2, new LoopSlice()), {
    code: 'BYTES_ELEMENTS_LIMIT', message: "input 'TEXT' has more than 2 BYTES elements; the limit is 2 per tensor (--max-bytes-elements)",
  });
});

test('malformed contents are refused, never read past', async () => {
  const count = (bytes: Buffer): Promise<unknown> => countContents(wire(bytes), 'X', 16, new LoopSlice());
  const truncatedPacked = Buffer.concat([varint(BigInt(2 * 8 + 2)), varint(2n), Buffer.from([0x01, 0x80])]);
  await assert.rejects(count(truncatedPacked), /malformed InferTensorContents message: a field runs past the end of the message/);
  const truncatedUnpacked = Buffer.concat([varint(BigInt(2 * 8)), Buffer.from([0xff, 0xff])]);
  await assert.rejects(count(truncatedUnpacked), /runs past the end/);
  const elevenBytes = Buffer.concat([varint(BigInt(3 * 8)), Buffer.alloc(10, 0xff), Buffer.from([0x01])]);
  await assert.rejects(count(elevenBytes), /a varint is longer than 10 bytes/);
  const ragged = Buffer.concat([varint(BigInt(6 * 8 + 2)), varint(6n), Buffer.alloc(6)]);
  await assert.rejects(count(ragged), /packed fp32_contents holds 6 bytes, not a whole number of 4-byte values/);
  const wrongWireType = Buffer.concat([varint(BigInt(6 * 8)), varint(1n)]);
  await assert.rejects(count(wrongWireType), /fp32_contents has wire type 0, which that field never uses/);
  const pastTheEnd = Buffer.concat([varint(BigInt(8 * 8 + 2)), varint(100n), Buffer.alloc(3)]);
  await assert.rejects(count(pastTheEnd), /runs past the end/);
});

test('unknown fields are skipped, as proto3 requires', async () => {
  const contents = wire(Buffer.concat([varint(BigInt(20 * 8)), varint(7n), packed({ int_contents: [4] }), varint(BigInt(21 * 8 + 2)), varint(1n), Buffer.from('z')]));
  assert.deepEqual([...view(Int32Array, await read(contents, 'INT32'), 4)], [4]);
});
