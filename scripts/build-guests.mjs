// Builds examples/guests/hello.c for each x86 mode with the machine's gcc
// (freestanding, no libc) into build/guests/<mode>.elf. Skips guests that
// are newer than their sources. `npm run build:guests`; tests call it too.
import { execFileSync } from 'node:child_process';
import { existsSync, mkdirSync, statSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const src = join(root, 'examples/guests');
const out = join(root, 'build/guests');

const COMMON = [
  '-ffreestanding', '-fno-builtin', '-nostdlib', '-static', '-fno-pic', '-fno-pie', '-no-pie',
  '-fno-stack-protector', '-fno-asynchronous-unwind-tables', '-Os', '-Wall', '-Wextra', '-Werror',
  // GCC 12 otherwise takes the store to 0x400 for a null-pointer access.
  '--param=min-pagesize=0',
  `-Wl,-T,${join(src, 'link.ld')}`, '-Wl,--build-id=none', '-Wl,-z,noexecstack', '-Wl,--no-warn-rwx-segments',
];

/** Per mode: code model flags and the stack top (real mode: inside segment 0). */
export const GUESTS = {
  real: ['-m16', '-DSTACK_TOP=0xfff0'],
  protected: ['-m32', '-DSTACK_TOP=0x7f000'],
  paged: ['-m32', '-DSTACK_TOP=0x7f000'],
  pae: ['-m32', '-DSTACK_TOP=0x7f000'],
  long: ['-m64', '-mno-red-zone', '-mgeneral-regs-only', '-DSTACK_TOP=0x7f000'],
};

/** Builds what is stale; returns the path of each mode's ELF file. */
export function buildGuests() {
  mkdirSync(out, { recursive: true });
  const newest = Math.max(...['hello.c', 'link.ld'].map((f) => statSync(join(src, f)).mtimeMs), statSync(fileURLToPath(import.meta.url)).mtimeMs);
  const paths = {};
  for (const [mode, flags] of Object.entries(GUESTS)) {
    const elf = join(out, `${mode}.elf`);
    if (!existsSync(elf) || statSync(elf).mtimeMs < newest) {
      execFileSync('gcc', [...COMMON, ...flags, `-DMODE="${mode}"`, '-o', elf, join(src, 'hello.c')], { stdio: 'inherit' });
    }
    paths[mode] = elf;
  }
  return paths;
}

if (process.argv[1] === fileURLToPath(import.meta.url)) {
  for (const [mode, path] of Object.entries(buildGuests())) console.log(`${mode}: ${path}`);
}
