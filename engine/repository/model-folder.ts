/**
 * One model's folder on disk, in Triton's layout:
 *   <model>/config.pbtxt (or .yaml / .json, or none; or pipeline.yaml for a declarative ensemble)
 *   <model>/configs/<name>.pbtxt with --model-config-name
 *   <model>/<version>/model.onnx
 */
import { readdir, readFile, stat } from 'node:fs/promises';
import { basename, join } from 'node:path';
import { PIPELINE_FILE_NAME } from '../config/pipeline-file.ts';
import { CONFIG_FILE_EXTENSIONS, CONFIG_FILE_NAMES, parseModelConfig, type ParsedModelConfig } from '../config/parse-model-config.ts';
import { confinePath } from './confined-path.ts';

/** The folder of a model that holds its named configs (--model-config-name), as in Triton. */
export const CUSTOM_CONFIG_FOLDER = 'configs';

/**
 * The model's named config, configs/<configName>.<pbtxt|yaml|yml|json>,
 * when --model-config-name is given and the folder has one.
 */
async function readNamedConfig(dir: string, configName: string): Promise<ParsedModelConfig | undefined> {
  const found: Array<[string, string]> = [];
  for (const extension of CONFIG_FILE_EXTENSIONS) {
    const relative = `${CUSTOM_CONFIG_FOLDER}/${configName}${extension}`;
    const confined = await confinePath(dir, relative);
    if (confined.problem !== undefined) throw new Error(`${join(dir, relative)} ${confined.problem}; a model's config must be a file in its folder`);
    const text = await readFile(confined.path, 'utf8').catch((err: NodeJS.ErrnoException) => {
      if (err.code === 'ENOENT' || err.code === 'ENOTDIR') return undefined;
      throw err;
    });
    if (text !== undefined) found.push([join(dir, relative), text]);
  }
  if (found.length > 1) {
    throw new Error(`${dir} has ${found.map(([file]) => basename(file)).join(' and ')} in ${CUSTOM_CONFIG_FOLDER}/ for --model-config-name=${configName}; keep one`);
  }
  const [file, text] = found[0] ?? [];
  return file === undefined ? undefined : parseModelConfig(file, text!);
}

/** The config a model folder holds (the named one first, with `configName`), undefined if none. */
export async function readModelFolderConfig(dir: string, configName: string | undefined): Promise<ParsedModelConfig | undefined> {
  if (configName !== undefined) {
    const named = await readNamedConfig(dir, configName);
    if (named) return named;
  }
  const texts: Array<[string, string]> = [];
  for (const fileName of CONFIG_FILE_NAMES) {
    const file = join(dir, fileName);
    const confined = await confinePath(dir, fileName);
    if (confined.problem !== undefined) throw new Error(`${file} ${confined.problem}; a model's config must be a file in its folder`);
    const text = await readFile(confined.path, 'utf8').catch((err: NodeJS.ErrnoException) => {
      if (err.code === 'ENOENT') return undefined;
      throw err;
    });
    if (text !== undefined) texts.push([file, text]);
  }
  const pipeline = texts.find(([file]) => basename(file) === PIPELINE_FILE_NAME);
  if (pipeline && texts.length > 1) {
    const other = texts.find((t) => t !== pipeline)![0];
    throw new Error(`${dir} has both ${basename(other)} and ${PIPELINE_FILE_NAME}; a model folder holds one config: ` +
      `keep the pipeline (it compiles to an ensemble config) or the ${basename(other)}`);
  }
  const [file, text] = texts[0] ?? [];
  return file === undefined ? undefined : parseModelConfig(file, text!);
}

/** Numbered subfolders, as numbers. Other names are ignored, as Triton does. */
export async function versionFolders(dir: string): Promise<number[]> {
  const dirents = await readdir(dir, { withFileTypes: true });
  const versions: number[] = [];
  for (const dirent of dirents) {
    if (!/^[0-9]+$/.test(dirent.name)) continue;
    const isDir = dirent.isDirectory() || (dirent.isSymbolicLink() && (await stat(join(dir, dirent.name))).isDirectory());
    const version = Number(dirent.name);
    if (isDir && version > 0) versions.push(version);
  }
  return versions;
}
