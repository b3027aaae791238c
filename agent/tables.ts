/**
 * Compact tables for the agent's per-file bookkeeping, kept outside the JavaScript heap.
 */

/**
 * A hash table from whole numbers (0 ≤ key < 2^53) to whole numbers, kept in two typed
 * arrays. A Map of 200,000 entries costs the garbage collector 200,000 entries to trace
 * and tens of MB; this costs 12 bytes a slot, outside the JavaScript heap.
 */
export class IntMap {
  private keys: Float64Array;
  private values: Int32Array;
  private count = 0;

  constructor(capacity = 1024) {
    let size = 16;
    while (size < capacity * 2) size *= 2;
    this.keys = new Float64Array(size).fill(-1);
    this.values = new Int32Array(size);
  }

  get size(): number {
    return this.count;
  }

  private slot(key: number): number {
    const mask = this.keys.length - 1;
    // Mix both halves of the key (inodes and hash prefixes are wider than 32 bits).
    let h = Math.imul((key % 0x100000000) | 0, 0x9e3779b1) ^ Math.imul(Math.floor(key / 0x100000000) | 0, 0x85ebca77);
    h ^= h >>> 15;
    let i = h & mask;
    while (this.keys[i] !== -1 && this.keys[i] !== key) i = (i + 1) & mask;
    return i;
  }

  get(key: number): number | undefined {
    const i = this.slot(key);
    return this.keys[i] === -1 ? undefined : this.values[i];
  }

  set(key: number, value: number): void {
    if ((this.count + 1) * 2 > this.keys.length) this.grow();
    const i = this.slot(key);
    if (this.keys[i] === -1) {
      this.keys[i] = key;
      this.count++;
    }
    this.values[i] = value;
  }

  private grow(): void {
    const { keys, values } = this;
    this.keys = new Float64Array(keys.length * 2).fill(-1);
    this.values = new Int32Array(keys.length * 2);
    this.count = 0;
    for (let i = 0; i < keys.length; i++) if (keys[i] !== -1) this.set(keys[i]!, values[i]!);
  }
}

/**
 * Fixed-size records, numbered 0, 1, 2, … and stored in chunks of 32,768: growing never
 * copies what is there, so a table of 200,000 records never briefly needs twice its size.
 */
export class FixedRecords {
  private static readonly CHUNK = 32_768;
  private readonly chunks: Buffer[] = [];
  private count = 0;

  constructor(readonly size: number) {}

  get length(): number {
    return this.count;
  }

  /** Adds a zeroed record; returns its number. */
  push(): number {
    if (this.count % FixedRecords.CHUNK === 0) this.chunks.push(Buffer.alloc(FixedRecords.CHUNK * this.size));
    return this.count++;
  }

  /** The chunk that holds record `n` and the record's offset in it. */
  at(n: number): { buf: Buffer; off: number } {
    return { buf: this.chunks[Math.floor(n / FixedRecords.CHUNK)]!, off: (n % FixedRecords.CHUNK) * this.size };
  }
}

const HEX = Buffer.from('0123456789abcdef', 'latin1');

/** Writes `length` bytes of `src` from `start` as lowercase hex at `pos`; returns the position after them. */
export function writeHex(src: Buffer, start: number, length: number, out: Buffer, pos: number): number {
  for (let k = start; k < start + length; k++) {
    const b = src[k]!;
    out[pos++] = HEX[b >> 4]!;
    out[pos++] = HEX[b & 15]!;
  }
  return pos;
}
