// Runs before every test file (vitest.config.mts: setupFiles).
import { afterEach } from 'vitest';

// A turn of the event loop after each test. Tests that spawn child
// processes synchronously block this worker, and vitest awaits between
// tests only in microtasks: without a turn its replies to the worker's
// progress reports wait, and under the sandbox's emulator a file of such
// tests outlasted vitest's 60 s RPC timeout, which ended the run.
afterEach(() => new Promise<void>((resolve) => setImmediate(resolve)));
