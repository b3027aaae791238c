/** `prune`: snapshots deleted under the repository's retention rules. Records themselves are never pruned. */
import { z } from 'zod';
import { snapshotId } from '../common.js';
import { about, runBy } from './shared.js';

export const pruneRecord = z
  .object({
    ...about,
    ...runBy,
    target: z.enum(['primary', 'secondary']),
    rules: z.record(z.string(), z.union([z.number().int().nonnegative(), z.string()])),
    kept: z.array(z.object({ id: snapshotId, reasons: z.array(z.string()) }).strict()),
    deleted: z.array(snapshotId),
    archive_segments_deleted: z.number().int().nonnegative(),
  })
  .strict();
