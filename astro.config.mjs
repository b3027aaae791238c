// The compliance site: built from a records folder alone, no server or database at run time.
// RESPALDO_RECORDS names the records folder (default ./records); RESPALDO_SITE_OUT the output.
import { defineConfig, passthroughImageService } from 'astro/config';

export default defineConfig({
  srcDir: './site',
  outDir: process.env.RESPALDO_SITE_OUT ?? './site-dist',
  // Plain files an auditor can open from a USB stick or any web server.
  output: 'static',
  build: { format: 'file' },
  image: { service: passthroughImageService() },
});
