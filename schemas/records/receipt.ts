/** `receipt`: CSC's acknowledgement of a copy, signed with CSC's own key. Rendered on FOR 7.5 CSC 02. */
import { z } from 'zod';
import { hostName, repositoryName, sha256Digest, snapshotId } from '../common.js';
import { recordRef } from './shared.js';

export const receiptRecord = z
  .object({
    /** The host whose snapshot arrived. */
    origin: hostName,
    repository: repositoryName,
    snapshot: snapshotId,
    copy: recordRef,
    manifest: sha256Digest,
    files: z.number().int().nonnegative(),
    bytes: z.number().int().nonnegative(),
    result: z.enum(['ok', 'mismatch']),
    problems: z.array(z.object({ path: z.string(), problem: z.string() }).strict()),
    received_by: z.string().min(1),
  })
  .strict();
