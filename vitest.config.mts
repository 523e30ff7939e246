import { fileURLToPath } from 'node:url';
import { defineConfig } from 'vitest/config';

export default defineConfig({
  // Examples import 'node-kvm' as users do; in tests that is the source, so
  // that tests and examples share one copy of the library.
  resolve: { alias: { 'node-kvm': fileURLToPath(new URL('./lib/index.ts', import.meta.url)) } },
  test: {
    include: ['test/**/*.test.ts'],
    setupFiles: ['test/setup.ts'],
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
