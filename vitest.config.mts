import { defineConfig } from 'vitest/config';

export default defineConfig({
  test: {
    include: ['test/**/*.test.ts'],
    pool: 'forks',
    poolOptions: {
      // --expose-gc: tests prove that slots keep memory alive through GC.
      forks: { execArgv: ['--expose-gc'], singleFork: true },
    },
    // Guests under the TCG sandbox run 50-100x slower than on hardware.
    testTimeout: 120_000,
    hookTimeout: 120_000,
  },
});
