/** The TypeScript backend (`backend: "typescript"`): model scripts in isolates. */
import type { Backend, BackendModel, ModelLoadContext } from '../../engine/backend.ts';
import { ScriptModel } from './script-model.ts';

export class TypeScriptBackend implements Backend {
  readonly name = 'typescript';
  readonly defaultModelFilename = 'model.ts';
  /** Scripts may send any number of responses per request (request.send). */
  readonly decoupled = true;

  loadModel(context: ModelLoadContext): Promise<BackendModel> {
    return ScriptModel.create(context);
  }
}
