/**
 * `config`, `files` and plain-folder `source` repositories: the configured paths copied
 * with rsync, unchanged files hard-linked to the previous snapshot.
 */
import { lstat, readdir } from 'node:fs/promises';
import type { RepositoryConfig } from '../../schemas/config.js';
import { BackupFailure } from '../errors.js';
import { rsyncCompare, rsyncSnapshot } from '../rsync.js';
import type { Source } from './source.js';

/** A configured path that cannot be opened: missing, or out of the agent's reach. */
export function unreadableSource(repo: RepositoryConfig, i: number, path: string, e: unknown): BackupFailure {
  const code = (e as NodeJS.ErrnoException).code;
  return new BackupFailure(
    'source',
    code === 'ENOENT' ? `the source ${path} does not exist` : `the source ${path} cannot be read (${code})`,
    code === 'ENOENT'
      ? `restore or recreate ${path}, or correct repositories[${repo.name}].paths[${i}] in the host config; the previous snapshot is intact`
      : `check the permissions of ${path}; the previous snapshot is intact`,
  );
}

export const filesSource = {
  async snapshot(job) {
    const warnings: { code: string; message: string }[] = [];
    for (const [i, path] of job.repository.paths.entries()) {
      let info;
      try {
        info = await lstat(path);
      } catch (e) {
        throw unreadableSource(job.repository, i, path, e);
      }
      if (info.isSymbolicLink())
        warnings.push({ code: 'source-is-symlink', message: `${path} is a symbolic link: the link is backed up, not what it points to; list the real folder in "paths" to back up its files` });
      else if (info.isDirectory() && (await readdir(path)).length === 0)
        warnings.push({ code: 'empty-source', message: `${path} is empty (an unmounted share?)` });
    }
    await rsyncSnapshot({
      transferred: job.transferred,
      checksum: job.store.checksum,
      sources: job.repository.paths,
      dest: job.dest,
      rsh: job.rsh,
      linkDest: job.linkDest,
      keepExisting: job.keepExisting,
      exclude: job.repository.exclude ?? [],
      signal: job.signal,
      // A daemon target's password goes in rsync's environment only.
      env: (await job.store.rsyncEnv?.(job.env)) ?? job.env,
      progress: job.progress,
    });
    // With rsync -R, data/<rel> is the original /<rel>.
    return { warnings, origin: (rel) => Buffer.concat([Buffer.from('/'), rel]) };
  },

  async compare(job) {
    return rsyncCompare({ sources: job.repository.paths, exclude: job.repository.exclude ?? [], snapshotData: job.snapshotData, rsh: job.rsh, limit: job.limit, signal: job.signal, env: (await job.store.rsyncEnv?.(job.env)) ?? job.env });
  },
} satisfies Source;
