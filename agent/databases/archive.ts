/**
 * The log archive of point-in-time recovery, shared by PostgreSQL (WAL files pushed by
 * `respaldo wal-push`) and MariaDB (binary logs fetched by `respaldo db archive-binlogs`):
 * each file is stored once under its own name and never replaced, so that an archive
 * that a restore reads is only ever added to.
 */
import { link } from 'node:fs/promises';
import { join } from 'node:path';
import type { PitrInfo } from '../../schemas/database.js';
import { Exit, RespaldoError } from '../errors.js';
import { exists, fsyncDir, sha256File } from '../fsutil.js';
import type { RepositoryStore } from '../target.js';

/**
 * Stores `tmp` in the archive folder `dir` as `name`. `tmp` is a temporary file the caller
 * wrote in the same filesystem (and removes afterwards): it is fsynced and linked into
 * place, so a store killed at any moment leaves no file under the real name, and link()
 * never replaces a file as rename() would. The same contents stored again are accepted
 * (`present`: a retry after a crash between the copy and its bookkeeping); different
 * contents under a name already archived are refused (exit 3) with `conflictHint`, since
 * replacing the file could break every restore that needs it.
 */
export async function archiveFile(dir: string, name: string, tmp: string, opts: { conflictHint: string }): Promise<'archived' | 'present'> {
  const dest = join(dir, name);
  const present = async () => {
    if ((await sha256File(dest)) === (await sha256File(tmp))) return 'present' as const;
    throw new RespaldoError(`${dest} is already archived with different contents`, { exitCode: Exit.partial, hint: opts.conflictHint });
  };
  if (await exists(dest)) return present();
  // fsyncDir opens any path read-only and fsyncs it: a file too.
  await fsyncDir(tmp);
  try {
    await link(tmp, dest);
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'EEXIST') return present();
    throw e;
  }
  await fsyncDir(dir);
  return 'archived';
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
