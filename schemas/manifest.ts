/**
 * `manifest.jsonl`: one JSON line per entry of a snapshot's `data/` folder. File names are
 * bytes on Linux, not text: a name that is not valid UTF-8 is kept exactly, in base64,
 * under `path_b64` (and a link target under `target_b64`) instead of `path`.
 */
import { z } from 'zod';

export const manifestEntry = z
  .object({
    path: z.string().optional(),
    path_b64: z.string().optional(),
    /** f file, d folder, l symbolic link, p fifo, s socket, c/b devices. */
    type: z.enum(['f', 'd', 'l', 'p', 's', 'c', 'b']),
    size: z.number().int().nonnegative(),
    /**
     * Modification time, UTC, to the nanosecond as the filesystem keeps it; to the second
     * ("2026-11-22T03:15:07Z") on a primary target in an rsync daemon, which shows no more.
     */
    mtime: z.string(),
    /** Permission bits in octal, as `ls` and `chmod` show them. */
    mode: z.string().regex(/^[0-7]{3,4}$/),
    /**
     * Inode on the target: unchanged files are hard links, so they keep the previous
     * snapshot's inode. On a primary in an rsync daemon, which shows none, a number that
     * stands for the stored file the same way (daemon-primary.ts).
     */
    ino: z.number().int().nonnegative(),
    sha256: z.string().regex(/^[0-9a-f]{64}$/).optional(),
    /** On a primary in an rsync daemon: the SHA-1 that the daemon reads back (rsync's --checksum-choice=sha1). */
    sha1: z.string().regex(/^[0-9a-f]{40}$/).optional(),
    target: z.string().optional(),
    target_b64: z.string().optional(),
  })
  .strict()
  .refine((e) => (e.path === undefined) !== (e.path_b64 === undefined), { message: 'an entry has exactly one of path and path_b64' });
export type ManifestEntry = z.infer<typeof manifestEntry>;

const strictUtf8 = new TextDecoder('utf-8', { fatal: true });

/** A time as the manifest writes it, to the second: "2026-11-22T03:15:07Z". */
export function secondOf(mtime: string): string {
  const dot = mtime.indexOf('.');
  return dot < 0 ? mtime : `${mtime.slice(0, dot)}Z`;
}

/**
 * Whether a time read from a filesystem (to the nanosecond) is the manifest's: to the
 * nanosecond, or to the second where the manifest gives no more (a primary target in an
 * rsync daemon shows no more).
 */
export function sameMtime(manifest: string, actual: string): boolean {
  return manifest.includes('.') ? manifest === actual : secondOf(actual) === manifest;
}

/** Names as JSON: text when the bytes are valid UTF-8, else base64 under the `_b64` field. */
export function encodeName(bytes: Buffer, field: 'path' | 'target'): Record<string, string> {
  try {
    return { [field]: strictUtf8.decode(bytes) };
  } catch {
    return { [`${field}_b64`]: bytes.toString('base64') };
  }
}

/** The exact bytes of an entry's path. */
export function entryPath(entry: Pick<ManifestEntry, 'path' | 'path_b64'>): Buffer {
  return entry.path !== undefined ? Buffer.from(entry.path) : Buffer.from(entry.path_b64!, 'base64');
}

/**
 * Whether a manifest's path stays inside the snapshot's data folder: relative, no empty,
 * "." or ".." name, no NUL. respaldo never writes another; a manifest that holds one was
 * altered, and following it would read or write some other file.
 */
export function insideSnapshot(rel: Buffer): boolean {
  return rel.length > 0 && rel[0] !== 0x2f && !rel.includes(0) && !rel.toString('latin1').split('/').some((p) => p === '..' || p === '.' || p === '');
}
