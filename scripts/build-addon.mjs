// Builds the native addon with node-gyp. With --if-missing (the package's
// install script) it does nothing when a build or a prebuild is present.
import { existsSync } from 'node:fs';
import { spawnSync } from 'node:child_process';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { createRequire } from 'node:module';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const built = join(root, 'build/Release/node_kvm.node');
const prebuilt = join(root, `prebuilds/${process.platform}-${process.arch}/node_kvm.node`);
if (process.argv.includes('--if-missing') && (existsSync(built) || existsSync(prebuilt))) process.exit(0);

// npm puts its bundled node-gyp on PATH for scripts; fall back to npm's copy.
function nodeGyp() {
  const which = spawnSync('sh', ['-c', 'command -v node-gyp'], { encoding: 'utf8' });
  if (which.status === 0) return [which.stdout.trim()];
  const npmDir = dirname(dirname(process.execPath));
  const candidates = [
    join(npmDir, 'lib/node_modules/npm/node_modules/node-gyp/bin/node-gyp.js'),
  ];
  try {
    candidates.unshift(createRequire(import.meta.url).resolve('node-gyp/bin/node-gyp.js'));
  } catch {}
  const found = candidates.find((c) => existsSync(c));
  if (!found) {
    console.error('node-kvm: node-gyp not found. Install it with `npm install -g node-gyp`.');
    process.exit(1);
  }
  return [process.execPath, found];
}

// Build against the running Node's own headers when they sit beside it, so
// that no header download (and so no network) is needed.
const prefix = dirname(dirname(process.execPath));
const nodedir = process.env.npm_config_nodedir ||
  (existsSync(join(prefix, 'include/node/node_api.h')) ? prefix : undefined);
const [cmd, ...pre] = nodeGyp();
const args = [...pre, 'rebuild', '--jobs', 'max', ...(nodedir ? [`--nodedir=${nodedir}`] : [])];
const r = spawnSync(cmd, args, { cwd: root, stdio: 'inherit' });
process.exit(r.status ?? 1);
