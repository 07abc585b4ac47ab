/**
 * Regenerates the ONNX models of the bundled repository. Deterministic: a
 * test checks that running it again gives byte-identical files.
 *   npm run generate-models
 */
import { readFileSync } from 'node:fs';
import { mkdir, writeFile } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { charLanguageModel } from '../generator/char-language-model.ts';
import { addSubModel, ctcBestPathModel, featureClassifierModel, featureNormalizerModel, featureOutlierModel } from '../generator/models.ts';

export const PIPELINES_DIR = dirname(fileURLToPath(import.meta.url));

/** The text chatbot_lm's weights are counted from. */
export const CHATBOT_CORPUS = join(PIPELINES_DIR, '..', 'generator', 'text', 'switchyard.txt');

/** Repository-relative path -> model bytes. */
export function bundledModels(): Map<string, Uint8Array> {
  return new Map([
    ['add_sub/1/model.onnx', addSubModel('INT32', 16)],
    ['feature_classifier/1/model.onnx', featureClassifierModel()],
    ['feature_normalizer/1/model.onnx', featureNormalizerModel()],
    ['feature_outlier/1/model.onnx', featureOutlierModel()],
    ['chatbot_lm/1/model.onnx', charLanguageModel(readFileSync(CHATBOT_CORPUS, 'utf8'))],
    // PP-OCRv4's recogniser answers 6,625 classes: the CTC blank, 6,623 dictionary symbols and a space.
    ['ocr_ctc/1/model.onnx', ctcBestPathModel(6625)],
  ]);
}

export async function writeBundledModels(root = PIPELINES_DIR): Promise<string[]> {
  const written: string[] = [];
  for (const [path, bytes] of bundledModels()) {
    const file = join(root, path);
    await mkdir(dirname(file), { recursive: true });
    await writeFile(file, bytes);
    written.push(file);
  }
  return written;
}

if (process.argv[1] && fileURLToPath(import.meta.url) === process.argv[1]) {
  for (const file of await writeBundledModels()) console.log(`wrote ${file}`);
}
