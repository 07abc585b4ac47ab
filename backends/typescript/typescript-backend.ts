/** The TypeScript backend (`backend: "typescript"`): model scripts in isolates. */
import type { Backend, BackendModel, ModelLoadContext } from '../backend.ts';
import { ScriptModel } from './script-model.ts';

export class TypeScriptBackend implements Backend {
  readonly name = 'typescript';

  loadModel(context: ModelLoadContext): Promise<BackendModel> {
    return ScriptModel.create(context);
  }
}
