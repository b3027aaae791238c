import { describe, expect, it } from 'vitest';
import { rsyncArgs, unescapeName } from './rsync.js';

describe('rsync', () => {
  it('undoes the escaping of names in its output, byte for byte', () => {
    expect(unescapeName('x\\#012y')).toEqual(Buffer.from('x\ny'));
    expect(unescapeName('lat\\#351')).toEqual(Buffer.from([0x6c, 0x61, 0x74, 0xe9]));
    // A literal backslash before "#" is written \#134, so "\#012" in a name survives.
    expect(unescapeName('back\\#134#012slash')).toEqual(Buffer.from('back\\#012slash'));
    expect(unescapeName('plain\\x')).toEqual(Buffer.from('plain\\x'));
  });

  it('passes every path as one argument, after --', () => {
    const args = rsyncArgs({ sources: ['/srv/a b (1)', '/srv/$HOME'], dest: '/t/x/', rsh: [], linkDest: '/t/prev data/', keepExisting: false, exclude: ['*.tmp'], progress: undefined }, 'xxh128');
    expect(args.slice(-3)).toEqual(['/srv/a b (1)', '/srv/$HOME', '/t/x/']);
    expect(args[args.length - 4]).toBe('--');
    expect(args).toContain('--link-dest=/t/prev data/');
    expect(args).toContain('--exclude=*.tmp');
    expect(args).toContain('--checksum-choice=xxh128');
  });
});
