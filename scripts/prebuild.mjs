// Before `npm pack`/`npm publish` (the prepack script): builds the addon with
// prebuildify into prebuilds/linux-x64/node-kvm.glibc.node: N-API (one file
// serves every Node from 20 on), stripped, tagged with its libc. node-gyp-build
// picks it at run time, so the package loads where npm has not approved its
// install script. Then prints the newest glibc symbol version it needs.
import { spawnSync } from 'node:child_process';
import { readdirSync, rmSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { nodeDir, nodeGyp } from './build-addon.mjs';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const require = createRequire(import.meta.url);
const prebuildify = require('prebuildify');
const out = join(root, 'prebuilds', `${process.platform}-${process.arch}`);

// Headers from beside this Node (node-gyp reads npm_config_* from the
// environment), so that prebuildify's node-gyp downloads nothing.
const dir = nodeDir();
if (dir) process.env.npm_config_nodedir = dir;
const [cmd, ...pre] = nodeGyp();
rmSync(join(root, 'prebuilds'), { recursive: true, force: true });

await new Promise((resolve, reject) =>
  prebuildify(
    {
      cwd: root,
      napi: true,
      strip: true,
      tagLibc: true,
      targets: [process.versions.node],
      // prebuildify spawns one executable; node-gyp.js runs under the `node` on PATH.
      nodeGyp: pre.length ? pre[pre.length - 1] : cmd,
    },
    (err) => (err ? reject(err) : resolve()),
  ),
);

for (const f of readdirSync(out)) {
  const file = join(out, f);
  const syms = spawnSync('objdump', ['-T', file], { encoding: 'utf8' }).stdout ?? '';
  const versions = [...new Set(syms.match(/GLIBC_\d+(\.\d+)+/g) ?? [])];
  const newest = versions.sort((a, b) => {
    const [x, y] = [a, b].map((v) => v.slice(6).split('.').map(Number));
    for (let i = 0; i < Math.max(x.length, y.length); i++) if ((x[i] ?? 0) !== (y[i] ?? 0)) return (x[i] ?? 0) - (y[i] ?? 0);
    return 0;
  }).at(-1);
  console.log(`prebuild: ${file} (needs glibc ${newest ? newest.slice(6) : '?'} or newer)`);
}
