/**
 * BYTES tensors on the wire (HTTP binary data and gRPC raw contents): each
 * element is a 4-byte little-endian length followed by that many bytes.
 */

/** Joins byte strings into the length-prefixed wire form. */
export function encodeBytesElements(elements: readonly Uint8Array[]): Uint8Array {
  let total = 0;
  for (const element of elements) total += 4 + element.byteLength;
  const out = new Uint8Array(total);
  const view = new DataView(out.buffer);
  let offset = 0;
  for (const element of elements) {
    view.setUint32(offset, element.byteLength, true);
    out.set(element, offset + 4);
    offset += 4 + element.byteLength;
  }
  return out;
}

/** Splits the length-prefixed wire form into its elements (views, not copies). */
export function decodeBytesElements(data: Uint8Array): Uint8Array[] {
  const view = new DataView(data.buffer, data.byteOffset, data.byteLength);
  const elements: Uint8Array[] = [];
  let offset = 0;
  while (offset < data.byteLength) {
    if (offset + 4 > data.byteLength) throw new RangeError(`BYTES data ends inside the length of element ${elements.length}`);
    const length = view.getUint32(offset, true);
    offset += 4;
    if (offset + length > data.byteLength) {
      throw new RangeError(`BYTES element ${elements.length} claims ${length} bytes but only ${data.byteLength - offset} remain`);
    }
    elements.push(data.subarray(offset, offset + length));
    offset += length;
  }
  return elements;
}
