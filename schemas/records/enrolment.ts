/** `enrolment`: a host's first record (seq 1, `prev: null`), or a later one when its key is replaced. */
import { z } from 'zod';
import { sha256Digest } from '../common.js';

export const enrolmentRecord = z
  .object({
    key: z
      .object({
        /** The OpenSSH public line, as it goes into `allowed_signers`. */
        public: z.string().regex(/^ssh-ed25519 [A-Za-z0-9+/=]+$/),
        fingerprint: z.string().regex(/^SHA256:[A-Za-z0-9+/]+$/),
      })
      .strict(),
    agent: z.object({ version: z.string(), node: z.string(), rsync: z.string().nullable() }).strict(),
    system: z.object({ hostname: z.string(), platform: z.string(), release: z.string() }).strict(),
    /** Present when a new key replaces an earlier one (`respaldo init --force`). */
    replaces: z.object({ fingerprint: z.string(), last_record: sha256Digest.nullable() }).strict().optional(),
  })
  .strict();
