/** `media-loan`: CSC's copy borrowed because JAA's failed (clause 4.3.1). Rendered on FOR 7.5 CSC 03. */
import { z } from 'zod';
import { snapshotId } from '../common.js';
import { about, runBy } from './shared.js';

export const mediaLoanRecord = z
  .object({
    ...about,
    ...runBy,
    snapshot: snapshotId,
    from: z.string().min(1),
    label: z.string().min(1),
    /** Why JAA's copy could not be used. */
    reason: z.string().min(1),
    request: z.string().regex(/^REQ-\d{4}-\d{4}$/).nullable(),
  })
  .strict();
