/**
 * What a backup of git repositories records: for each repository of a `source`
 * repository, the bundle stored in the snapshot, the refs it holds with their commit ids,
 * and the checks made on it (verification level `restore`). A repository is named by its
 * place in the host config (`{paths[0]}`), never by its local path.
 */
import { z } from 'zod';

/** A git object id: SHA-1 (40 hex digits) or, in a SHA-256 repository, 64. */
export const objectId = z.string().regex(/^(?:[0-9a-f]{40}|[0-9a-f]{64})$/, 'a git object id is 40 (or 64) lowercase hex digits');

export const gitRef = z
  .object({
    /** The full name, e.g. `refs/heads/main`, `refs/tags/v1.0`. */
    name: z.string().min(1),
    /** The object the ref points at, as `git for-each-ref` shows it. */
    object: objectId,
    type: z.enum(['commit', 'tag', 'tree', 'blob']),
    /** An annotated tag's commit (the object is the tag itself). */
    commit: objectId.optional(),
  })
  .strict();
export type GitRef = z.infer<typeof gitRef>;

export const gitBundle = z
  .object({
    /** `{paths[N]}`: which of the repository's configured paths this is. */
    path: z.string().regex(/^\{paths\[\d+\]\}$/, 'a path named by its place in the config, such as {paths[0]}'),
    /** The bundle's file name under the snapshot's data/ folder. */
    bundle: z.string().regex(/^[A-Za-z0-9._-]+\.bundle$/, 'a bundle file name such as portal-3f9a1c2b7d4e.bundle'),
    /** A bare repository (no working tree), as on a git server. */
    bare: z.boolean(),
    bytes: z.number().int().nonnegative(),
    /**
     * The repository's HEAD: the branch it names (null when detached) and the commit the
     * bundle holds for it (null when that branch has no commit yet).
     */
    head: z.object({ ref: z.string().min(1).nullable(), commit: objectId.nullable() }).strict(),
    /** Every ref the bundle holds, by name; a clone of the bundle has exactly these. */
    refs: z.array(gitRef),
    /** Checks made on the stored bundle: "git bundle verify: ok", "git fsck --full: ok", "refs of the clone: 12 match". */
    checks: z.array(z.string()),
  })
  .strict();
export type GitBundle = z.infer<typeof gitBundle>;

export const gitInfo = z
  .object({
    /** The git that made and checked the bundles, e.g. "2.39.5". */
    version: z.string().min(1),
    repositories: z.array(gitBundle).min(1),
  })
  .strict();
export type GitInfo = z.infer<typeof gitInfo>;
