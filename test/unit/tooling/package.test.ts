// The package as users get it: `npm pack`, installed into fresh projects
// without install scripts and offline (the dependencies come from npm's cache,
// filled by `npm ci`), then used from CommonJS, ESM and TypeScript.
//
// Needs what `npm run build` needs (node-gyp, g++): packing runs prebuildify,
// which compiles the addon (~30 s). scripts/test.mjs packs once and hands the
// tarball to every Node line in NODE_KVM_PACKED; run alone, this file packs.
// The source build (--build-from-source, another ~30 s) is tried unless
// NODE_KVM_PACK_FROM_SOURCE=0.
import { spawnSync, type SpawnSyncReturns } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';

const root = join(__dirname, '../../..');
const tmp = mkdtempSync(join(tmpdir(), 'node-kvm-pack-'));
afterAll(() => rmSync(tmp, { recursive: true, force: true }));
const tsc = join(root, 'node_modules/typescript/bin/tsc');

let tarball = '';
let app = '';

function run(cmd: string, args: string[], cwd: string, env: NodeJS.ProcessEnv = {}): SpawnSyncReturns<string> {
  return spawnSync(cmd, args, { cwd, encoding: 'utf8', env: { ...process.env, ...env }, timeout: 240_000 });
}

function ok(r: SpawnSyncReturns<string>): string {
  if (r.status !== 0) throw new Error(`exit ${r.status}\n${r.stdout}\n${r.stderr}`);
  return r.stdout;
}

/**
 * A fresh project depending on the tarball, installed by `npm ci --offline
 * --ignore-scripts`. Its lockfile names each dependency's tarball URL, so npm
 * needs nothing but its cache (the repository's lockfile leaves URLs out).
 */
function freshProject(name: string): string {
  const dir = join(tmp, name);
  mkdirSync(dir, { recursive: true });
  const lock = JSON.parse(readFileSync(join(root, 'package-lock.json'), 'utf8'));
  const pkg = JSON.parse(readFileSync(join(root, 'package.json'), 'utf8'));
  const registry = ok(run('npm', ['config', 'get', 'registry'], dir)).trim().replace(/\/?$/, '/');
  const spec = `file:${tarball}`;
  const packages: Record<string, unknown> = {
    '': { name, version: '1.0.0', dependencies: { 'node-kvm': spec } },
    'node_modules/node-kvm': { version: pkg.version, resolved: spec, hasInstallScript: true, dependencies: pkg.dependencies },
  };
  for (const dep of Object.keys(pkg.dependencies)) {
    const e = lock.packages[`node_modules/${dep}`];
    packages[`node_modules/${dep}`] = { ...e, resolved: e.resolved ?? `${registry}${dep}/-/${dep}-${e.version}.tgz` };
  }
  writeFileSync(join(dir, 'package.json'), JSON.stringify({ name, version: '1.0.0', private: true, dependencies: { 'node-kvm': spec } }));
  writeFileSync(join(dir, 'package-lock.json'), JSON.stringify({ name, version: '1.0.0', lockfileVersion: 3, requires: true, packages }));
  ok(run('npm', ['ci', '--offline', '--ignore-scripts', '--no-audit', '--no-fund'], dir));
  return dir;
}

/** Runs `code` in the project with the Node under test; prints the addon file it mapped. */
function node(file: string, code: string): SpawnSyncReturns<string> {
  writeFileSync(join(app, file), code);
  return run(process.execPath, [file], app);
}

const addonMapped = `require('node:fs').readFileSync('/proc/self/maps', 'utf8').split('\\n').map((l) => l.split(/\\s+/).pop()).find((p) => p.endsWith('.node'))`;

beforeAll(() => {
  tarball = process.env.NODE_KVM_PACKED ?? '';
  if (tarball.startsWith('error:')) throw new Error(tarball.slice(6).trim());
  if (!tarball) {
    const out = ok(run(process.execPath, [join(root, 'scripts/pack.mjs'), tmp], root));
    tarball = out.trim().split('\n').at(-1) ?? '';
  }
  app = freshProject('app');
}, 300_000);

// These tests block on child processes for a minute in all. A turn of the
// event loop between them lets vitest's worker answer its runner, whose
// calls time out after 60 s.
beforeEach(() => new Promise<void>((resolve) => setImmediate(resolve)));

