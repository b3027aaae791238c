/** `copy`: a snapshot delivered to the second target (CSC). Rendered on FOR 7.5 CSC 02. */
import { z } from 'zod';
import { sha256Digest } from '../common.js';
import { about, runBy, snapshotRef, timeSpan } from './shared.js';

export const copyRecord = z
  .object({
    ...about,
    ...runBy,
    ...timeSpan,
    snapshot: snapshotRef,
    /** The target it came from and the one it went to, as named in the host config. */
    from: z.string().min(1),
    to: z.string().min(1),
    label: z.string().min(1),
    bytes: z.number().int().nonnegative(),
    files: z.number().int().nonnegative(),
    /** True when this copy replaced one found damaged at the target (the `verify` record before it says so). */
    repair: z.boolean().optional(),
    verified: z
      .object({
        /**
         * `rehash`: the copy listed and read back at the target, SHA-256 against the
         * manifest. `rsync-checksum`: compared with the primary's by rsync's checksum at both
         * ends (an rsync daemon, where nothing else runs).
         */
        method: z.enum(['rehash', 'rsync-checksum']),
        /**
         * `full`: every file read back. `changed`: the files stored anew in this copy, the
         * others (hard links to a copy compared when it was made) by name, type, size, time
         * and mode.
         */
        scope: z.enum(['changed', 'full']).optional(),
        result: z.enum(['ok', 'failed']),
        manifest: sha256Digest,
      })
      .strict(),
  })
  .strict();
