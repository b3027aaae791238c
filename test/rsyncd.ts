/**
 * A real rsync daemon on a loopback port, for the tests of CSC's copy in a daemon's module:
 * `rsync --daemon --no-detach` with its own rsyncd.conf, a module that asks for a password
 * (auth users, a secrets file), and twins of it that refuse writes or an option.
 */
import { randomBytes } from 'node:crypto';
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { freePort, loopbackServer, tempDir, type TreeEntry } from './helpers.js';

export interface Rsyncd {
  port: number;
  /** The module's folder on "CSC's disk": what the daemon writes into. */
  module: string;
  /** The user the module lets in. */
  user: string;
  /** The module's password, and a client file (mode 0600) holding it. */
  password: string;
  passwordFile: string;
  /**
   * rsync://respaldo@127.0.0.1:PORT/<path>. Three modules on the same folder: `csc`,
   * writable; `csc-ro`, read only; `csc-nochecksum`, which refuses --checksum.
   */
  url(path: string): string;
  start(): Promise<void>;
  stop(): Promise<void>;
}

export async function rsyncd(): Promise<Rsyncd> {
  const dir = tempDir('respaldo-rsyncd-');
  const module = join(dir, 'csc disk');
  mkdirSync(module);
  const user = 'respaldo';
  const password = `pw-${randomBytes(12).toString('hex')}`;
  // rsyncd refuses a secrets file that others can read ("strict modes", on by default).
  writeFileSync(join(dir, 'rsyncd.secrets'), `${user}:${password}\n`, { mode: 0o600 });
  const passwordFile = join(dir, 'client.pass');
  writeFileSync(passwordFile, `${password}\n`, { mode: 0o600 });
  const port = await freePort();
  const moduleConf = (name: string, extra: string) => [`[${name}]`, `  path = ${module}`, '  read only = no', '  uid = root', '  gid = root', `  auth users = ${user}`, `  secrets file = ${join(dir, 'rsyncd.secrets')}`, `  ${extra}`];
  writeFileSync(
    join(dir, 'rsyncd.conf'),
    [`pid file = ${join(dir, 'rsyncd.pid')}`, `log file = ${join(dir, 'rsyncd.log')}`, 'use chroot = no', ...moduleConf('csc', ''), ...moduleConf('csc-ro', 'read only = yes'), ...moduleConf('csc-nochecksum', 'refuse options = checksum'), ''].join('\n'),
  );
  const self: Rsyncd = {
    port,
    module,
    user,
    password,
    passwordFile,
    url: (path) => `rsync://${user}@127.0.0.1:${port}/${path}`,
    ...loopbackServer('rsync --daemon', 'rsync', ['--daemon', '--no-detach', '--config', join(dir, 'rsyncd.conf'), '--port', String(port), '--address', '127.0.0.1'], port),
  };
  await self.start();
  return self;
}

/**
 * A tree in the test daemon's module as a client of the daemon sees it. With "use chroot = no"
 * the daemon stores a link's target behind a "/rsyncd-munged/" prefix ("munge symlinks")
 * and takes it off when it sends the link back (comparisons, restores): on its disk the
 * prefix is stripped here. Inodes differ between disks and are left out.
 */
export function asStored(tree: Map<string, TreeEntry>): Map<string, TreeEntry> {
  return new Map(
    [...tree].map(([rel, e]) => {
      const link = e.link?.replace(/^\/rsyncd-munged\//, '');
      return [rel, { ...e, ino: 0n, ...(link === undefined ? {} : { link, size: link.length }) }];
    }),
  );
}
