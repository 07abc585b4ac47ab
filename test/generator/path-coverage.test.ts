import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import type { PathCommand } from '../../generator/path-coverage.ts';
import { pathCoverage } from '../../generator/path-coverage.ts';

function rectangle(x0: number, y0: number, x1: number, y1: number, clockwise = true): PathCommand[] {
  const corners = clockwise ? [[x1, y0], [x1, y1], [x0, y1]] : [[x0, y1], [x1, y1], [x1, y0]];
  return [{ type: 'M', x: x0, y: y0 }, ...corners.map(([x, y]) => ({ type: 'L' as const, x: x!, y: y! })), { type: 'Z' }];
}

describe('pathCoverage', () => {
  it('covers whole pixels fully and cut pixels by their covered fraction', () => {
    const coverage = pathCoverage([rectangle(1, 1, 3.5, 3)], 5, 4);
    const row = (y: number): number[] => Array.from(coverage.subarray(y * 5, y * 5 + 5));
    assert.deepEqual(row(0), [0, 0, 0, 0, 0]);
    assert.deepEqual(row(1), [0, 1, 1, 0.5, 0]);
    assert.deepEqual(row(2), [0, 1, 1, 0.5, 0]);
    assert.deepEqual(row(3), [0, 0, 0, 0, 0]);
  });

  it('fills by non-zero winding: overlapping outlines stay filled, a reversed inner one cuts a hole', () => {
    const overlap = pathCoverage([rectangle(0, 0, 4, 4), rectangle(1, 1, 3, 3)], 4, 4);
    assert.equal(overlap[1 * 4 + 1], 1);
    const hole = pathCoverage([[...rectangle(0, 0, 4, 4), ...rectangle(1, 1, 3, 3, false)]], 4, 4);
    assert.equal(hole[1 * 4 + 1], 0);
    assert.equal(hole[0], 1);
  });

  it('closes open subpaths, flattens curves and applies the transform', () => {
    const open: PathCommand[] = [{ type: 'M', x: 0, y: 0 }, { type: 'L', x: 4, y: 0 }, { type: 'L', x: 4, y: 4 }, { type: 'L', x: 0, y: 4 }];
    assert.ok(pathCoverage([open], 4, 4).every((c) => c === 1), 'an unclosed square is filled');
    // A circle of radius 8 from four cubic quarters: area 64π.
    const k = 0.5523 * 8;
    const circle: PathCommand[] = [
      { type: 'M', x: 18, y: 10 },
      { type: 'C', x1: 18, y1: 10 + k, x2: 10 + k, y2: 18, x: 10, y: 18 },
      { type: 'C', x1: 10 - k, y1: 18, x2: 2, y2: 10 + k, x: 2, y: 10 },
      { type: 'Q', x1: 2, y1: 2, x: 10, y: 2 },
      { type: 'C', x1: 10 + k, y1: 2, x2: 18, y2: 10 - k, x: 18, y: 10 },
      { type: 'Z' },
    ];
    // Three circle quarters, and a parabolic quarter: the triangle to the centre (32) plus 2/3 of the chord-to-control triangle (32).
    const area = pathCoverage([circle], 20, 20).reduce((sum, c) => sum + c, 0);
    const expected = (3 / 4) * Math.PI * 64 + 32 + (2 / 3) * 32;
    // Chords fall inside a convex curve: up to about 2/3 of the flattening tolerance (0.05 px) times the perimeter (~50 px) is lost.
    assert.ok(area < expected && expected - area < 2, `area ${area}, expected just under ${expected}`);
    const moved = pathCoverage([rectangle(0, 0, 1, 1)], 4, 4, [1, 0, 0, 1, 2, 3]);
    assert.equal(moved[3 * 4 + 2], 1);
    assert.equal(moved.reduce((sum, c) => sum + c, 0), 1);
  });
});