describe('the packed package', () => {
  it('ships the prebuild, the ESM entry and the sources its maps name, and no tests or build output', () => {
    const files = ok(run('tar', ['tzf', tarball], tmp)).split('\n').filter(Boolean).map((f) => f.replace(/^package\//, ''));
    expect(files).toEqual(expect.arrayContaining([
      'package.json', 'README.md', 'LICENSE', 'CHANGELOG.md', 'binding.gyp', 'dist/index.js', 'dist/index.mjs', 'dist/index.d.ts',
      `prebuilds/${process.platform}-${process.arch}/node-kvm.glibc.node`, 'scripts/build-addon.mjs', 'sandbox/cli.mjs',
    ]));
    expect(files.filter((f) => /^(test|build|examples|bench|\.ci)\//.test(f))).toEqual([]);
    // Every source map resolves: the TypeScript it names is in the package.
    const pkg = join(app, 'node_modules/node-kvm');
    const maps = (readdirSync(join(pkg, 'dist'), { recursive: true }) as string[]).filter((f) => f.endsWith('.js.map'));
    expect(maps.length).toBeGreaterThan(10);
    for (const m of maps) {
      const map = JSON.parse(readFileSync(join(pkg, 'dist', m), 'utf8')) as { sources: string[] };
      for (const s of map.sources) expect(existsSync(resolve(dirname(join(pkg, 'dist', m)), s)), `${m} -> ${s}`).toBe(true);
    }
  });

  it('loads from CommonJS with the prebuild, no install script run, and refuses deep imports', () => {
    const r = node('cjs.cjs', `
      const k = require('node-kvm');
      const refused = ['node-kvm/dist/vcpu.js', 'node-kvm/dist/core/vcpu.js', 'node-kvm/lib/index.ts'].map((p) => {
        try { require(p); return 'loaded ' + p; } catch (e) { return e.code; }
      });
      console.log(JSON.stringify({ kvm: typeof k.Kvm, open: typeof k.Kvm.open, addon: ${addonMapped}, refused, version: require('node-kvm/package.json').version }));`);
    expect(r.stderr).toBe('');
    const out = JSON.parse(r.stdout);
    expect(out).toMatchObject({ kvm: 'function', open: 'function', refused: Array(3).fill('ERR_PACKAGE_PATH_NOT_EXPORTED') });
    expect(out.addon).toBe(join(app, `node_modules/node-kvm/prebuilds/${process.platform}-${process.arch}/node-kvm.glibc.node`));
    expect(existsSync(join(app, 'node_modules/node-kvm/build'))).toBe(false);
  });

  it('loads from ESM with the same classes as CommonJS, every name exported', () => {
    const r = node('esm.mjs', `
      import { Kvm, GuestMemory } from 'node-kvm';
      import * as all from 'node-kvm';
      import { createRequire } from 'node:module';
      const cjs = createRequire(import.meta.url)('node-kvm');
      const missing = Object.keys(cjs).filter((k) => k !== '__esModule' && !(k in all));
      let deep;
      try { await import('node-kvm/dist/index.js'); deep = 'loaded'; } catch (e) { deep = e.code; }
      const { runInSandbox } = await import('node-kvm/sandbox');
      console.log(JSON.stringify({ same: Kvm === cjs.Kvm && GuestMemory === cjs.GuestMemory, missing, deep, sandbox: typeof runInSandbox }));`);
    expect(r.stderr).toBe('');
    expect(JSON.parse(r.stdout)).toEqual({ same: true, missing: [], deep: 'ERR_PACKAGE_PATH_NOT_EXPORTED', sandbox: 'function' });
  });

  // The user's code must type-check against the published declarations,
  // under Node's own resolution and a bundler's; a deep import must not.
  it.each([
    ['node16', { module: 'node16', moduleResolution: 'node16' }, ['esm-check.mts', 'cjs-check.cts']],
    ['bundler', { module: 'esnext', moduleResolution: 'bundler' }, ['bundler-check.ts']],
  ])('type-checks an import under moduleResolution %s, and refuses a deep one', (name, options, files) => {
    const use = `import { GuestMemory, Kvm, type VmExit } from 'node-kvm';
      export function first(): VmExit {
        using kvm = Kvm.open();
        using vm = kvm.createVm();
        using memory = GuestMemory.allocate(0x10000);
        vm.addSlot({ guestPhysAddr: 0, memory });
        using vcpu = vm.createVcpu();
        return vcpu.run();
      }\n`;
    // node-kvm/sandbox is ESM only: imported where the importer is ESM.
    const sandbox = `import { runInSandbox } from 'node-kvm/sandbox';\nexport const boot: typeof runInSandbox = runInSandbox;\n`;
    for (const f of files) writeFileSync(join(app, f), f.endsWith('.cts') ? use : use + sandbox);
    writeFileSync(join(app, `deep-${name}.ts`), `import { Vcpu } from 'node-kvm/dist/core/vcpu';\nexport const v: unknown = Vcpu;\n`);
    writeFileSync(join(app, `tsconfig.${name}.json`), JSON.stringify({
      compilerOptions: {
        ...options, target: 'es2022', lib: ['es2022', 'esnext.disposable'], strict: true, noEmit: true, skipLibCheck: true,
        types: ['node'], typeRoots: [join(root, 'node_modules/@types')],
      },
      files: [...files, `deep-${name}.ts`],
    }));
    const r = run(process.execPath, [tsc, '-p', `tsconfig.${name}.json`, '--pretty', 'false'], app);
    // One error, and only in the deep import: the exports map hides dist/.
    expect(r.stdout.trim().split('\n')).toEqual([expect.stringMatching(new RegExp(`^deep-${name}\\.ts\\(1,.*TS2307.*node-kvm/dist/core/vcpu`))]);
  });

  it('leaves the prebuild alone when the install script runs, and builds from source with --build-from-source', () => {
    const r = run('npm', ['rebuild', 'node-kvm', '--offline', '--foreground-scripts'], app);
    expect(r.status).toBe(0);
    expect(existsSync(join(app, 'node_modules/node-kvm/build'))).toBe(false);
    if (process.env.NODE_KVM_PACK_FROM_SOURCE === '0') return;
    const src = freshProject('from-source');
    ok(run('npm', ['rebuild', 'node-kvm', '--build-from-source', '--offline'], src));
    writeFileSync(join(src, 'load.cjs'), `require('node-kvm'); console.log(${addonMapped});`);
    const load = run(process.execPath, ['load.cjs'], src);
    expect(load.stderr).toBe('');
    expect(load.stdout.trim()).toBe(join(src, 'node_modules/node-kvm/build/Release/node_kvm.node'));
  }, 240_000);
});
