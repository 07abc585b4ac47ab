/** Server and model descriptions, in the KServe v2 shapes both transports return. */

/** `GET /v2` / ServerMetadata. */
export interface ServerMetadata {
  name: string;
  version: string;
  extensions: string[];
}

/** One input or output of a model; -1 marks a variable dimension. */
export interface TensorMetadata {
  name: string;
  datatype: string;
  shape: number[];
}

/** `GET /v2/models/<m>` / ModelMetadata. */
export interface ModelMetadata {
  name: string;
  versions: string[];
  platform: string;
  inputs: TensorMetadata[];
  outputs: TensorMetadata[];
}

/** One entry of the repository index; fields the server leaves empty are omitted. */
export interface RepositoryModel {
  name: string;
  version?: string;
  state?: string;
  reason?: string;
}

/** Builds a RepositoryModel, leaving out empty fields so both transports give equal objects. */
export function repositoryModel(fields: { name: string; version?: unknown; state?: unknown; reason?: unknown }): RepositoryModel {
  const text = (v: unknown): string | undefined => (typeof v === 'string' && v !== '' ? v : undefined);
  const version = text(fields.version);
  const state = text(fields.state);
  const reason = text(fields.reason);
  return {
    name: fields.name,
    ...(version !== undefined ? { version } : {}),
    ...(state !== undefined ? { state } : {}),
    ...(reason !== undefined ? { reason } : {}),
  };
}
