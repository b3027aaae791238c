/** Durable file writes: a crash leaves the old file or the new one, never half of one. */
import { randomBytes } from 'node:crypto';
import { link, lstat, open, realpath, rename, stat, unlink } from 'node:fs/promises';
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

/**
 * Writes to a temporary file, fsyncs it, renames it into place and fsyncs the folder.
 * With `exclusive`, fails with EEXIST instead of replacing an existing file.
 */
export async function writeFileAtomic(path: string, data: string | Uint8Array, opts: { mode?: number; exclusive?: boolean } = {}): Promise<void> {
  const tmp = tempPathFor(path);
  const handle = await open(tmp, 'wx', opts.mode ?? 0o644);
  try {
    await handle.writeFile(data);
    await handle.sync();
  } catch (e) {
    await handle.close();
    await unlink(tmp).catch(() => {});
    throw e;
  }
  await handle.close();
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

function ownedAndClosed(info: { uid: number; mode: number }, uid: number): boolean {
  const owner = info.uid === 0 || info.uid === uid;
  // Others may not write, unless the sticky bit (as on /tmp) stops them replacing what they do not own.
  return owner && ((info.mode & 0o022) === 0 || (info.mode & 0o1000) !== 0);
}

/**
 * True when no user but root and the agent's own can change what `path` leads to: every
 * folder along it (and along where its symbolic links lead) is owned by root or the agent
 * and closed to others' writes, and every symbolic link on the way is owned by one of them.
 * Then nobody else can plant a link that redirects a write under `path`.
 */
export async function privatePath(path: string, uid = process.geteuid?.() ?? 0): Promise<boolean> {
  const prefixes = (p: string) => p.split('/').filter(Boolean).map((_, i, parts) => `/${parts.slice(0, i + 1).join('/')}`);
  try {
    if (!ownedAndClosed(await stat('/'), uid)) return false;
    for (const prefix of prefixes(path)) {
      const link = await lstat(prefix);
      if (link.isSymbolicLink() && link.uid !== 0 && link.uid !== uid) return false;
      if (!ownedAndClosed(await stat(dirname(prefix)), uid)) return false;
    }
    for (const prefix of prefixes(await realpath(path))) if (!ownedAndClosed(await stat(prefix), uid)) return false;
    return true;
  } catch {
    return false;
  }
}
