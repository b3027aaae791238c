/**
 * `kill -9` at random moments of a run, many times. Whatever the moment, no snapshot may
 * look complete without being so, the chain of records must stay whole, and the next run
 * must succeed and account for every complete snapshot.
 */
import { spawn } from 'node:child_process';
import { createHash } from 'node:crypto';
import { readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { parse } from 'yaml';
import { deployment, MAIN, respaldo, tempDir, writeTree, type Deployment } from './helpers.js';

/** Checks a visible snapshot against its manifest, file by file: it must be whole. */
function assertComplete(d: Deployment, repo: string, id: string): void {
  const dir = join(d.target, d.host, repo, 'snapshots', id);
  const names = readdirSync(dir).sort();
  expect(names, `${repo}/${id}`).toEqual(['data', 'manifest.jsonl', 'snapshot.yaml']);
  const manifestBytes = readFileSync(join(dir, 'manifest.jsonl'));
  const summary = parse(readFileSync(join(dir, 'snapshot.yaml'), 'utf8'));
  expect(`sha256:${createHash('sha256').update(manifestBytes).digest('hex')}`).toBe(summary.manifest);
  const entries = manifestBytes.toString().trim().split('\n').map((l) => JSON.parse(l) as { path: string; type: string; sha256?: string; size: number });
  expect(entries.filter((e) => e.type === 'f').length).toBe(summary.size.files);
  for (const e of entries) {
    if (e.type !== 'f') continue;
    const bytes = readFileSync(join(dir, 'data', e.path));
    expect(bytes.length, e.path).toBe(e.size);
    expect(createHash('sha256').update(bytes).digest('hex'), e.path).toBe(e.sha256);
  }
}

function runAndKill(d: Deployment, afterMs: number): Promise<number | null> {
  return new Promise((resolve) => {
    const child = spawn(process.execPath, [MAIN, 'run', '--all', '--config', d.config], { stdio: 'ignore' });
    const timer = setTimeout(() => child.kill('SIGKILL'), afterMs);
    child.on('close', (code) => {
      clearTimeout(timer);
      resolve(code);
    });
  });
}

describe('kill -9 at random moments', () => {
  it('never leaves a half snapshot or a broken chain, and the next run succeeds', async () => {
    const src = tempDir();
    const files: Record<string, string | Buffer> = {};
    for (let i = 0; i < 1500; i++) files[`tree/d${i % 30}/f${i}.txt`] = `file ${i}\n`.repeat(1 + (i % 50));
    for (let i = 0; i < 4; i++) files[`big/blob${i}.bin`] = Buffer.alloc(6_000_000, i + 1);
    writeTree(src, files);
    const d = await deployment([
      { name: 'one', paths: [join(src, 'tree')] },
      { name: 'two', paths: [join(src, 'big')] },
    ]);

    // How long an uninterrupted run takes, to spread the kills over all of its stages.
    expect((await d.run('run', '--all')).code).toBe(0);
    writeFileSync(join(src, 'big/blob0.bin'), Buffer.alloc(6_000_000, 99));
    const t0 = Date.now();
    expect((await d.run('run', '--all')).code).toBe(0);
    const span = Math.max(200, Date.now() - t0);

    const checked = new Set<string>();
    const iterations = Number(process.env.RESPALDO_KILL_ITERATIONS ?? 30);
    let killed = 0;
    for (let i = 0; i < iterations; i++) {
      // Something to back up each time: a changed text file and a changed big file.
      writeFileSync(join(src, `tree/d${i % 30}/f${i}.txt`), `changed in round ${i}\n`);
      writeFileSync(join(src, `big/blob${i % 4}.bin`), Buffer.alloc(6_000_000, 100 + i));
      const code = await runAndKill(d, Math.random() * span);
      if (code === null) killed++;
      for (const repo of ['one', 'two']) {
        for (const id of d.snapshots(repo)) {
          if (checked.has(`${repo}/${id}`)) continue;
          assertComplete(d, repo, id);
          checked.add(`${repo}/${id}`);
        }
      }
      const verify = await respaldo(['records', 'verify', d.records]);
      expect(verify.code, `round ${i}: ${verify.stdout}`).toBe(0);
    }
    expect(killed).toBeGreaterThan(iterations / 3);

    const last = await d.run('run', '--all');
    expect(last.code, last.stderr).toBe(0);
    const verify = await respaldo(['records', 'verify', d.records]);
    expect(verify.code, verify.stdout).toBe(0);
    expect(verify.stdout).not.toMatch(/warning/);

    // Every complete snapshot is recorded, and every backup record's snapshot exists.
    const recorded = d
      .recordFiles()
      .filter((f) => f.endsWith('-backup.yaml'))
      .map((f) => parse(readFileSync(join(d.records, f), 'utf8')) as { repository: string; snapshot: { id: string } })
      .map((r) => `${r.repository}/${r.snapshot.id}`);
    const visible = ['one', 'two'].flatMap((repo) => d.snapshots(repo).map((id) => `${repo}/${id}`));
    expect([...new Set(recorded)].sort()).toEqual([...visible].sort());
    for (const repo of ['one', 'two']) expect(readdirSync(join(d.target, d.host, repo, 'incomplete'))).toEqual([]);
  }, 600_000);
});
