import { defineConfig } from 'vitest/config';

export default defineConfig({
  test: {
    include: ['agent/**/*.test.ts', 'schemas/**/*.test.ts', 'site/**/*.test.ts', 'test/**/*.test.ts'],
    // Tests that cross parts spawn the compiled agent: build it once before any test runs.
    globalSetup: ['test/global-setup.ts'],
    testTimeout: 120_000,
    hookTimeout: 120_000,
    pool: 'forks',
  },
});
