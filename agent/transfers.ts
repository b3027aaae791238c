/**
 * The SHA-1 rsync reported for each file it transferred, by path, kept compact: a first
 * backup of a large tree lists every file, and 200,000 path strings would cost more memory
 * than the rest of the agent. A path is reduced to 80 bits of its SHA-1 (a 48-bit map key and
 * a 32-bit check), so a lookup never confuses two paths in practice; two paths that did
 * share a key are both marked unknown, and verification then re-reads their originals.
 */
import { createHash } from 'node:crypto';
import { IntMap } from './intmap.js';

const ENTRY = 24; // 4 bytes of check, 20 bytes of SHA-1
const AMBIGUOUS = -1;

export class TransferLog {
  private readonly index = new IntMap();
  private data = Buffer.alloc(ENTRY * 1024);
  private count = 0;

  get size(): number {
    return this.index.size;
  }

  private static key(path: Buffer): { key: number; check: number } {
    const d = createHash('sha1').update(path).digest();
    return { key: d.readUIntBE(0, 6), check: d.readUInt32BE(6) };
  }

  add(path: Buffer, sha1hex: string): void {
    const { key, check } = TransferLog.key(path);
    if (this.index.get(key) !== undefined) {
      this.index.set(key, AMBIGUOUS);
      return;
    }
    if ((this.count + 1) * ENTRY > this.data.length) {
      const grown = Buffer.alloc(this.data.length * 2);
      this.data.copy(grown);
      this.data = grown;
    }
    this.data.writeUInt32BE(check, this.count * ENTRY);
    this.data.write(sha1hex, this.count * ENTRY + 4, 'hex');
    this.index.set(key, this.count++);
  }

  /** The SHA-1 (hex) reported for `path`, or undefined when none or unsure. */
  get(path: Buffer): string | undefined {
    const { key, check } = TransferLog.key(path);
    const at = this.index.get(key);
    if (at === undefined || at === AMBIGUOUS || this.data.readUInt32BE(at * ENTRY) !== check) return undefined;
    return this.data.toString('hex', at * ENTRY + 4, at * ENTRY + ENTRY);
  }
}
