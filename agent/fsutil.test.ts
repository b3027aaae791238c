import { chmodSync, chownSync, lchownSync, mkdirSync, mkdtempSync, rmSync, symlinkSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { privatePath } from './fsutil.js';

const root = mkdtempSync(join(tmpdir(), 'respaldo-fsutil-'));
afterAll(() => rmSync(root, { recursive: true, force: true }));

describe('privatePath', () => {
  // The tests run as root (CI installs packages with apt-get); a stranger is any other uid.
  const stranger = 4242;

  it('accepts a path only root and the agent can change, through a sticky /tmp', async () => {
    const dir = join(root, 'a/b/c');
    mkdirSync(dir, { recursive: true, mode: 0o755 });
    expect(await privatePath(dir)).toBe(true);
  });

  it('refuses a folder on the way that others may write, or that another user owns', async () => {
    const dir = join(root, 'open/inner');
    mkdirSync(dir, { recursive: true, mode: 0o755 });
    chmodSync(join(root, 'open'), 0o777);
    expect(await privatePath(dir)).toBe(false);
    chmodSync(join(root, 'open'), 0o1777); // sticky, like /tmp: nobody can replace "inner"
    expect(await privatePath(dir)).toBe(true);
    chownSync(join(root, 'open/inner'), stranger, stranger);
    expect(await privatePath(dir)).toBe(false);
  });

  it('refuses a symbolic link on the way that another user owns, and checks where links lead', async () => {
    const real = join(root, 'real/target');
    mkdirSync(real, { recursive: true, mode: 0o755 });
    const link = join(root, 'link');
    symlinkSync(real, link);
    expect(await privatePath(join(link))).toBe(true);
    lchownSync(link, stranger, stranger);
    expect(await privatePath(link)).toBe(false);
    lchownSync(link, 0, 0);
    chmodSync(join(root, 'real'), 0o775);
    expect(await privatePath(link)).toBe(false);
  });

  it('says no for a path that does not exist', async () => {
    expect(await privatePath(join(root, 'missing/x'))).toBe(false);
  });
});
