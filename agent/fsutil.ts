/** Durable file writes: a crash leaves the old file or the new one, never half of one. */
import { createHash, randomBytes } from 'node:crypto';
import { createReadStream } from 'node:fs';
import { access, link, open, rename, unlink } from 'node:fs/promises';
import { basename, dirname, join } from 'node:path';

/** Flushes a folder's entries (a rename is durable only once its folder is). */
export async function fsyncDir(dir: string): Promise<void> {
  const handle = await open(dir, 'r');
  try {
    await handle.sync();
  } finally {
    await handle.close();
  }
}

/** The temporary name beside `path`: hidden, ending in `.tmp`, so leftovers are easy to recognise. */
export function tempPathFor(path: string): string {
  return join(dirname(path), `.${basename(path)}.${randomBytes(4).toString('hex')}.tmp`);
}

/** Whether a path exists (any type; a broken link counts as absent). */
export function exists(path: string): Promise<boolean> {
  return access(path).then(
    () => true,
    () => false,
  );
}

/** Creates a new file (EEXIST if there is one), writes it and fsyncs it; a failed write leaves no file. */
export async function writeNewFileSynced(path: string, data: string | Uint8Array, mode = 0o644): Promise<void> {
  const handle = await open(path, 'wx', mode);
  try {
    await handle.writeFile(data);
    await handle.sync();
  } catch (e) {
    await handle.close();
    await unlink(path).catch(() => {});
    throw e;
  }
  await handle.close();
}

/**
 * Writes to a temporary file, fsyncs it, renames it into place and fsyncs the folder.
 * With `exclusive`, fails with EEXIST instead of replacing an existing file.
 */
export async function writeFileAtomic(path: string, data: string | Uint8Array, opts: { mode?: number; exclusive?: boolean } = {}): Promise<void> {
  const tmp = tempPathFor(path);
  await writeNewFileSynced(tmp, data, opts.mode);
  try {
    if (opts.exclusive) {
      // link() fails if the name exists, which rename() would silently replace.
      await link(tmp, path);
      await unlink(tmp);
    } else {
      await rename(tmp, path);
    }
  } catch (e) {
    await unlink(tmp).catch(() => {});
    throw e;
  }
  await fsyncDir(dirname(path));
}

/** `sha256:<hex>` of a file's bytes, read as a stream: how records name a manifest or a summary. */
export async function sha256File(path: string): Promise<string> {
  const hash = createHash('sha256');
  for await (const chunk of createReadStream(path)) hash.update(chunk as Buffer);
  return `sha256:${hash.digest('hex')}`;
}
