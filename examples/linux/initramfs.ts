// The guest's root filesystem: a newc cpio archive (what the kernel unpacks
// into its rootfs) holding the machine's static busybox and an /init script.
import { readFileSync, existsSync } from 'node:fs';

/** The line /init prints first; the VMM times the boot to it and the test looks for it. */
export const INIT_LINE = 'node-kvm init: hello from userspace';
/** Prefix of every line /init prints. */
export const INIT_PREFIX = 'node-kvm init:';

const S_IFDIR = 0o040000;
const S_IFREG = 0o100000;
const S_IFLNK = 0o120000;
const S_IFCHR = 0o020000;

/** Writes a newc ("070701") cpio archive: the format the kernel's initramfs unpacker reads. */
export class CpioWriter {
  #parts: Uint8Array[] = [];
  #ino = 1;
  #length = 0;

  #push(bytes: Uint8Array): void {
    this.#parts.push(bytes);
    this.#length += bytes.length;
  }

  // Header (110 bytes) + name + NUL, padded to 4; then the data, padded to 4.
  #entry(name: string, mode: number, data: Uint8Array = new Uint8Array(0), rdev: [number, number] = [0, 0]): void {
    const nameBytes = new TextEncoder().encode(`${name}\0`);
    const fields = [
      this.#ino++, mode, 0, 0, (mode & 0o170000) === S_IFDIR ? 2 : 1, 0, data.length,
      0, 0, rdev[0], rdev[1], nameBytes.length, 0,
    ];
    const header = new TextEncoder().encode('070701' + fields.map((n) => n.toString(16).padStart(8, '0')).join(''));
    this.#push(header);
    this.#push(nameBytes);
    this.#push(new Uint8Array(pad4(header.length + nameBytes.length)));
    this.#push(data);
    this.#push(new Uint8Array(pad4(data.length)));
  }

  /** A directory (parents must come first). */
  dir(name: string, perm = 0o755): this {
    this.#entry(name, S_IFDIR | perm);
    return this;
  }

  /** A regular file. */
  file(name: string, data: Uint8Array, perm = 0o644): this {
    this.#entry(name, S_IFREG | perm, data);
    return this;
  }

  /** A symbolic link to `target`. */
  symlink(name: string, target: string): this {
    this.#entry(name, S_IFLNK | 0o777, new TextEncoder().encode(target));
    return this;
  }

  /** A character device node. */
  chardev(name: string, major: number, minor: number, perm = 0o600): this {
    this.#entry(name, S_IFCHR | perm, undefined, [major, minor]);
    return this;
  }

  /** Appends the `TRAILER!!!` entry and returns the archive. */
  finish(): Uint8Array {
    this.#entry('TRAILER!!!', 0);
    const out = new Uint8Array(this.#length);
    let at = 0;
    for (const p of this.#parts) {
      out.set(p, at);
      at += p.length;
    }
    return out;
  }
}

function pad4(n: number): number {
  return (4 - (n % 4)) % 4;
}

const BUSYBOX_PATHS = ['/bin/busybox', '/usr/bin/busybox', '/sbin/busybox', '/usr/sbin/busybox'];

/**
 * The machine's busybox, if it is statically linked (the initramfs has no
 * libc). Throws naming the Debian package otherwise.
 */
export function findStaticBusybox(): string {
  for (const p of BUSYBOX_PATHS) {
    if (!existsSync(p)) continue;
    if (!hasInterpreter(readFileSync(p))) return p;
  }
  throw new Error(`no statically linked busybox found (looked in ${BUSYBOX_PATHS.join(', ')}); install the Debian package busybox-static`);
}

// A dynamically linked ELF names its loader in a PT_INTERP program header.
function hasInterpreter(elf: Buffer): boolean {
  if (elf.length < 64 || elf.readUInt32BE(0) !== 0x7f454c46 || elf[4] !== 2) return true;
  const phoff = Number(elf.readBigUInt64LE(0x20));
  const phentsize = elf.readUInt16LE(0x36);
  const phnum = elf.readUInt16LE(0x38);
  for (let i = 0; i < phnum; i++) if (elf.readUInt32LE(phoff + i * phentsize) === 3) return true;
  return false;
}

/** What /init does after its first lines. */
export interface InitOptions {
  /** A shell command run after the report lines (default `uname -a`). Ignored with `shell`. */
  command?: string;
  /** Start an interactive shell on the console instead; the machine powers off when it exits. */
  shell?: boolean;
}

function shellQuote(s: string): string {
  return `'${s.replace(/'/g, `'\\''`)}'`;
}

/**
 * The /init script: mounts the pseudo file systems, prints {@link INIT_LINE},
 * the memory and command line the kernel saw, runs one command (or a
 * shell), and powers the machine off.
 */
export function initScript(options: InitOptions = {}): string {
  const command = options.command ?? 'uname -a';
  const work = options.shell
    ? [
        `echo "${INIT_PREFIX} starting a shell; 'poweroff -f' (or exit) ends the VM"`,
        // cttyhack gives the shell the console as its controlling tty (job control, ^C).
        'setsid cttyhack sh -l',
      ]
    : [
        `echo "${INIT_PREFIX} running: "${shellQuote(command)}`,
        `sh -c ${shellQuote(command)}`,
        `echo "${INIT_PREFIX} command exited with status $?"`,
      ];
  return [
    '#!/bin/busybox sh',
    '# PID 1 of the node-kvm Linux example (examples/linux/initramfs.ts).',
    '/bin/busybox --install -s',
    'export PATH=/sbin:/bin:/usr/sbin:/usr/bin HOME=/root TERM=linux',
    'mount -t proc proc /proc',
    'mount -t sysfs sysfs /sys',
    'mount -t devtmpfs devtmpfs /dev 2>/dev/null',
    `echo "${INIT_LINE}"`,
    `echo "${INIT_PREFIX} $(head -n 1 /proc/meminfo | tr -s ' ')"`,
    `echo "${INIT_PREFIX} cmdline: $(cat /proc/cmdline)"`,
    // The RAM ranges the kernel took from our e820 map, exact to the byte.
    `grep 'System RAM' /proc/iomem | sed 's/^ */${INIT_PREFIX} iomem: /'`,
    ...work,
    `echo "${INIT_PREFIX} powering off"`,
    'poweroff -f',
    '',
  ].join('\n');
}

/**
 * Builds the initramfs: busybox (found with {@link findStaticBusybox} unless
 * given), the directories its applets and /init need, /dev/console, and
 * {@link initScript}. Uncompressed: the kernel takes a plain cpio.
 */
export function buildInitramfs(options: InitOptions & { busybox?: string } = {}): Uint8Array {
  const busybox = readFileSync(options.busybox ?? findStaticBusybox());
  const cpio = new CpioWriter();
  for (const d of ['bin', 'sbin', 'usr', 'usr/bin', 'usr/sbin', 'dev', 'proc', 'sys', 'tmp', 'root', 'etc']) cpio.dir(d);
  // The kernel opens /dev/console for PID 1's stdio before /init mounts devtmpfs.
  cpio.chardev('dev/console', 5, 1);
  cpio.file('bin/busybox', busybox, 0o755);
  cpio.symlink('bin/sh', 'busybox');
  cpio.file('init', new TextEncoder().encode(initScript(options)), 0o755);
  return cpio.finish();
}
