import { describe, expect, it } from 'vitest';
import { TransferLog } from './transfers.js';

describe('TransferLog', () => {
  it('returns what was added for each path, and nothing for others', () => {
    const log = new TransferLog();
    const sha = (n: number) => n.toString(16).padStart(40, '0');
    for (let i = 0; i < 5000; i++) log.add(Buffer.from(`dir/file-${i}`), sha(i));
    expect(log.size).toBe(5000);
    expect(log.get(Buffer.from('dir/file-0'))).toEqual({ sum: sha(0), stored: undefined });
    expect(log.get(Buffer.from('dir/file-4999'))?.sum).toBe(sha(4999));
    expect(log.get(Buffer.from('dir/file-5000'))).toBeUndefined();
    expect(log.get(Buffer.from([0xff, 0x0a]))).toBeUndefined();
  });

  it('keeps what the stored copy holds, and whether its SHA-1 is the sender\'s', () => {
    const log = new TransferLog();
    const seen: number[] = [];
    log.onAdd = (entry) => seen.push(entry);
    log.add(Buffer.from('a'), '11'.repeat(20));
    log.add(Buffer.from('b'), '22'.repeat(20));
    expect(seen).toEqual([0, 1]);
    log.setStored(0, { sha256: 'ab'.repeat(32), transfer: '11'.repeat(20), size: 5, ino: 2 ** 40 + 3 });
    log.setStored(1, { sha256: 'cd'.repeat(32), transfer: '33'.repeat(20), size: 7, ino: 9 });
    // xxh128 sums are 16 bytes.
    log.add(Buffer.from('c'), '44'.repeat(16));
    log.setStored(2, { sha256: 'ef'.repeat(32), transfer: '44'.repeat(16), size: 1, ino: 1 });
    expect(log.get(Buffer.from('c'))).toMatchObject({ sum: '44'.repeat(16), stored: { matches: true } });
    expect(log.get(Buffer.from('a'))!.stored).toEqual({ sha256: 'ab'.repeat(32), matches: true, size: 5, ino: 2 ** 40 + 3 });
    expect(log.get(Buffer.from('b'))!.stored).toMatchObject({ matches: false, size: 7, ino: 9 });
  });
});
