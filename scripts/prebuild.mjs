// Before `npm pack`/`npm publish`: ship the built addon as a prebuild, so the
// package loads for users whose npm has not approved its install script.
import { copyFileSync, mkdirSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const dir = join(root, 'prebuilds', `${process.platform}-${process.arch}`);
mkdirSync(dir, { recursive: true });
copyFileSync(join(root, 'build/Release/node_kvm.node'), join(dir, 'node_kvm.node'));
console.log(`prebuild: ${dir}/node_kvm.node`);
