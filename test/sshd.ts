/**
 * A real OpenSSH server on a loopback port, for the tests of targets reached over SSH: its
 * own host key, one client key in its authorized_keys, no passwords, no PAM.
 */
import { execFileSync, spawn, type ChildProcess } from 'node:child_process';
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { accepts, freePort, sleep, tempDir } from './helpers.js';

export interface Sshd {
  port: number;
  /** The server's public host key line ("ssh-ed25519 AAAA…"), to pin in a host config. */
  hostKey: string;
  /** The client's private key file, authorized to log in as root. */
  identity: string;
  /** Starts the server (again, on the same port and keys, after stop). */
  start(): Promise<void>;
  stop(): Promise<void>;
}


export async function sshd(): Promise<Sshd> {
  const dir = tempDir('respaldo-sshd-');
  execFileSync('ssh-keygen', ['-q', '-t', 'ed25519', '-N', '', '-C', 'csc-host', '-f', join(dir, 'host_key')]);
  execFileSync('ssh-keygen', ['-q', '-t', 'ed25519', '-N', '', '-C', 'respaldo-agent', '-f', join(dir, 'client_key')]);
  writeFileSync(join(dir, 'authorized_keys'), readFileSync(join(dir, 'client_key.pub')), { mode: 0o600 });
  const port = await freePort();
  writeFileSync(
    join(dir, 'sshd_config'),
    [
      `Port ${port}`,
      'ListenAddress 127.0.0.1',
      `HostKey ${join(dir, 'host_key')}`,
      `PidFile ${join(dir, 'sshd.pid')}`,
      `AuthorizedKeysFile ${join(dir, 'authorized_keys')}`,
      'StrictModes no',
      'PasswordAuthentication no',
      'KbdInteractiveAuthentication no',
      'UsePAM no',
      'PermitRootLogin prohibit-password',
      'LogLevel ERROR',
      '',
    ].join('\n'),
  );
  // The privilege-separation folder that the Debian package's service would create.
  mkdirSync('/run/sshd', { recursive: true, mode: 0o755 });
  let child: ChildProcess | undefined;
  const self: Sshd = {
    port,
    hostKey: readFileSync(join(dir, 'host_key.pub'), 'utf8').trim(),
    identity: join(dir, 'client_key'),
    async start() {
      child = spawn('/usr/sbin/sshd', ['-D', '-e', '-f', join(dir, 'sshd_config')], { stdio: ['ignore', 'ignore', 'inherit'] });
      for (let i = 0; i < 100; i++) {
        if (child.exitCode !== null) throw new Error(`sshd exited with code ${child.exitCode}`);
        if (await accepts(port)) return;
        await sleep(50);
      }
      throw new Error(`sshd did not listen on port ${port}`);
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
