/** `verify`: a later check of a stored snapshot against its manifest (outside a backup run). */
import { z } from 'zod';
import { about, checksumCheck, runBy, snapshotRef, timeSpan } from './shared.js';

export const verifyRecord = z
  .object({
    ...about,
    ...runBy,
    ...timeSpan,
    snapshot: snapshotRef,
    checksum: checksumCheck,
    result: z.enum(['ok', 'failed']),
    problems: z.array(z.object({ path: z.string(), problem: z.string() }).strict()),
  })
  .strict();
