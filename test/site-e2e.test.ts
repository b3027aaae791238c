/**
 * The compliance site in Chromium, built from records the real agent wrote: the demo
 * deployment (requests approved with JAA's signed commits, backups, copies to CSC, a restore,
 * a checkpoint), then more runs, a failed backup, and a restore that had to borrow CSC's copy.
 * Screenshots of the main pages go to test-results/site/.
 */
import { execFileSync } from 'node:child_process';
import { cpSync, existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { join, relative } from 'node:path';
import { pathToFileURL } from 'node:url';
import { chromium, type BrowserContext, type Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parse } from 'yaml';
import { respaldo, ROOT, tempDir } from './helpers.js';

const SHOTS = join(ROOT, 'test-results/site');
const HOST = 'demo-web01';

/** Every record of the demo host, parsed. */
function records(dir: string): Record<string, any>[] {
  const base = join(dir, 'hosts', HOST);
  return readdirSync(base, { recursive: true, encoding: 'utf8' })
    .filter((n) => n.endsWith('.yaml'))
    .sort()
    .map((n) => parse(readFileSync(join(base, n), 'utf8')));
}

/** Every .html file of a built site, relative to it. */
function pagesOf(site: string): string[] {
  return readdirSync(site, { recursive: true, encoding: 'utf8' })
    .filter((n) => n.endsWith('.html'))
    .sort();
}

async function build(args: string[]): Promise<void> {
  const r = await respaldo(['site', 'build', ...args]);
  expect(r.code, r.stderr).toBe(0);
}

describe('the compliance site in Chromium', () => {
  const demo = join(tempDir(), 'demo');
  const site = join(tempDir(), 'site');
  const later = new Date(Date.now() + 3 * 86_400_000).toISOString();
  let browser: BrowserContext;
  let page: Page;
  const problems: string[] = [];

  beforeAll(async () => {
    const d = await respaldo(['demo', '--dir', demo]);
    expect(d.code, d.stderr).toBe(0);
    const config = join(demo, 'agent.yaml');
    // More runs, so that the forms fill more than one printed sheet.
    for (let i = 0; i < 6; i++) {
      const r = await respaldo(['run', '--config', config, '--all', '--manual']);
      expect(r.code, r.stderr).toBe(0);
    }
    // The uploads folder disappears: the next backup of it fails and is logged.
    renameSync(join(demo, 'sources/uploads'), join(demo, 'sources/uploads.moved'));
    const failed = await respaldo(['run', '--config', config, '--repo', 'uploads', '--manual']);
    expect(failed.code).toBe(3);
    renameSync(join(demo, 'sources/uploads.moved'), join(demo, 'sources/uploads'));
    // JAA's copy of the portal's newest snapshot is lost: the restore borrows CSC's (a media loan, FOR 7.5 CSC 03).
    const snaps = readdirSync(join(demo, 'target', HOST, 'portal/snapshots')).sort();
    rmSync(join(demo, 'target', HOST, 'portal/snapshots', snaps.at(-1)!), { recursive: true, force: true });
    const restored = await respaldo(['restore', '--config', config, 'portal', '--snapshot', snaps.at(-1)!, '--to', join(demo, 'restored/portal'), '--reason', 'physical-damage']);
    expect(restored.code, restored.stderr).toBe(0);
    // Judged three days later: the daily database backup was missed.
    await build(['--records', join(demo, 'records'), '--out', site, '--cache', join(demo, 'cache'), '--now', later]);

    browser = await chromium.launchPersistentContext(mkdtempSync(join(tempDir(), 'chromium-')), {
      executablePath: '/usr/bin/chromium',
      viewport: { width: 1280, height: 900 },
      args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking', '--disable-component-update', '--disable-sync'],
    });
    page = await browser.newPage();
    page.setDefaultTimeout(10_000);
    page.on('console', (m) => {
      if (m.type() === 'error' || m.type() === 'warning') problems.push(`console ${m.type()}: ${m.text()} (${page.url()})`);
    });
    page.on('pageerror', (e) => problems.push(`page error: ${e.message} (${page.url()})`));
    page.on('requestfailed', (r) => problems.push(`request failed: ${r.url()} ${r.failure()?.errorText}`));
    page.on('request', (r) => {
      if (!r.url().startsWith('file://') && !r.url().startsWith('http://127.0.0.1:')) problems.push(`external request: ${r.url()}`);
    });
    mkdirSync(SHOTS, { recursive: true });
  }, 600_000);

  afterAll(async () => {
    await browser?.close();
  });

  const open = async (path: string, root = site) => {
    await page.goto(pathToFileURL(join(root, path)).href);
  };

  it('the panel shows each repository in its state: the missed daily backup overdue, the failed one failed, the unrequested one so', async () => {
    await open('index.html');
    const stateOf = (repo: string) => page.locator(`tr[data-repo="${HOST}/${repo}"]`).getAttribute('data-state');
    expect(await stateOf('portal-db')).toBe('overdue');
    expect(await stateOf('uploads')).toBe('failed');
    expect(await stateOf('portal')).toBe('ok');
    expect(await stateOf('server-config')).toBe('unrequested');
    await expect(page.locator(`tr[data-repo="${HOST}/portal-db"] .state`).innerText()).resolves.toBe('atrasado');
    await page.screenshot({ path: join(SHOTS, 'panel.png'), fullPage: true });
  });

  it('each form lists the right rows, period by period', async () => {
    const all = records(join(demo, 'records'));
    const backups = all.filter((r) => r.type === 'backup');
    const expected: Record<string, Record<string, number>> = {
      'dse-02': { backup: backups.filter((r) => r.kind === 'source').length },
      'dse-03': { backup: backups.filter((r) => r.kind === 'database').length },
      'dse-04': { backup: backups.filter((r) => r.kind === 'config' || r.kind === 'files').length },
      'dse-05': { request: readdirSync(join(demo, 'records/requests')).length, restore: all.filter((r) => r.type === 'restore').length, failure: all.filter((r) => r.type === 'failure').length },
      'csc-02': { copy: all.filter((r) => r.type === 'copy').length },
      'csc-03': { loan: all.filter((r) => r.type === 'media-loan').length },
      'csc-01': { plan: 4 },
    };
    // What the agent wrote: more than one of each, so that a form listing nothing would fail.
    expect(expected['dse-05']).toEqual({ request: 4, restore: 2, failure: 1 });
    expect(expected['csc-03']!.loan).toBe(1);
    for (const [slug, rows] of Object.entries(expected)) {
      const pages = pagesOf(site).filter((p) => p.startsWith(`forms/${slug}/`));
      expect(pages.length, slug).toBeGreaterThan(0);
      const counted: Record<string, number> = {};
      for (const p of pages) {
        await open(p);
        for (const kind of Object.keys(rows)) counted[kind] = (counted[kind] ?? 0) + (await page.locator(`tr[data-row="${kind}"]`).count());
        // Every page is the paper form: code, title, revision and who prepared and approved it.
        const head = page.locator('table.formhead').first();
        await expect(head.innerText()).resolves.toMatch(new RegExp(`FOR 7\\.5 ${slug.slice(0, 3).toUpperCase()} ${slug.slice(4)}[\\s\\S]*Revisión 7[\\s\\S]*Elaboró: Jefe del Departamento[\\s\\S]*Aprobó: Coordinador General`));
      }
      expect(counted, slug).toEqual(rows);
    }
    // The daily database backups missed after the last run are holes on DSE 03, not absences.
    const dse03 = pagesOf(site).filter((p) => p.startsWith('forms/dse-03/'));
    let gaps = 0;
    for (const p of dse03) {
      await open(p);
      gaps += await page.locator('tr[data-row="gap"]').count();
    }
    expect(gaps).toBeGreaterThan(0);
    await open(dse03.at(-1)!);
    await page.screenshot({ path: join(SHOTS, 'form-dse-03.png'), fullPage: true });
    await open('retention.html');
    await expect(page.locator('section[data-form="FOR 7.5 DSE 03"] tr[data-row="gap"]').count()).resolves.toBeGreaterThan(0);
    await page.screenshot({ path: join(SHOTS, 'retention.png'), fullPage: true });
  });

  it('the language switch turns every page to English and back, and is remembered', async () => {
    await open('index.html');
    const h1 = page.locator('h1');
    await expect(h1.innerText()).resolves.toBe('Panel de respaldos');
    await page.getByRole('button', { name: 'English' }).click();
    await expect(h1.innerText()).resolves.toBe('Backup dashboard');
    await expect(page.locator('html').getAttribute('lang')).resolves.toBe('en');
    await expect(page.locator(`tr[data-repo="${HOST}/portal-db"] .state`).innerText()).resolves.toBe('overdue');
    await page.getByRole('link', { name: 'Requests' }).click();
    await page.waitForURL(/requests\.html$/);
    await expect.poll(() => h1.innerText()).toBe('Requests (FOR 7.5 DSE 05)');
    await page.screenshot({ path: join(SHOTS, 'requests-en.png'), fullPage: true });
    await page.getByRole('button', { name: 'Español' }).click();
    await expect(h1.innerText()).resolves.toBe('Solicitudes (FOR 7.5 DSE 05)');
    await expect(page.locator('html').getAttribute('lang')).resolves.toBe('es');
  });

  it('opened from a folder (file://), every page and link works with no console error and no request leaving the folder', async () => {
    problems.length = 0;
    const seen = new Set<string>();
    const queue = ['index.html'];
    const missing: string[] = [];
    while (queue.length > 0) {
      const p = queue.shift()!;
      if (seen.has(p)) continue;
      seen.add(p);
      await open(p);
      const hrefs = await page.locator('a[href]').evaluateAll((as) => as.map((a) => (a as HTMLAnchorElement).href));
      for (const href of hrefs) {
        const url = new URL(href);
        expect(url.protocol, `${p} links to ${href}`).toBe('file:');
        const target = relative(site, decodeURIComponent(url.pathname));
        if (!existsSync(join(site, target))) missing.push(`${p} → ${target}`);
        else if (target.endsWith('.html') && !seen.has(target)) queue.push(target);
      }
    }
    expect(missing).toEqual([]);
    expect([...seen].sort()).toEqual(pagesOf(site));
    // Nothing else in the folder but the search index and what the build says of itself.
    const others = readdirSync(site, { recursive: true, withFileTypes: true }).filter((e) => e.isFile() && !e.name.endsWith('.html'));
    expect(others.map((e) => relative(site, join(e.parentPath, e.name))).sort()).toEqual(['respaldo-site.json', 'search-index.js']);
    // Search, offline: the index is a script next to the page.
    await open('index.html');
    await page.locator('#q').fill('portal-db');
    await page.locator('#q').press('Enter');
    await page.waitForURL(/search\.html\?q=portal-db/);
    await expect(page.locator('#results li').count()).resolves.toBeGreaterThan(5);
    await page.locator('#results a', { hasText: `${HOST}/portal-db` }).first().click();
    await expect(page.locator('h1').innerText()).resolves.toBe(`${HOST} / portal-db`);
    await page.screenshot({ path: join(SHOTS, 'repository.png'), fullPage: true });
    expect(problems).toEqual([]);
    // Keyboard: the first Tab reaches the skip link, which leads to the content.
    await open('index.html');
    await page.keyboard.press('Tab');
    await expect(page.evaluate(() => document.activeElement?.textContent)).resolves.toContain('Saltar al contenido');
  });

  it('served by a web server under a base path, the pages link to each other there', async () => {
    const { createServer } = await import('node:http');
    const base = '/auditoria/respaldos 2026/';
    const server = createServer((req, res) => {
      const path = decodeURIComponent(new URL(req.url!, 'http://x').pathname);
      const file = path.startsWith(base) ? join(site, path.slice(base.length) || 'index.html') : '';
      if (!file || !existsSync(file) || !file.startsWith(site)) {
        res.writeHead(404).end();
        return;
      }
      res.writeHead(200, { 'content-type': file.endsWith('.js') ? 'text/javascript' : 'text/html; charset=utf-8' }).end(readFileSync(file));
    });
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    const port = (server.address() as { port: number }).port;
    const failed: string[] = [];
    const onResponse = (r: { status(): number; url(): string }) => {
      if (r.status() >= 400) failed.push(`${r.status()} ${r.url()}`);
    };
    page.on('response', onResponse);
    try {
      await page.goto(`http://127.0.0.1:${port}${encodeURI(base)}index.html`);
      await page.getByRole('link', { name: 'Formatos' }).click();
      await expect(page.locator('h1').innerText()).resolves.toBe('Formatos');
      await page.locator('a[href^="forms/dse-03/"]').first().click();
      await expect(page.locator('table.formhead').count()).resolves.toBeGreaterThan(0);
      await page.getByRole('link', { name: 'Búsqueda' }).click();
      await page.locator('#sq').fill('portal');
      await expect(page.locator('#results li').count()).resolves.toBeGreaterThan(0);
      expect(new URL(page.url()).pathname).toBe(`${encodeURI(base)}search.html`);
      expect(failed).toEqual([]);
    } finally {
      page.off('response', onResponse);
      server.close();
    }
  });

  it('a record page shows every field, the raw YAML, its chain and the ssh-keygen command that checks it', async () => {
    await open(`records/${HOST}/1.html`);
    const article = page.locator('article#r2-backup');
    await expect(article.getAttribute('data-genuine')).resolves.toBe('true');
    const text = await article.innerText();
    expect(text).toContain('verification.level');
    expect(text).toContain(`ssh-keygen -Y verify -f policy/allowed_signers -I ${HOST} -n respaldo-record -s hosts/${HOST}/`);
    const yaml = await article.locator('pre').first().textContent();
    const file = readdirSync(join(demo, 'records/hosts', HOST), { recursive: true, encoding: 'utf8' }).find((n) => n.endsWith('00000002-backup.yaml'))!;
    expect(yaml).toBe(readFileSync(join(demo, 'records/hosts', HOST, file), 'utf8'));
    // The command, run as shown in the records folder, accepts the record.
    const command = (await article.locator('pre code').last().textContent())!;
    execFileSync('bash', ['-c', command], { cwd: join(demo, 'records') });
    await page.screenshot({ path: join(SHOTS, 'records.png') });
  });

  it('a tampered record puts the integrity banner on every page, and --strict refuses to build', async () => {
    const copy = join(tempDir(), 'records');
    cpSync(join(demo, 'records'), copy, { recursive: true });
    // First built intact, so that the rebuild has pages and checks it could wrongly reuse.
    const tampered = join(tempDir(), 'tampered');
    const cache = join(tempDir(), 'cache');
    await build(['--records', copy, '--out', tampered, '--cache', cache]);
    expect(readFileSync(join(tampered, `records/${HOST}/1.html`), 'utf8')).not.toContain('data-genuine="false"');
    const file = readdirSync(join(copy, 'hosts', HOST), { recursive: true, encoding: 'utf8' }).find((n) => n.endsWith('00000003-backup.yaml'))!;
    const path = join(copy, 'hosts', HOST, file);
    writeFileSync(path, readFileSync(path, 'utf8').replace('trigger: scheduled', 'trigger: manual'));
    await build(['--records', copy, '--out', tampered, '--cache', cache]);
    for (const p of pagesOf(tampered)) {
      await open(p, tampered);
      const banner = page.locator('.banner[data-integrity="broken"]');
      await expect(banner.count(), p).resolves.toBe(1);
    }
    await open('integrity.html', tampered);
    await expect(page.locator('.problems').innerText()).resolves.toContain('00000003-backup.yaml');
    await page.screenshot({ path: join(SHOTS, 'integrity-broken.png'), fullPage: true });
    await open(`records/${HOST}/1.html`, tampered);
    await expect(page.locator('article#r3-backup').getAttribute('data-genuine')).resolves.toBe('false');
    await expect(page.locator('article#r4-backup').getAttribute('data-genuine')).resolves.toBe('false');

    // --strict: no site, the previous one untouched, and the reason named.
    const before = readFileSync(join(site, 'index.html'));
    const strict = await respaldo(['site', 'build', '--records', copy, '--out', site, '--cache', join(tempDir(), 'cache'), '--strict']);
    expect(strict.code).toBe(3);
    expect(strict.stderr).toContain('00000003-backup.yaml');
    expect(readFileSync(join(site, 'index.html')).equals(before)).toBe(true);
  });

  it('a form printed to PDF (A4 and Letter) has the header block on every sheet, numbered', async () => {
    const form = pagesOf(site).find((p) => p.startsWith('forms/csc-02/'))!;
    await open(form);
    for (const format of ['A4', 'Letter'] as const) {
      const pdf = join(tempDir(), `form-${format}.pdf`);
      await page.pdf({ path: pdf, format, printBackground: true });
      const text = execFileSync('pdftotext', ['-layout', pdf, '-'], { encoding: 'utf8' });
      const sheets = text.split('\f').filter((s) => s.trim() !== '');
      expect(sheets.length, format).toBeGreaterThan(1);
      sheets.forEach((sheet, i) => {
        expect(sheet, `${format} sheet ${i + 1}`).toContain('FOR 7.5 CSC 02');
        expect(sheet).toContain('Formato de Entrega recepción de Respaldos');
        expect(sheet).toMatch(/Elaboró: Jefe del Departamento/);
        expect(sheet).toContain(`Página ${i + 1} de ${sheets.length}`);
      });
    }
  });

  it('axe finds no serious or critical accessibility violation on the main pages, in either language', async () => {
    const axe = readFileSync(createRequire(import.meta.url).resolve('axe-core/axe.min.js'), 'utf8');
    const main = ['index.html', 'forms.html', pagesOf(site).find((p) => p.startsWith('forms/dse-03/'))!, pagesOf(site).find((p) => p.startsWith('forms/dse-05/'))!, 'retention.html', 'procedure.html', 'requests.html', 'integrity.html', 'search.html', `hosts/${HOST}.html`, `repos/${HOST}/portal-db.html`, `records/${HOST}/1.html`];
    const found: string[] = [];
    for (const lang of ['es', 'en']) {
      for (const p of main) {
        await open(p);
        if ((await page.locator('html').getAttribute('lang')) !== lang) await page.locator(`button[data-set-lang="${lang}"]`).click();
        await page.addScriptTag({ content: axe });
        const violations = await page.evaluate(async () => (await (window as any).axe.run(document, { resultTypes: ['violations'] })).violations as { id: string; impact: string; nodes: { target: string[] }[] }[]);
        for (const v of violations.filter((x) => x.impact === 'serious' || x.impact === 'critical')) found.push(`${lang} ${p}: ${v.id} (${v.impact}) at ${v.nodes.slice(0, 3).map((n) => n.target.join(' ')).join(', ')}`);
        if (lang === 'es' && ['procedure.html', `hosts/${HOST}.html`, 'forms.html'].includes(p)) await page.screenshot({ path: join(SHOTS, `${p.replace(/[/.]/g, '-')}.png`), fullPage: true });
      }
    }
    expect(found).toEqual([]);
  });

  it('respaldo site watch rebuilds when a record arrives', async () => {
    const out = join(tempDir(), 'watched');
    const { spawn } = await import('node:child_process');
    const child = spawn(process.execPath, [join(ROOT, 'dist/agent/main.js'), 'site', 'watch', '--records', join(demo, 'records'), '--out', out, '--cache', join(tempDir(), 'cache'), '--json'], { stdio: ['ignore', 'pipe', 'pipe'] });
    let output = '';
    child.stdout.on('data', (c) => (output += c));
    child.stderr.on('data', (c) => (output += c));
    try {
      const waitFor = async (what: () => boolean, ms: number) => {
        for (const end = Date.now() + ms; Date.now() < end; await new Promise((r) => setTimeout(r, 200))) if (what()) return;
        throw new Error(`timed out; output:\n${output}`);
      };
      await waitFor(() => output.includes('watching'), 120_000);
      const before = readFileSync(join(out, 'index.html'), 'utf8');
      expect(before).toContain('data-integrity="intact"');
      // A new run adds records; the site follows.
      const r = await respaldo(['run', '--config', join(demo, 'agent.yaml'), '--repo', 'portal-db', '--manual']);
      expect(r.code, r.stderr).toBe(0);
      await waitFor(() => existsSync(join(out, 'index.html')) && readFileSync(join(out, 'index.html'), 'utf8') !== before && (output.match(/site: /g) ?? []).length >= 2, 120_000);
      const total = records(join(demo, 'records')).length;
      expect(output).toContain(`site: ${total} records (${total} genuine, 0 broken`);
    } finally {
      child.kill('SIGINT');
      await new Promise((r) => child.once('exit', r));
    }
  });
});
