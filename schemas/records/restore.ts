/** `restore`: information brought back (clause 4.3). Rendered on FOR 7.5 DSE 05. */
import { z } from 'zod';
import { isoTime, requestId } from '../common.js';
import { about, checksumCheck, runBy, snapshotRef, timeSpan } from './shared.js';

/** The four cases of clause 4.3 of the procedure. */
export const restoreReason = z.enum(['deleted-by-mistake', 'physical-damage', 'logical-damage', 'other']);

export const restoreRecord = z
  .object({
    ...about,
    ...runBy,
    ...timeSpan,
    snapshot: snapshotRef,
    /** The point in time asked for, for a database restored to a time. */
    point_in_time: isoTime.nullable(),
    paths: z.array(z.string()),
    destination: z.string().min(1),
    reason: restoreReason,
    reason_detail: z.string().optional(),
    /** The restore request (FOR 7.5 DSE 05) this restore answers, if any. */
    request: requestId.nullable(),
    /** Which copy was used: JAA's (`primary`) or CSC's (`secondary`, see the media-loan record). */
    source_copy: z.enum(['primary', 'secondary']),
    verification: checksumCheck,
    result: z.enum(['ok', 'failed']),
  })
  .strict();
