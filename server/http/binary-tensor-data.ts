/**
 * The binary tensor data extension: tensor bytes carried after the JSON
 * header. Fixed-size types are little-endian element bytes; BYTES elements
 * are each a 4-byte little-endian length followed by the bytes.
 */
import { quoted, serverError } from '../../engine/errors.ts';
import { serializedBytesSize, type Tensor } from '../../engine/tensor.ts';

/** Splits length-prefixed BYTES data into its elements (views, not copies). */
export function parseBytesElements(name: string, data: Uint8Array): Uint8Array[] {
  const view = new DataView(data.buffer, data.byteOffset, data.byteLength);
  const elements: Uint8Array[] = [];
  let offset = 0;
  while (offset < data.byteLength) {
    if (offset + 4 > data.byteLength) {
      throw serverError('BAD_REQUEST', { detail: `input '${quoted(name)}': element byte size indicator exceeds the end of the buffer` });
    }
    const length = view.getUint32(offset, true);
    offset += 4;
    if (offset + length > data.byteLength) {
      throw serverError('BAD_REQUEST', {
        detail: `input '${quoted(name)}': element ${elements.length} claims ${length} bytes but only ${data.byteLength - offset} remain`,
      });
    }
    elements.push(data.subarray(offset, offset + length));
    offset += length;
  }
  return elements;
}

/** The wire bytes of a tensor's data. Fixed types are returned as they are, without copying. */
export function tensorBinary(tensor: Tensor): Uint8Array {
  if (tensor.datatype !== 'BYTES') return tensor.raw;
  const out = new Uint8Array(serializedBytesSize(tensor.elements));
  const view = new DataView(out.buffer);
  let offset = 0;
  for (const element of tensor.elements) {
    view.setUint32(offset, element.byteLength, true);
    out.set(element, offset + 4);
    offset += 4 + element.byteLength;
  }
  return out;
}
