/**
 * A real OpenSSH server on a loopback port, for the tests of targets reached over SSH: its
 * own host key, one client key in its authorized_keys, no passwords, no PAM.
 */
import { execFileSync } from 'node:child_process';
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { freePort, loopbackServer, tempDir } from './helpers.js';

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
  const self: Sshd = {
    port,
    hostKey: readFileSync(join(dir, 'host_key.pub'), 'utf8').trim(),
    identity: join(dir, 'client_key'),
    ...loopbackServer('sshd', '/usr/sbin/sshd', ['-D', '-e', '-f', join(dir, 'sshd_config')], port),
  };
  await self.start();
  return self;
}
