import { defineConfig } from 'vitest/config';

export default defineConfig({
  test: {
    include: ['tests/**/*.test.ts'],
    setupFiles: ['tests/setup/relaxed-simd.ts', 'tests/setup/yield.ts'],
    testTimeout: 60_000,
    hookTimeout: 120_000,
    // Sandboxes and training are CPU-heavy; two files at a time suit two cores.
    maxWorkers: 2,
    minWorkers: 1,
  },
});
