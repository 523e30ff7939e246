// Builds the C side of `npm run bench` into build/: the programs, and
// bench/inproc.c as a Node-API module for bench/parts.mjs (it needs Node's
// headers, as the addon does; without them it is not built).
import { execFileSync } from 'node:child_process';
import { existsSync, mkdirSync, rmSync } from 'node:fs';
import { homedir } from 'node:os';
import { join } from 'node:path';
import { nodeDir } from '../scripts/build-addon.mjs';
import { root } from './harness.mjs';

export const INPROC = join(root, 'build/bench-inproc.node');

export function buildC() {
  mkdirSync(join(root, 'build'), { recursive: true });
  const gcc = (out, src, extra = []) =>
    execFileSync('gcc', ['-O2', '-Wall', '-Wextra', ...extra, '-o', join(root, 'build', out), join(root, 'bench', src)], { stdio: 'inherit' });
  for (const name of ['exits', 'memory', 'fastpaths']) gcc(`bench-${name}`, `${name}.c`);
  const dir = nodeDir();
  const headers = [dir && join(dir, 'include/node'), join(homedir(), '.cache/node-gyp', process.versions.node, 'include/node')]
    .find((d) => d && existsSync(join(d, 'node_api.h')));
  rmSync(INPROC, { force: true });
  if (headers) gcc('bench-inproc.node', 'inproc.c', ['-shared', '-fPIC', `-I${headers}`]);
}
