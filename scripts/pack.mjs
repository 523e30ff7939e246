// Packs the package as `npm pack` would publish it, from a staging copy of
// the checkout, so that the prepack build (prebuildify into prebuilds/, tsc
// into dist/) leaves this checkout's build/, dist/ and prebuilds/ alone.
//
//   node scripts/pack.mjs <dest-dir>   prints the tarball's path as its last line
//
// Used by test/unit/tooling/package.test.ts and scripts/test.mjs.
import { spawnSync } from 'node:child_process';
import { cpSync, existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, symlinkSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
// What prepack needs besides the package's `files`.
const STAGED = ['package.json', 'README.md', 'LICENSE', 'CHANGELOG.md', 'binding.gyp', 'tsconfig.json', 'native', 'lib', 'scripts', 'sandbox'];

export function pack(dest) {
  mkdirSync(dest, { recursive: true });
  const stage = mkdtempSync(join(tmpdir(), 'node-kvm-stage-'));
  try {
    for (const f of STAGED) if (existsSync(join(root, f))) cpSync(join(root, f), join(stage, f), { recursive: true });
    symlinkSync(join(root, 'node_modules'), join(stage, 'node_modules'));
    const r = spawnSync('npm', ['pack', '--pack-destination', dest], { cwd: stage, encoding: 'utf8' });
    if (r.status !== 0) throw new Error(`npm pack failed (${r.status}):\n${r.stdout}\n${r.stderr}`);
    process.stderr.write(r.stdout.split('\n').filter((l) => /^prebuild:|^esm-entry:/.test(l)).map((l) => `${l}\n`).join(''));
    const { name, version } = JSON.parse(readFileSync(join(root, 'package.json'), 'utf8'));
    const tarball = join(dest, `${name}-${version}.tgz`);
    if (!existsSync(tarball)) throw new Error(`npm pack wrote no ${tarball}`);
    return tarball;
  } finally {
    rmSync(stage, { recursive: true, force: true });
  }
}

if (process.argv[1] && resolve(process.argv[1]) === fileURLToPath(import.meta.url)) {
  if (!process.argv[2]) {
    console.error('usage: node scripts/pack.mjs <dest-dir>');
    process.exit(2);
  }
  console.log(pack(resolve(process.argv[2])));
}
