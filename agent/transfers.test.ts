import { describe, expect, it } from 'vitest';
import { TransferLog } from './transfers.js';

describe('TransferLog', () => {
  it('returns what was added for each path, and nothing for others', () => {
    const log = new TransferLog();
    const sha = (n: number) => n.toString(16).padStart(40, '0');
    for (let i = 0; i < 5000; i++) log.add(Buffer.from(`dir/file-${i}`), sha(i));
    expect(log.size).toBe(5000);
    expect(log.get(Buffer.from('dir/file-0'))).toBe(sha(0));
    expect(log.get(Buffer.from('dir/file-4999'))).toBe(sha(4999));
    expect(log.get(Buffer.from('dir/file-5000'))).toBeUndefined();
    expect(log.get(Buffer.from([0xff, 0x0a]))).toBeUndefined();
  });
});
