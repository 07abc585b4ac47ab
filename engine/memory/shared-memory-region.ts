/**
 * One registered system shared memory region: a POSIX shared memory object
 * (a file under /dev/shm), an offset into it and a size. Node cannot map
 * memory, so the region holds the file open and tensors move through
 * positional reads and writes on that descriptor. They run on libuv's
 * thread pool, so a large tensor never blocks the event loop, and each
 * costs one copy between the file and a buffer of this server's own.
 *
 * A region may be unregistered while requests still use it; it then closes
 * its file once the last of them lets go (see hold/release), as Triton
 * keeps an unregistered region mapped until its in-flight requests finish.
 */
import { constants } from 'node:fs';
import { open, type FileHandle } from 'node:fs/promises';
import { join } from 'node:path';
import { quoted, serverError } from '../errors.ts';
import { allocateOwned } from './owned-buffer.ts';

/** Where POSIX shm_open keeps its objects on Linux; every key names a file directly in it. */
export const SHARED_MEMORY_DIRECTORY = '/dev/shm';

/** Keys Triton keeps for the shared memory its Python backend creates; clients may not register them. */
const RESERVED_KEY_PREFIX = 'triton_python_backend_shm_region_';

/** Longest file name (NAME_MAX) a key may name. */
const MAX_KEY_FILE_NAME = 255;

/** What a status call reports of one region, in Triton's JSON field names. */
export interface SharedMemoryRegionStatus {
  readonly name: string;
  readonly key: string;
  readonly offset: number;
  readonly byte_size: number;
}

/**
 * The file a shm key names under /dev/shm, as glibc's shm_open resolves it:
 * leading slashes dropped, and what is left must be one file name, so no
 * key reaches outside the folder. Refused with Triton's wording.
 */
export function sharedMemoryFile(region: string, key: string): string {
  const invalid = (why: string): Error => serverError('BAD_REQUEST', {
    detail: `cannot register shared memory region '${quoted(region)}' - invalid shm key '${quoted(key)}': ${why}`,
  });
  const name = key.replace(/^\/+/, '');
  if (name === '') throw invalid('a key is a name such as "/input_data", not only slashes');
  if (name.startsWith(RESERVED_KEY_PREFIX)) {
    throw serverError('BAD_REQUEST', {
      detail: `cannot register shared memory region '${quoted(region)}' with key '${quoted(key)}' as the key contains the reserved prefix '${RESERVED_KEY_PREFIX}'`,
    });
  }
  if (name.includes('/')) throw invalid("a key may contain '/' only at its start: it names one object in /dev/shm");
  if (name === '.' || name === '..') throw invalid(`'${name}' is not the name of a shared memory object`);
  if (name.includes('\0')) throw invalid('it contains a NUL character');
  if (Buffer.byteLength(name) > MAX_KEY_FILE_NAME) throw invalid(`it is longer than ${MAX_KEY_FILE_NAME} bytes`);
  return join(SHARED_MEMORY_DIRECTORY, name);
}

/** True when [offset, offset + byteSize) lies within `size` bytes; every value a safe integer. */
function fits(offset: number, byteSize: number, size: number): boolean {
  return Number.isSafeInteger(offset) && Number.isSafeInteger(byteSize) && offset >= 0 && byteSize >= 0 && offset + byteSize <= size;
}

export class SharedMemoryRegion {
  /** Requests holding the region; its file stays open while any does. */
  private holders = 0;
  private retired = false;
  private closing: Promise<void> | undefined;

  private constructor(
    readonly name: string,
    readonly key: string,
    /** Where the region starts in the file. */
    readonly offset: number,
    readonly byteSize: number,
    private readonly file: FileHandle,
  ) {}

