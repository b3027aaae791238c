import { chromium } from 'playwright-core';
import { mkdtempSync } from 'node:fs';
const [dir, ...pages] = process.argv.slice(2);
const ctx = await chromium.launchPersistentContext(mkdtempSync('/tmp/prof-'), { executablePath: '/usr/bin/chromium', viewport: { width: 1300, height: 900 }, args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking', '--disable-component-update', '--disable-sync'] });
const p = await ctx.newPage();
p.on('console', (m) => console.log('console', m.type(), m.text()));
p.on('pageerror', (e) => console.log('pageerror', e.message));
p.on('requestfailed', (r) => console.log('failed', r.url()));
for (const page of pages) {
  await p.goto(`file://${dir}/${page}`);
  await p.screenshot({ path: `/tmp/shots/${page.replace(/\//g, '_')}.png`, fullPage: true });
}
await ctx.close();
