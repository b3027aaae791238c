/**
 * A real rsync daemon on a loopback port, for the tests of CSC's copy in a daemon's module:
 * `rsync --daemon --no-detach` with its own rsyncd.conf, a module that asks for a password
 * (auth users, a secrets file), and twins of it that refuse writes or an option.
 */
import { randomBytes } from 'node:crypto';
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { accepts, freePort, sleep, tempDir } from './helpers.js';

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
  let child: ChildProcess | undefined;
  const self: Rsyncd = {
    port,
    module,
    user,
    password,
    passwordFile,
    url: (path) => `rsync://${user}@127.0.0.1:${port}/${path}`,
    async start() {
      child = spawn('rsync', ['--daemon', '--no-detach', '--config', join(dir, 'rsyncd.conf'), '--port', String(port), '--address', '127.0.0.1'], { stdio: ['ignore', 'ignore', 'inherit'] });
      for (let i = 0; i < 100; i++) {
        if (child.exitCode !== null) throw new Error(`rsync --daemon exited with code ${child.exitCode}`);
        if (await accepts(port)) return;
        await sleep(50);
      }
      throw new Error(`rsync --daemon did not listen on port ${port}`);
    },
    async stop() {
      if (!child || child.exitCode !== null) return;
      const exited = new Promise((r) => child!.once('exit', r));
      child.kill('SIGTERM');
      await exited;
    },
  };
  await self.start();
  return self;
}
