/**
 * Shapes shared by the OCR pipeline's steps. Plain data, no Node APIs: the
 * same modules run inside the `ocr` script's isolate and, for the bench's
 * in-process baseline and the tests, in Node itself.
 */

/** An 8-bit RGB image, rows top to bottom, 3 bytes a pixel (R, G, B). */
export interface RgbImage {
  readonly width: number;
  readonly height: number;
  readonly data: Uint8Array;
}

/** A point in image pixels: [x, y], x to the right, y down. */
export type Point = [number, number];

/** A text box: four corners, top-left, top-right, bottom-right, bottom-left, in reading order of the text. */
export type Quad = [Point, Point, Point, Point];

/** One detected text region and the mean text probability inside it. */
export interface DetectedBox {
  readonly box: Quad;
  readonly score: number;
}
