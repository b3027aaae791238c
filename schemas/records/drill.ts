/** `drill`: a rehearsed restore, to show that backups restore (the emergency plan's regular drills). */
import { z } from 'zod';
import { about, checksumCheck, runBy, snapshotRef, timeSpan } from './shared.js';

export const drillRecord = z
  .object({
    ...about,
    ...runBy,
    ...timeSpan,
    snapshot: snapshotRef,
    checks: z.array(z.object({ name: z.string(), result: z.enum(['ok', 'failed']), detail: z.string().optional() }).strict()),
    verification: checksumCheck,
    result: z.enum(['ok', 'failed']),
  })
  .strict();