  /**
   * Opens the object `key` names and checks that the region lies within it.
   * Symbolic links are not followed and only regular files are taken, so a
   * link planted in /dev/shm cannot lead elsewhere.
   */
  static async open(name: string, key: string, offset: number, byteSize: number): Promise<SharedMemoryRegion> {
    const path = sharedMemoryFile(name, key);
    let file: FileHandle;
    try {
      file = await open(path, constants.O_RDWR | constants.O_NOFOLLOW);
    } catch (err) {
      const code = (err as NodeJS.ErrnoException).code;
      const detail = code === 'ENOENT' ? `no such object in ${SHARED_MEMORY_DIRECTORY}`
        : code === 'ELOOP' ? 'it is a symbolic link' : code === 'EACCES' ? 'permission denied' : code ?? (err as Error).message;
      throw serverError('SHM_OPEN_FAILED', { key, detail });
    }
    try {
      const stats = await file.stat();
      if (!stats.isFile()) throw serverError('SHM_INVALID_REGION', { key, detail: 'not a regular file' });
      if (!fits(offset, byteSize, stats.size)) {
        throw serverError('BAD_REQUEST', {
          detail: `failed to register shared memory region '${quoted(name)}': invalid args (offset ${offset} + byte_size ${byteSize} ` +
            `lies beyond the end of '${quoted(key)}', which holds ${stats.size} bytes)`,
        });
      }
      return new SharedMemoryRegion(name, key, offset, byteSize, file);
    } catch (err) {
      await file.close();
      throw err;
    }
  }

  /** Whether the file is closed (or closing). */
  get isClosed(): boolean {
    return this.closing !== undefined;
  }

  status(): SharedMemoryRegionStatus {
    return { name: this.name, key: this.key, offset: this.offset, byte_size: this.byteSize };
  }

  /** Checks a tensor's place in the region, with Triton's errors. */
  checkRange(offset: number, byteSize: number): void {
    if (!Number.isSafeInteger(offset) || offset < 0 || offset >= this.byteSize) {
      throw serverError('BAD_REQUEST', {
        detail: `Invalid offset for shared memory region: '${quoted(this.name)}' (offset ${offset}, the region holds ${this.byteSize} bytes)`,
      });
    }
    if (!fits(offset, byteSize, this.byteSize)) {
      throw serverError('BAD_REQUEST', {
        detail: `Invalid offset + byte size for shared memory region: '${quoted(this.name)}' ` +
          `(offset ${offset} + byte size ${byteSize} is past its ${this.byteSize} bytes)`,
      });
    }
  }

  /** A request starts using the region: its file stays open until the matching release(). */
  hold(): void {
    this.holders++;
  }

  /** A request is done with the region; the last one out closes an unregistered region's file. */
  release(): Promise<void> {
    this.holders--;
    return this.retired && this.holders === 0 ? this.close() : Promise.resolve();
  }

  /** Unregistered: closes the file now when nobody holds the region, else when the last holder releases it. */
  retire(): Promise<void> {
    this.retired = true;
    return this.holders === 0 ? this.close() : Promise.resolve();
  }

  /** Closes the file whoever holds the region (server shutdown); Node lets operations under way finish first. */
  close(): Promise<void> {
    this.retired = true;
    this.closing ??= this.file.close().catch(() => undefined);
    return this.closing;
  }

  /** `byteSize` bytes from `offset` into the region, in a fresh buffer of this server's own (one the engine may move). */
  async read(offset: number, byteSize: number): Promise<Uint8Array> {
    this.checkRange(offset, byteSize);
    const bytes = new Uint8Array(allocateOwned(byteSize));
    let done = 0;
    while (done < byteSize) {
      const { bytesRead } = await this.io(() => this.file.read(bytes, done, byteSize - done, this.offset + offset + done));
      if (bytesRead === 0) throw this.shrunk(offset + byteSize);
      done += bytesRead;
    }
    return bytes;
  }

  /** Writes `data` at `offset` into the region. Never grows the file: a file cut shorter since registration is an error. */
  async write(offset: number, data: Uint8Array): Promise<void> {
    if (data.byteLength === 0) return;
    this.checkRange(offset, data.byteLength);
    const end = this.offset + offset + data.byteLength;
    const { size } = await this.io(() => this.file.stat());
    if (size < end) throw this.shrunk(offset + data.byteLength);
    let done = 0;
    while (done < data.byteLength) {
      const { bytesWritten } = await this.io(() => this.file.write(data, done, data.byteLength - done, this.offset + offset + done));
      done += bytesWritten;
    }
  }

  private async io<T>(operation: () => Promise<T>): Promise<T> {
    try {
      return await operation();
    } catch (err) {
      throw serverError('SHM_ACCESS_FAILED', { region: this.name, detail: `cannot access '${this.key}': ${(err as Error).message}` });
    }
  }

  private shrunk(needed: number): Error {
    return serverError('SHM_ACCESS_FAILED', {
      region: this.name,
      detail: `'${this.key}' no longer holds the ${needed} bytes past offset ${this.offset} this request needs: the file was truncated after the region was registered`,
    });
  }
}
