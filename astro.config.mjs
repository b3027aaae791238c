// The compliance site: built from a records folder alone, no server or database at run time.
// `respaldo site build` sets RESPALDO_RECORDS, RESPALDO_SITE_OUT, RESPALDO_SITE_CACHE and the rest (site/lib/load.ts).
import { defineConfig, passthroughImageService } from 'astro/config';

export default defineConfig({
  srcDir: './site',
  outDir: process.env.RESPALDO_SITE_OUT ?? './site-dist',
  // Each build keeps Vite's and Astro's working files apart, so that two builds can run at once.
  cacheDir: process.env.RESPALDO_SITE_RUN ? `${process.env.RESPALDO_SITE_RUN}/astro` : './node_modules/.astro',
  // Plain files an auditor can open from a USB stick or any web server: relative links, styles inline.
  output: 'static',
  build: { format: 'file', inlineStylesheets: 'always' },
  image: { service: passthroughImageService() },
  devToolbar: { enabled: false },
});
