import { describe, expect, it } from 'vitest';
import { FixedRecords, IntMap } from './tables.js';

describe('IntMap', () => {
  it('keeps every key through growth, including keys wider than 32 bits', () => {
    const map = new IntMap(4);
    const keys = Array.from({ length: 50_000 }, (_, i) => (i % 2 ? i * 7919 : 2 ** 40 + i * 104_729));
    keys.forEach((k, i) => map.set(k, i));
    expect(map.size).toBe(keys.length);
    keys.forEach((k, i) => expect(map.get(k)).toBe(i));
    expect(map.get(3)).toBeUndefined();
    expect(map.get(2 ** 52)).toBeUndefined();
    map.set(keys[0]!, -1);
    expect(map.get(keys[0]!)).toBe(-1);
    expect(map.size).toBe(keys.length);
  });
});

describe('FixedRecords', () => {
  it('numbers records across chunks and keeps what was written', () => {
    const t = new FixedRecords(12);
    for (let i = 0; i < 100_000; i++) {
      const n = t.push();
      expect(n).toBe(i);
      const { buf, off } = t.at(n);
      buf.writeUInt32LE(i * 3, off + 8);
    }
    expect(t.length).toBe(100_000);
    for (const i of [0, 32_767, 32_768, 65_536, 99_999]) {
      const { buf, off } = t.at(i);
      expect(buf.readUInt32LE(off + 8)).toBe(i * 3);
      expect(buf.readUInt32LE(off)).toBe(0);
    }
  });
});
