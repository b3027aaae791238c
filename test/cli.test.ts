/** The command line as people and scripts meet it: help, JSON lines, exit codes. */
import { spawnSync } from 'node:child_process';
import { describe, expect, it } from 'vitest';
import { deployment, MAIN, respaldo, tempDir, writeTree } from './helpers.js';

describe('command line', () => {
  it('lists commands and exit codes in --help', async () => {
    const r = await respaldo(['--help']);
    expect(r.code).toBe(0);
    for (const word of ['init', 'run', 'status', 'cron', 'records', 'Exit codes:', '11   another run holds the lock']) expect(r.stdout).toContain(word);
    const run = await respaldo(['run', '--help']);
    expect(run.stdout).toContain('--verify');
    expect(run.stdout).toContain('--manual');
    const bad = await respaldo(['backup']);
    expect(bad.code).toBe(2);
    expect(bad.stderr).toContain('unknown command "backup"');
  });

  it('prints JSON lines with --json: events for runs, a result for status', async () => {
    const src = tempDir();
    writeTree(src, { 'a.txt': 'a' });
    const d = await deployment([{ name: 'app', paths: [src] }]);
    const run = await d.run('run', '--all', '--json');
    expect(run.code).toBe(0);
    const events = run.stdout.trim().split('\n').map((l) => JSON.parse(l));
    expect(events.map((e) => e.type)).toEqual(['repo-start', 'repo-done']);
    expect(events[1]).toMatchObject({ repository: 'app', files: 1, seq: 2, level: 'checksum' });
    const status = await d.run('status', '--json');
    const result = JSON.parse(status.stdout.trim());
    expect(result.type).toBe('result');
    expect(result.data.repositories[0]).toMatchObject({ name: 'app', kind: 'files', state: 'ok', schedule: 'every 60d', lastGood: { record: 2 } });
    const failing = await respaldo(['status', '--json', '--config', '/nonexistent.yaml']);
    expect(failing.code).toBe(2);
    expect(JSON.parse(failing.stdout)).toMatchObject({ type: 'error', exitCode: 2 });
  });

  it('is silent under cron when all is well, and shows progress bars on a terminal', async () => {
    const src = tempDir();
    writeTree(src, { 'big.bin': Buffer.alloc(64 * 1024 * 1024, 7), 'a.txt': 'a' });
    const d = await deployment([{ name: 'app', paths: [src] }]);
    const cron = await d.run('run', '--all');
    expect(cron.code).toBe(0);
    expect(cron.stdout).toBe('');
    expect(cron.stderr).toBe('');
    writeTree(src, { 'big.bin': Buffer.alloc(64 * 1024 * 1024, 8) });
    // util-linux's script gives the agent a pseudo-terminal, as a person at a shell would.
    const tty = spawnSync('script', ['-q', '-e', '-c', `${process.execPath} ${MAIN} run --all --config ${d.config}`, '/dev/null'], { encoding: 'utf8' });
    expect(tty.status, tty.stdout).toBe(0);
    expect(tty.stdout).toMatch(/\r\x1b\[K {2}app copy {3}\[#+-*\] +\d+%/);
    expect(tty.stdout).toContain('app verify');
    expect(tty.stdout).toMatch(/app: done, 2 files/);
  });
});
