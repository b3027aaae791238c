import { describe, expect, it } from 'vitest';
import { IntMap } from './intmap.js';

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
