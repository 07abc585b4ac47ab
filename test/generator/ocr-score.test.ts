import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { characterAccuracy, editDistance, normalizeForScoring } from '../helpers/ocr-score.ts';

describe('characterAccuracy', () => {
  it('scores identical text 1 and ignores whitespace', () => {
    assert.equal(characterAccuracy('Invoice 2026-12-07 total 42.50', 'Invoice 2026-12-07 total 42.50'), 1);
    assert.equal(characterAccuracy('Invoice 2026-12-07 total 42.50', 'Invoice2026-12-07total42.50'), 1);
    assert.equal(characterAccuracy('a b', ' a\u3000\tb\n'), 1);
  });

  it('folds full-width forms by NFKC and CJK punctuation by the table', () => {
    assert.equal(characterAccuracy('Stop, look: (now)! ok? 12', 'Ｓｔｏｐ，ｌｏｏｋ：（ｎｏｗ）！ｏｋ？１２'), 1);
    assert.equal(characterAccuracy('He said "yes", then \'no\'. A-B <x> [y]', 'He said “yes”、then ‘no’。A—B 《x》 【y】'), 1);
    assert.equal(normalizeForScoring('wait…'), 'wait...');
    assert.equal(characterAccuracy('ab.cd', 'ab·cd'), 0.8, 'the middle dot is not read as a full stop');
  });

  it('takes one substitution in 20 characters off 5%', () => {
    const expected = 'abcdefghij klmnopqrst';
    assert.equal(normalizeForScoring(expected).length, 20);
    assert.equal(characterAccuracy(expected, 'abcdefghij klmnopqrsX'), 0.95);
    assert.equal(characterAccuracy(expected, 'abcdefghijklmnopqrst!'), 0.95, 'one insertion');
    assert.equal(characterAccuracy(expected, 'abcdefghijklmnopqrs'), 0.95, 'one deletion');
  });

  it('scores empty output 0 and never below 0', () => {
    assert.equal(characterAccuracy('Switchyard', ''), 0);
    assert.equal(characterAccuracy('ab', 'completely different and longer'), 0);
    assert.equal(characterAccuracy('', ''), 1);
    assert.equal(characterAccuracy(' ', 'x'), 0);
  });

  it('counts code points, not UTF-16 units', () => {
    assert.equal(editDistance('a\u{1F600}b', 'a\u{1F601}b'), 1);
    assert.equal(editDistance('kitten', 'sitting'), 3);
    assert.equal(editDistance('', 'abc'), 3);
  });
});
