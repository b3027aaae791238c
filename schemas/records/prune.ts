/**
 * `prune`: snapshots deleted from one target under the repository's retention rules, each
 * kept snapshot with its reasons. Records themselves are never pruned: the procedure keeps
 * forms for a year (clause 6.0), and the history is the evidence.
 */
import { z } from 'zod';
import { snapshotId } from '../common.js';
import { about, runBy } from './shared.js';

export const pruneRecord = z
  .object({
    ...about,
    ...runBy,
    target: z.enum(['primary', 'secondary']),
    /** The retention rules applied, as configured: `keep-daily: 7`, `keep-within: 30d`. */
    rules: z.record(z.string(), z.union([z.number().int().nonnegative(), z.string()])),
    /** Oldest first; reasons such as "daily snapshot", "newest verified snapshot". */
    kept: z.array(z.object({ id: snapshotId, reasons: z.array(z.string()) }).strict()),
    deleted: z.array(snapshotId),
    /** Why nothing was deleted although the rules would have (the repository's latest backup failed). */
    held: z.string().min(1).optional(),
    /** Archive files (WAL segments, binary logs) deleted: all older than what the oldest kept snapshot needs. */
    archive_segments_deleted: z.number().int().nonnegative(),
    /** Point-in-time recovery: the archive file (WAL segment, binary log) where a replay from the oldest kept snapshot starts. */
    archive_needed_from: z.string().min(1).optional(),
  })
  .strict();
