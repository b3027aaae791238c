/** `backup`: a snapshot that was made, verified and made visible. Rendered on FOR 7.5 DSE 02, 03 or 04 by kind. */
import { z } from 'zod';
import { snapshotId } from '../common.js';
import { databaseInfo } from '../database.js';
import { gitInfo } from '../git.js';
import { about, runBy, snapshotRef, timeSpan, verification, warning } from './shared.js';

export const backupRecord = z
  .object({
    ...about,
    ...runBy,
    ...timeSpan,
    snapshot: snapshotRef,
    previous: z.object({ id: snapshotId, bytes: z.number().int().nonnegative() }).strict().nullable(),
    size: z
      .object({
        bytes: z.number().int().nonnegative(),
        files: z.number().int().nonnegative(),
        dirs: z.number().int().nonnegative(),
        symlinks: z.number().int().nonnegative(),
        others: z.number().int().nonnegative(),
      })
      .strict(),
    /** Files stored anew in this snapshot; the others are hard links to the previous one. */
    changed: z.object({ files: z.number().int().nonnegative(), bytes: z.number().int().nonnegative() }).strict(),
    verification,
    /** A database repository's engine, server and dumps. */
    database: databaseInfo.optional(),
    /** A `source` repository of git repositories: each one's bundle, refs and checks. */
    git: gitInfo.optional(),
    warnings: z.array(warning),
    /** True when the agent stopped after making the snapshot visible and a later run recorded it. */
    recovered: z.boolean().optional(),
    /**
     * True when the sources matched the previous snapshot exactly (rsync's comparison of every
     * file: type, size, mtime, permissions, owner; none added or deleted; for git repositories:
     * the same refs at the same objects, the same HEAD, clean working trees), so this backup is that
     * snapshot and no new one was made.
     */
    unchanged: z.boolean().optional(),
  })
  .strict();
