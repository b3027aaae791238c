import { describe, expect, it } from 'vitest';
import { isoFromEpoch } from './target.js';

describe('isoFromEpoch', () => {
  it('writes find\'s %T@ as a UTC time to the nanosecond, without rounding', () => {
    expect(isoFromEpoch('1732250000.1234567890')).toBe('2024-11-22T04:33:20.123456789Z');
    expect(isoFromEpoch('0.0000000000')).toBe('1970-01-01T00:00:00.000000000Z');
    expect(isoFromEpoch('951782400')).toBe('2000-02-29T00:00:00.000000000Z');
    // Before 1970, find prints the second and then the nanoseconds added to it (stat -c %.9Y
    // prints -2208988799.500000000 for the first one).
    expect(isoFromEpoch('-2208988800.5000000000')).toBe('1900-01-01T00:00:00.500000000Z');
    expect(isoFromEpoch('-1.7500000000')).toBe('1969-12-31T23:59:59.750000000Z');
    expect(isoFromEpoch('-86400.0000000000')).toBe('1969-12-31T00:00:00.000000000Z');
  });

  it('agrees with Date wherever Date can tell', () => {
    for (const sec of [-2208988800, -1, 1, 86399, 1e9, 2147483647, 4102444800, 253402300799]) {
      expect(isoFromEpoch(`${sec}.0000000000`)).toBe(new Date(sec * 1000).toISOString().replace('.000Z', '.000000000Z'));
    }
  });

  it('writes times Date cannot hold, with a signed six-digit year', () => {
    // As GNU date -u -d @99999999999999 prints it.
    expect(isoFromEpoch('99999999999999.0000000000')).toBe('+3170843-11-07T09:46:39.000000000Z');
    expect(isoFromEpoch('-62135596801.0')).toBe('0000-12-31T23:59:59.000000000Z');
    expect(isoFromEpoch('253402300800.0')).toBe('+010000-01-01T00:00:00.000000000Z');
  });
});
