/**
 * A load request's own model (Triton's load parameters): a config sent as
 * JSON text, and files ('file:1/model.onnx') written into a temporary model
 * folder that stands in for the repository's.
 */
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { parseModelConfig, type ParsedModelConfig } from '../config/parse-model-config.ts';
import { relativePathProblem } from './confined-path.ts';

/** What a load request brings instead of the repository's files (Triton's load parameters). */
export interface ModelOverride {
  /** The model config as JSON text (parameters.config). */
  readonly config?: string;
  /**
   * Files by path relative to the model folder, e.g. '1/model.onnx'
   * (parameters 'file:1/model.onnx'). With files, the repository's folder
   * for the model is not read at all.
   */
  readonly files?: ReadonlyMap<string, Uint8Array>;
}

/** A load request's config: JSON text in Triton's ModelConfig form. Errors name the parameter, in place of a file name. */
export function parseOverrideConfig(name: string, text: string): ParsedModelConfig {
  const label = `parameters.config of the load request for '${name}'`;
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch (err) {
    throw new Error(`${label}: not valid JSON (${(err as Error).message})`);
  }
  if (typeof value !== 'object' || value === null || Array.isArray(value)) throw new Error(`${label}: must be a JSON object holding the model config`);
  return parseModelConfig(label, text);
}

/**
 * Writes a load request's files into a fresh temporary model folder. Each
 * path stays inside it: no absolute paths, no '..', no empty parts.
 */
export async function writeOverrideFiles(name: string, files: ReadonlyMap<string, Uint8Array>): Promise<string> {
  for (const path of files.keys()) {
    const problem = relativePathProblem(path) ?? (path.split('/').some((p) => p === '' || p === '.') ? "has an empty or '.' part" : undefined);
    if (problem !== undefined) {
      throw new Error(`file override 'file:${path}' ${problem}: a path relative to the model folder is expected, such as 'file:1/model.onnx'`);
    }
  }
  const dir = await mkdtemp(join(tmpdir(), `switchyard-${name}-`));
  for (const [path, bytes] of files) {
    await mkdir(dirname(join(dir, path)), { recursive: true });
    await writeFile(join(dir, path), bytes);
  }
  return dir;
}

/** Removes the temporary folder of a load request's files, if there is one. */
export async function removeOverrideFiles(dir: string | undefined): Promise<void> {
  if (dir) await rm(dir, { recursive: true, force: true });
}
