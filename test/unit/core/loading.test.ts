import { spawnSync } from 'node:child_process';
import { cpSync, mkdtempSync, rmSync, symlinkSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';

const root = join(__dirname, '../../..');
const tmp = mkdtempSync(join(tmpdir(), 'node-kvm-load-'));
afterAll(() => rmSync(tmp, { recursive: true, force: true }));

function load(dir: string) {
  return spawnSync(process.execPath, ['-e', `require(${JSON.stringify(join(dir, 'dist'))})`], { encoding: 'utf8' });
}

describe('loading the package', () => {
  it('names the one command to run when the addon was never built', () => {
    const pkg = join(tmp, 'unbuilt');
    cpSync(join(root, 'dist'), join(pkg, 'dist'), { recursive: true });
    const r = load(pkg);
    expect(r.status).not.toBe(0);
    expect(r.stderr).toContain('the native addon is not built');
    expect(r.stderr).toContain('npm install-scripts approve node-kvm && npm rebuild node-kvm');
  });

  it('loads from a prebuild when there is no build directory', () => {
    const pkg = join(tmp, 'prebuilt');
    cpSync(join(root, 'dist'), join(pkg, 'dist'), { recursive: true });
    cpSync(join(root, 'build/Release/node_kvm.node'), join(pkg, `prebuilds/${process.platform}-${process.arch}/node_kvm.node`));
    symlinkSync(join(root, 'node_modules'), join(pkg, 'node_modules')); // node-gyp-build, which finds the prebuild
    const r = load(pkg);
    expect(r.stderr).toBe('');
    expect(r.status).toBe(0);
  });
});
