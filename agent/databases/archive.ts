/**
 * The log archive of point-in-time recovery, shared by PostgreSQL (WAL files pushed by
 * `respaldo wal-push`) and MariaDB (binary logs fetched by `respaldo db archive-binlogs`):
 * each file is stored once under its own name and never replaced, so that an archive
 * that a restore reads is only ever added to.
 */
import { createHash } from 'node:crypto';
import { createReadStream } from 'node:fs';
import { link, open, readdir, unlink } from 'node:fs/promises';
import { join } from 'node:path';
import type { PitrInfo } from '../../schemas/database.js';
import { Exit, RespaldoError } from '../errors.js';
import { exists, fsyncDir } from '../fsutil.js';
import type { RepositoryStore } from '../target.js';

async function sha256Of(path: string): Promise<string> {
  const hash = createHash('sha256');
  for await (const chunk of createReadStream(path)) hash.update(chunk as Buffer);
  return hash.digest('hex');
}

/** Writes a copy of `source` to the new file `tmp` (mode 0600) and fsyncs it. */
async function copySynced(source: string, tmp: string): Promise<void> {
  const handle = await open(tmp, 'wx', 0o600);
  try {
    for await (const chunk of createReadStream(source)) await handle.write(chunk as Buffer);
    await handle.sync();
  } finally {
    await handle.close();
  }
}

async function fsyncFile(path: string): Promise<void> {
  const handle = await open(path, 'r');
  try {
    await handle.sync();
  } finally {
    await handle.close();
  }
}

/**
 * Stores `source` in the archive folder `dir` as `name`. The bytes go to a temporary name
 * (with `take`, `source` itself is that temporary file: one the caller wrote on the same
 * filesystem and removes afterwards), are fsynced, and are linked into place: a store
 * killed at any moment leaves no file under the real name, and link() never replaces a
 * file as rename() would. The same contents stored again are accepted (`present`: a retry
 * after a crash between the copy and its bookkeeping); different contents under a name
 * already archived are refused (exit 3) with `conflictHint`, since replacing the file could
 * break every restore that needs it.
 */
export async function archiveFile(dir: string, name: string, source: string, opts: { take?: boolean; conflictHint: string }): Promise<'archived' | 'present'> {
  const dest = join(dir, name);
  const present = async () => {
    if ((await sha256Of(dest)) === (await sha256Of(source))) return 'present' as const;
    throw new RespaldoError(`${dest} is already archived with different contents`, { exitCode: Exit.partial, hint: opts.conflictHint });
  };
  // Leftovers of stores of this file that were killed (before or after the link): nothing else writes these names.
  for (const n of await readdir(dir)) if (n.startsWith(`.${name}.`) && n.endsWith('.tmp')) await unlink(join(dir, n)).catch(() => {});
  if (await exists(dest)) return present();
  const tmp = opts.take ? source : join(dir, `.${name}.${process.pid}.tmp`);
  try {
    if (opts.take) await fsyncFile(tmp);
    else await copySynced(source, tmp);
    try {
      await link(tmp, dest);
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code === 'EEXIST') return await present();
      throw e;
    }
    await fsyncDir(dir);
    return 'archived';
  } finally {
    if (!opts.take) await unlink(tmp).catch(() => {});
  }
}

/** What a backup record says of an archive (`wal` or `binlog`): its files and the recoverable window. */
export function archiveRecord(
  store: RepositoryStore,
  folder: 'wal' | 'binlog',
  a: { files: number; bytes: number; first: string | null; last: string | null; gaps: string[]; window: { from: Date; to: Date } | null },
): PitrInfo['archive'] {
  return {
    location: `${store.rel}/archive/${folder}`,
    files: a.files,
    bytes: a.bytes,
    first: a.first,
    last: a.last,
    gaps: a.gaps,
    window: a.window ? { from: a.window.from.toISOString(), to: a.window.to.toISOString() } : null,
  };
}
