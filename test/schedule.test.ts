/**
 * Hourly cron, simulated with a clock: `respaldo run` backs up what is due, skips what is
 * not, and catches up after the server was off; `status` and `cron` say so.
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { parse } from 'yaml';
// The compiled agent: its hashing worker is a compiled file.
import { runCron } from '../dist/agent/commands/cron.js';
import { runRun } from '../dist/agent/commands/run.js';
import { runStatus } from '../dist/agent/commands/status.js';
import { memoryReporter } from '../dist/agent/report.js';
import { V8_FLAGS } from '../dist/agent/runtime.js';
import { clock, deployment, ROOT, tempDir, writeTree } from './helpers.js';

describe('schedules through runs', () => {
  it('does what is due, skips the rest, catches up after downtime', async () => {
    const src = tempDir();
    writeTree(src, { 'a.txt': 'a' });
    const d = await deployment([
      { name: 'daily', paths: [src], schedule: { every: '1d' } },
      { name: 'weekly', kind: 'source', paths: [src] },
    ]);
    const c = clock('2026-11-02T03:17:00Z');
    const reporter = memoryReporter();
    const ctx = { cwd: ROOT, env: process.env, now: c.now, reporter, signal: new AbortController().signal };
    const run = () => runRun(ctx, { config: d.config, repos: [], all: false, manual: false, verify: undefined, progress: false });
    const backups = () => d.recordFiles().filter((f) => f.endsWith('backup.yaml')).map((f) => parse(readFileSync(join(d.records, f), 'utf8')).repository as string);

    expect(await run()).toBe(0); // both never backed up
    expect(backups()).toEqual(['daily', 'weekly']);
    for (let h = 0; h < 23; h++) {
      c.advance(1);
      expect(await run()).toBe(0);
    }
    expect(backups()).toHaveLength(2); // nothing due for 23 hours
    c.advance(1);
    expect(await run()).toBe(0);
    expect(backups()).toEqual(['daily', 'weekly', 'daily']); // the next day at the same time

    // The server is off for 10 days: the first run back does each repository once.
    c.advance(240);
    await runStatus(ctx, { config: d.config });
    const status = reporter.results.at(-1) as { repositories: { name: string; state: string }[] };
    expect(status.repositories.map((r) => [r.name, r.state])).toEqual([
      ['daily', 'overdue'],
      ['weekly', 'overdue'],
    ]);
    expect(await run()).toBe(0);
    expect(backups()).toEqual(['daily', 'weekly', 'daily', 'daily', 'weekly']);
    c.advance(1);
    expect(await run()).toBe(0);
    expect(backups()).toHaveLength(5);

    await runStatus(ctx, { config: d.config });
    const text = reporter.texts.at(-1)!;
    // Nothing changed in the source since the first backup: the catch-up recorded that snapshot again.
    expect(text).toMatch(/daily\s+files\s+unrequested\s+every 1d\s+2026-11-13 03:17 \(unchanged since 20261102T031700Z\)\s+2026-11-14 \d\d:\d\d\s+JAA ok 2026-11-13 03:17\s+ok/);
    expect(text).toMatch(/weekly\s+source\s+unrequested\s+every 7d/);
  });

  it('prints a cron.d file with absolute paths', async () => {
    const src = tempDir();
    writeTree(src, { 'a.txt': 'a' });
    const d = await deployment([{ name: 'app', paths: [src] }]);
    const reporter = memoryReporter();
    await runCron({ cwd: ROOT, env: process.env, now: () => new Date(), reporter, signal: new AbortController().signal }, { config: d.config });
    const text = reporter.texts[0]!;
    // node's memory flags, as on the script's first line (runtime.ts).
    const shebang = readFileSync(join(ROOT, 'dist/agent/main.js'), 'utf8').split('\n')[0]!;
    const flags = shebang.replace('#!/usr/bin/env -S node ', '');
    expect(flags).toBe(V8_FLAGS.join(' '));
    expect(text).toContain(`root ${process.execPath} ${flags} `);
    expect(text).toMatch(new RegExp(`^\\d{1,2} \\* \\* \\* \\* root ${process.execPath} [-=\\w ]+ /\\S+/dist/agent/main\\.js run --config ${d.config}$`, 'm'));
    expect(text).toContain('PATH=/usr/local/sbin');
    expect(text).not.toContain('archive-binlogs');
  });

  it('adds a line every 5 minutes that archives the binary logs of each MariaDB repository with point-in-time recovery', async () => {
    const db = (name: string, extra: Record<string, unknown>) => ({ name, kind: 'database' as const, engine: 'mariadb', databases: ['shop'], ...extra });
    const d = await deployment([db('shop-db', { pitr: true }), db('crm-db', {}), db('erp-db', { pitr: true }), { name: 'pg-db', kind: 'database', engine: 'postgresql', databases: ['x'], pitr: true }]);
    const reporter = memoryReporter();
    await runCron({ cwd: ROOT, env: process.env, now: () => new Date(), reporter, signal: new AbortController().signal }, { config: d.config });
    const lines = reporter.texts[0]!.split('\n').filter((l) => l.includes('archive-binlogs'));
    expect(lines).toEqual([
      expect.stringMatching(new RegExp(`^\\*/5 \\* \\* \\* \\* root ${process.execPath} [-=\\w ]+ /\\S+/dist/agent/main\\.js db archive-binlogs --config ${d.config} --repo shop-db$`)),
      expect.stringMatching(/ db archive-binlogs --config \S+ --repo erp-db$/),
    ]);
  });
});
