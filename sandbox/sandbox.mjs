// The node-kvm sandbox: runs a command inside a small Linux VM booted under
// QEMU TCG with an AMD SVM CPU model, where kvm + kvm_amd give a real (nested)
// /dev/kvm. The host root is shared read-only over 9p and the command runs
// chrooted into it; its cwd is shared writable at the same absolute path.
// See sandbox/README.md.

import { spawn, spawnSync } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import fs from 'node:fs';
import fsp from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { StringDecoder } from 'node:string_decoder';
import zlib from 'node:zlib';

const QEMU = 'qemu-system-x86_64';
const PKG_QEMU = 'qemu-system-x86';
const PKG_KERNEL = 'linux-image-amd64';
const PKG_BUSYBOX = 'busybox-static';

const BUSYBOX_PATHS = ['/bin/busybox', '/usr/bin/busybox', '/sbin/busybox', '/usr/sbin/busybox'];
const MODULE_EXTS = ['.ko', '.ko.xz', '.ko.zst', '.ko.gz'];

// Modules loaded before the control share is mounted, then the KVM ones.
// Their dependencies are added from modules.dep.
const BASE_MODULES = ['virtio_pci', '9pnet_virtio', '9p'];
const KVM_MODULES = ['kvm_amd'];

const MARK = '@@NODE-KVM-SANDBOX:';
// Control dirs are <tmpdir>/node-kvm-sandbox-<pid>-XXXXXX.
const CTL_PREFIX = 'node-kvm-sandbox-';
const NINEP_OPTS = 'trans=virtio,version=9p2000.L,msize=512000';
// Bumped when the initramfs layout changes in a way the key would not notice.
const FORMAT = 1;

const DEFAULTS = {
  memoryMb: 2048,
  cpus: 1,
  bootTimeoutMs: 120_000,
  timeoutMs: 1_800_000,
};

const DEFAULT_PATH = '/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin';
// Host variables worth carrying into the sandbox; everything else starts clean.
const PASS_ENV = ['PATH', 'TERM', 'LANG', 'LC_ALL', 'LC_CTYPE', 'TZ', 'CI', 'FORCE_COLOR', 'NO_COLOR'];

/**
 * @import { DurationUnit, ModuleParams, SandboxInfo, SandboxOptions, SandboxResult } from './sandbox.mjs'
 */
// The public types live in sandbox.d.mts, which TypeScript reads in place of
// this file when resolving './sandbox.mjs' (also from here). The check at the
// end of this file makes sure the two agree.

/**
 * Options after defaults, the environment and validation.
 * @typedef {object} ResolvedOptions
 * @property {string[]} command
 * @property {string} cwd real path
 * @property {Record<string, string>} env the command's whole environment
 * @property {string | undefined} kernel
 * @property {number} memoryMb
 * @property {number} cpus
 * @property {number} bootTimeoutMs
 * @property {number} timeoutMs
 * @property {Record<string, Record<string, string>>} moduleParams normalized: values as insmod takes them
 * @property {(chunk: string) => void} onOutput
 * @property {boolean} verbose
 * @property {AbortSignal | undefined} signal
 *
 * @typedef {{ path: string, release: string }} Kernel a bzImage and its release
 * @typedef {Kernel & { bootPath: string }} BootKernel `bootPath`: what QEMU boots (the unpacked ELF or the bzImage)
 * @typedef {{ path: string, size: number, mtimeMs: number }} Busybox
 * @typedef {'base' | 'kvm'} ModuleGroup base: loaded before the control share is mounted
 * @typedef {{ name: string, file: string, group: ModuleGroup }} KernelModule
 * @typedef {{ path: string, cached: boolean }} CacheFile
 *
 * What the guest init wrote to ctl/info.
 * @typedef {object} GuestInfo
 * @property {string | null} kernelRelease
 * @property {'kvm_amd' | 'kvm_intel' | null} vendorModule
 * @property {Record<string, Record<string, string>>} moduleParams
 * @property {number | null} uptimeMs
 *
 * @typedef {object} QemuRun
 * @property {number} exitCode
 * @property {GuestInfo} guest
 * @property {number | null} bootMs null if the READY mark was not seen
 * @property {number} runMs
 */

/**
 * Run `opts.command` inside the sandbox VM and resolve with its exit status.
 * Rejects (never hangs) if the VM cannot boot, KVM cannot be set up, or a
 * timeout expires.
 * @param {SandboxOptions} opts
 * @returns {Promise<SandboxResult>}
 */
export async function runInSandbox(opts) {
  const o = resolveOptions(opts ?? {});
  const busybox = findBusybox();
  const kernel = o.kernel ? kernelFromPath(o.kernel) : defaultKernel();
  const modules = resolveModules(kernel.release);
  checkModuleParams(o.moduleParams, modules);
  sweepStale();
  const initramfs = await ensureInitramfs(kernel, modules, busybox);
  const elf = await ensurePvhKernel(kernel);
  throwIfAborted(o);

  // Synchronous, so that no exit or signal comes between making the dir and
  // tracking it. The pid in the name lets a later run sweep it if we are killed.
  const ctl = fs.mkdtempSync(path.join(os.tmpdir(), `${CTL_PREFIX}${process.pid}-`));
  const forgetCtl = atExit(() => fs.rmSync(ctl, { recursive: true, force: true, maxRetries: 3 }));
  try {
    await writeControlFiles(ctl, o, busybox);
    throwIfAborted(o);
    const run = await runQemu(o, { ...kernel, bootPath: elf?.path ?? kernel.path }, initramfs.path, ctl);
    const g = run.guest;
    /** @type {SandboxInfo} */
    const info = {
      kernelRelease: g.kernelRelease,
      vendorModule: g.vendorModule,
      npt: flag(g.moduleParams.kvm_amd?.npt),
      tdpMmu: flag(g.moduleParams.kvm?.tdp_mmu),
      bootMs: run.bootMs,
      guestUptimeAtReadyMs: g.uptimeMs,
      runMs: run.runMs,
      kernel: kernel.path,
      bootProtocol: elf ? 'pvh' : 'bzImage',
      cpus: o.cpus,
      memoryMb: o.memoryMb,
      moduleParams: g.moduleParams,
      cache: {
        initramfs: initramfs.path,
        initramfsCached: initramfs.cached,
        kernelElf: elf?.path ?? null,
        kernelElfCached: elf?.cached ?? null,
      },
    };
    return { exitCode: run.exitCode, info };
  } finally {
    await fsp.rm(ctl, { recursive: true, force: true, maxRetries: 3 });
    forgetCtl();
  }
}

/** @param {ResolvedOptions} o */
function throwIfAborted(o) {
  if (o.signal?.aborted) throw Object.assign(new Error('sandbox: aborted'), { name: 'AbortError' });
}

// ---------------------------------------------------------------- options

/**
 * @param {Partial<SandboxOptions>} opts as given, checked here
 * @returns {ResolvedOptions}
 */
function resolveOptions(opts) {
  const env = process.env;
  const command = opts.command;
  if (!Array.isArray(command) || command.length === 0 || !command.every((a) => typeof a === 'string')) {
    throw new TypeError('runInSandbox: opts.command must be a non-empty array of strings');
  }
  if (command.some((a) => a.includes('\0'))) throw new TypeError('runInSandbox: command arguments cannot contain NUL');

  let cwd;
  try {
    cwd = fs.realpathSync(path.resolve(opts.cwd ?? process.cwd()));
  } catch {
    throw new Error(`sandbox: cwd ${path.resolve(opts.cwd ?? process.cwd())} does not exist`);
  }
  if (!fs.statSync(cwd).isDirectory()) throw new Error(`sandbox: cwd ${cwd} is not a directory`);
  if (cwd === '/') throw new Error('sandbox: cwd cannot be / (it is shared read-only); use a project directory');
  if (/[\n\r]/.test(cwd)) throw new Error('sandbox: cwd path cannot contain newlines');

  /** @type {Record<string, string>} */
  const cmdEnv = {};
  for (const k of PASS_ENV) {
    const v = env[k];
    if (v !== undefined) cmdEnv[k] = v;
  }
  cmdEnv.PATH ??= DEFAULT_PATH;
  Object.assign(cmdEnv, { HOME: '/tmp', TMPDIR: '/tmp', USER: 'root', NODE_KVM_IN_SANDBOX: '1' });
  for (const [k, v] of Object.entries(opts.env ?? {})) {
    if (!/^[A-Za-z_][A-Za-z0-9_]*$/.test(k)) throw new Error(`sandbox: bad environment variable name ${JSON.stringify(k)}`);
    if (v === undefined || v === null) { delete cmdEnv[k]; continue; }
    if (String(v).includes('\0')) throw new Error(`sandbox: environment variable ${k} contains NUL`);
    cmdEnv[k] = String(v);
  }

  let moduleParams = opts.moduleParams;
  if (moduleParams === undefined && env.NODE_KVM_SANDBOX_PARAMS) {
    moduleParams = parseParamString(env.NODE_KVM_SANDBOX_PARAMS, 'NODE_KVM_SANDBOX_PARAMS');
  }

  return {
    command,
    cwd,
    env: cmdEnv,
    kernel: opts.kernel ?? (env.NODE_KVM_SANDBOX_KERNEL || undefined),
    memoryMb: positive(opts.memoryMb, 'memoryMb', true) ?? envNumber('NODE_KVM_SANDBOX_MEMORY') ?? DEFAULTS.memoryMb,
    cpus: positive(opts.cpus, 'cpus', true) ?? envNumber('NODE_KVM_SANDBOX_CPUS') ?? DEFAULTS.cpus,
    bootTimeoutMs: positive(opts.bootTimeoutMs, 'bootTimeoutMs') ?? envDuration('NODE_KVM_SANDBOX_BOOT_TIMEOUT') ?? DEFAULTS.bootTimeoutMs,
    timeoutMs: positive(opts.timeoutMs, 'timeoutMs') ?? envDuration('NODE_KVM_SANDBOX_TIMEOUT') ?? DEFAULTS.timeoutMs,
    moduleParams: normalizeModuleParams(moduleParams ?? {}),
    onOutput: opts.onOutput ?? ((chunk) => process.stdout.write(chunk)),
    verbose: opts.verbose ?? env.NODE_KVM_SANDBOX_VERBOSE === '1',
    signal: opts.signal,
  };
}

/**
 * @param {unknown} v
 * @param {string} name
 * @returns {number | undefined} undefined if `v` is undefined or null
 */
function positive(v, name, integer = false) {
  if (v === undefined || v === null) return undefined;
  if (typeof v !== 'number' || !Number.isFinite(v) || v <= 0 || (integer && !Number.isInteger(v))) {
    throw new TypeError(`runInSandbox: ${name} must be a positive ${integer ? 'integer' : 'number'}`);
  }
  return v;
}

/** @param {string} name */
function envNumber(name) {
  const s = process.env[name];
  if (s === undefined || s === '') return undefined;
  const n = Number(s);
  if (!Number.isInteger(n) || n <= 0) throw new Error(`sandbox: ${name} must be a positive integer, got ${JSON.stringify(s)}`);
  return n;
}

/** @type {Record<DurationUnit, number>} */
const UNIT_MS = { ms: 1, s: 1000, m: 60_000, h: 3_600_000 };

/**
 * "90000ms", "90s", "1.5m", "1h" -> milliseconds; a bare number is in `unit`.
 * @param {string | number} s
 * @param {string} what names the value in the error message
 * @param {DurationUnit} [unit]
 * @returns {number}
 */
export function parseDuration(s, what, unit = 'ms') {
  const m = /^\s*(\d+(?:\.\d+)?)\s*(ms|s|m|h)?\s*$/.exec(String(s));
  if (!m || Number(m[1]) <= 0) throw new Error(`sandbox: ${what} must be a positive duration like 90s or 2m, got ${JSON.stringify(s)}`);
  return Math.round(Number(m[1]) * UNIT_MS[/** @type {DurationUnit | undefined} */ (m[2]) ?? unit]);
}

/** @param {string} name */
function envDuration(name) {
  const s = process.env[name];
  return s === undefined || s === '' ? undefined : parseDuration(s, name);
}

/**
 * "kvm.tdp_mmu=0 kvm_amd.npt=0" -> { kvm: { tdp_mmu: '0' }, kvm_amd: { npt: '0' } }
 * @param {string} s
 * @param {string} [what] names the source in error messages
 * @returns {Record<string, Record<string, string>>}
 */
export function parseParamString(s, what = 'module parameter') {
  /** @type {Record<string, Record<string, string>>} */
  const out = {};
  for (const tok of s.split(/\s+/).filter(Boolean)) {
    const m = /** @type {[string, string, string, string] | null} */ (/^([^.=]+)\.([^=]+)=(.*)$/.exec(tok));
    if (!m) throw new Error(`sandbox: ${what}: expected module.param=value, got ${JSON.stringify(tok)}`);
    (out[m[1]] ??= {})[m[2]] = m[3];
  }
  return out;
}

/**
 * Checks names and values and turns values into insmod's text.
 * @param {ModuleParams} mp
 * @returns {Record<string, Record<string, string>>}
 */
function normalizeModuleParams(mp) {
  /** @type {Record<string, Record<string, string>>} */
  const out = {};
  for (const [mod, params] of Object.entries(mp)) {
    const name = mod.replace(/-/g, '_');
    if (!/^[A-Za-z0-9_]+$/.test(name)) throw new Error(`sandbox: bad module name ${JSON.stringify(mod)}`);
    for (const [p, v] of Object.entries(params ?? {})) {
      if (!/^[A-Za-z0-9_]+$/.test(p)) throw new Error(`sandbox: bad parameter name ${JSON.stringify(p)} for ${name}`);
      const val = v === true ? '1' : v === false ? '0' : String(v);
      if (!/^[A-Za-z0-9_.,:+-]+$/.test(val)) throw new Error(`sandbox: bad value ${JSON.stringify(val)} for ${name}.${p}`);
      (out[name] ??= {})[p] = val;
    }
  }
  return out;
}

/**
 * @param {Record<string, Record<string, string>>} mp normalized
 * @param {KernelModule[]} modules
 */
function checkModuleParams(mp, modules) {
  const names = new Set(modules.map((m) => m.name));
  for (const mod of Object.keys(mp)) {
    if (!names.has(mod)) {
      throw new Error(`sandbox: parameters given for module ${mod}, which the sandbox does not load (it loads: ${[...names].join(', ')})`);
    }
  }
}

// ------------------------------------------------------ host requirements

/** @returns {Busybox} */
function findBusybox() {
  const bb = BUSYBOX_PATHS.find((p) => fs.existsSync(p));
  if (!bb) throw new Error(`sandbox: busybox not found (looked in ${BUSYBOX_PATHS.join(', ')}); install the Debian package ${PKG_BUSYBOX}`);
  if (hasElfInterpreter(fs.readFileSync(bb))) {
    throw new Error(`sandbox: ${bb} is dynamically linked and cannot run in the initramfs; install the Debian package ${PKG_BUSYBOX}`);
  }
  const st = fs.statSync(bb);
  return { path: bb, size: st.size, mtimeMs: st.mtimeMs };
}

/** @param {Buffer} buf */
function hasElfInterpreter(buf) {
  if (buf.length < 64 || buf.readUInt32BE(0) !== 0x7f454c46 || buf[4] !== 2) return false; // not ELF64: let it fail later
  const phoff = Number(buf.readBigUInt64LE(0x20));
  const phentsize = buf.readUInt16LE(0x36);
  const phnum = buf.readUInt16LE(0x38);
  for (let i = 0; i < phnum; i++) {
    if (buf.readUInt32LE(phoff + i * phentsize) === 3 /* PT_INTERP */) return true;
  }
  return false;
}

/**
 * The release string embedded in a bzImage's setup header, or null.
 * @param {string} file
 * @returns {string | null}
 */
function bzImageRelease(file) {
  const fd = fs.openSync(file, 'r');
  try {
    const buf = Buffer.alloc(0x8000);
    const n = fs.readSync(fd, buf, 0, buf.length, 0);
    if (n < 0x220 || buf.toString('latin1', 0x202, 0x206) !== 'HdrS') return null;
    const off = buf.readUInt16LE(0x20e) + 0x200;
    if (off >= n) return null;
    const end = buf.indexOf(0, off);
    return buf.toString('latin1', off, end < 0 ? n : end).split(' ')[0] || null;
  } finally {
    fs.closeSync(fd);
  }
}

/**
 * @param {string} release
 * @returns {string | null} the kvm-amd module file
 */
function kvmAmdModule(release) {
  const dir = `/lib/modules/${release}/kernel/arch/x86/kvm`;
  for (const ext of MODULE_EXTS) if (fs.existsSync(`${dir}/kvm-amd${ext}`)) return `${dir}/kvm-amd${ext}`;
  return null;
}

/**
 * @param {string} p
 * @returns {Kernel}
 */
function kernelFromPath(p) {
  const file = path.resolve(p);
  let st;
  try {
    st = fs.statSync(file);
  } catch {
    throw new Error(`sandbox: kernel ${file} does not exist; install the Debian package ${PKG_KERNEL} or pass an existing vmlinuz`);
  }
  if (!st.isFile()) throw new Error(`sandbox: kernel ${file} is not a file`);
  checkReadable(file);
  const release = bzImageRelease(file);
  if (!release) throw new Error(`sandbox: ${file} is not a Linux bzImage kernel (no setup header found)`);
  if (!kvmAmdModule(release)) {
    throw new Error(`sandbox: kernel ${file} is release ${release}, but /lib/modules/${release} has no kvm-amd module; install the matching linux-image package (${PKG_KERNEL})`);
  }
  return { path: file, release };
}

/** @returns {Kernel} */
function defaultKernel() {
  /** @type {string[]} */
  let names = [];
  try {
    names = fs.readdirSync('/boot').filter((f) => f.startsWith('vmlinuz-'));
  } catch { /* no /boot */ }
  const found = names
    .map((f) => ({ path: `/boot/${f}`, release: f.slice('vmlinuz-'.length) }))
    .filter((k) => kvmAmdModule(k.release))
    .sort((a, b) => b.release.localeCompare(a.release, 'en', { numeric: true }));
  const newest = found[0];
  if (!newest) {
    throw new Error(`sandbox: no /boot/vmlinuz-* with a matching /lib/modules/<release>/kernel/arch/x86/kvm/kvm-amd.ko; install the Debian package ${PKG_KERNEL}`);
  }
  checkReadable(newest.path);
  return newest;
}

/** @param {string} file */
function checkReadable(file) {
  try {
    fs.accessSync(file, fs.constants.R_OK);
  } catch {
    throw new Error(`sandbox: cannot read the kernel ${file}; run as root or pass a readable --kernel`);
  }
}

/**
 * Modules to load, dependencies first, from the kernel's modules.dep.
 * @param {string} release
 * @returns {KernelModule[]}
 */
function resolveModules(release) {
  const base = `/lib/modules/${release}`;
  /** @type {Map<string, string>} module name -> path in modules.dep */
  const byName = new Map();
  /** @type {Map<string, string[]>} path -> paths of its dependencies */
  const deps = new Map();
  /** @param {string} rel */
  const modName = (rel) => path.basename(rel).replace(/\.ko(\.\w+)?$/, '').replace(/-/g, '_');
  let depText;
  try {
    depText = fs.readFileSync(`${base}/modules.dep`, 'utf8');
  } catch {
    throw new Error(`sandbox: ${base}/modules.dep is missing; reinstall the kernel package (${PKG_KERNEL}) or run depmod ${release}`);
  }
  for (const line of depText.split('\n')) {
    const i = line.indexOf(':');
    if (i < 0) continue;
    const rel = line.slice(0, i).trim();
    byName.set(modName(rel), rel);
    deps.set(rel, line.slice(i + 1).trim().split(/\s+/).filter(Boolean));
  }
  let builtin = new Set();
  try {
    builtin = new Set(fs.readFileSync(`${base}/modules.builtin`, 'utf8').split('\n').filter(Boolean).map(modName));
  } catch { /* optional */ }

  /** @type {KernelModule[]} */
  const out = [];
  const seen = new Set();
  /**
   * @param {string} rel
   * @param {ModuleGroup} group
   */
  const visit = (rel, group) => {
    if (seen.has(rel)) return;
    seen.add(rel);
    for (const d of deps.get(rel) ?? []) visit(d, group);
    out.push({ name: modName(rel), file: path.isAbsolute(rel) ? rel : `${base}/${rel}`, group });
  };
  /** @type {[ModuleGroup, string[]][]} */
  const groups = [['base', BASE_MODULES], ['kvm', KVM_MODULES]];
  for (const [group, wanted] of groups) {
    for (const name of wanted) {
      const rel = byName.get(name);
      if (rel !== undefined) visit(rel, group);
      else if (!builtin.has(name)) {

        throw new Error(`sandbox: kernel ${release} has no module ${name} (not in modules.dep nor modules.builtin); install ${PKG_KERNEL}`);
      }
    }
  }
  return out;
}

// ------------------------------------------------------------- initramfs

// zlib's zstd functions exist from Node.js 22.15; @types/node 20 does not declare them.
const zlibZstd = /** @type {typeof zlib & { zstdDecompressSync?: (buf: Buffer) => Buffer }} */ (zlib);

function cacheDir() {
  const base = process.env.XDG_CACHE_HOME || path.join(os.homedir(), '.cache');
  return path.join(base, 'node-kvm', 'sandbox');
}

/**
 * The cached initramfs for these modules, built if missing.
 * @param {Kernel} kernel
 * @param {KernelModule[]} modules
 * @param {Busybox} busybox
 * @returns {Promise<CacheFile>}
 */
async function ensureInitramfs(kernel, modules, busybox) {
  const init = initScript(modules);
  const modStats = modules.map((m) => {
    const st = fs.statSync(m.file);
    return [m.name, m.group, m.file, st.size, st.mtimeMs];
  });
  const key = createHash('sha256')
    .update(JSON.stringify({ FORMAT, kernel: [kernel.path, kernel.release], modules: modStats, init, busybox }))
    .digest('hex')
    .slice(0, 16);
  const file = path.join(cacheDir(), `initramfs-${kernel.release}-${key}.cpio.gz`);
  if (fs.existsSync(file)) return { path: file, cached: true };

  const cpio = new CpioWriter();
  for (const d of ['bin', 'dev', 'proc', 'sys', 'tmp', 'ctl', 'newroot', 'modules']) cpio.dir(d);
  cpio.chardev('dev/console', 5, 1);
  cpio.file('bin/busybox', fs.readFileSync(busybox.path), 0o755);
  cpio.file('init', Buffer.from(init), 0o755);
  for (const m of modules) {
    /** @type {Buffer} */
    let data = fs.readFileSync(m.file);

    let name = `${m.name}.ko`;
    if (m.file.endsWith('.gz')) data = zlib.gunzipSync(data);
    else if (m.file.endsWith('.zst')) {
      if (typeof zlibZstd.zstdDecompressSync !== 'function') {
        throw new Error(`sandbox: ${m.file} is zstd-compressed and this Node.js has no zstd support; use Node.js >= 22.15 or an uncompressed/xz module tree`);
      }
      data = zlibZstd.zstdDecompressSync(data);
    } else if (m.file.endsWith('.xz')) name += '.xz'; // unpacked by busybox unxz in the guest
    cpio.file(`modules/${name}`, data, 0o644);
  }
  await atomicWrite(file, zlib.gzipSync(cpio.finish(), { level: 6 }));
  return { path: file, cached: false };
}

// Booting the bzImage makes the guest decompress the kernel under TCG on every
// boot (~4 s of a ~7 s boot for Debian's xz kernel). Instead unpack the payload
// once to its ELF vmlinux, which QEMU boots through the PVH entry point.
/**
 * @param {Kernel} kernel
 * @returns {Promise<CacheFile | null>} null if the kernel cannot be unpacked or has no PVH entry
 */
async function ensurePvhKernel(kernel) {
  const st = fs.statSync(kernel.path);
  const key = createHash('sha256')
    .update(JSON.stringify({ FORMAT, kernel: [kernel.path, kernel.release, st.size, st.mtimeMs] }))
    .digest('hex')
    .slice(0, 16);
  const file = path.join(cacheDir(), `vmlinux-${kernel.release}-${key}.elf`);
  if (fs.existsSync(file)) return { path: file, cached: true };

  const elf = unpackBzImage(fs.readFileSync(kernel.path));
  if (!elf || !hasPvhNote(elf)) return null;
  await atomicWrite(file, elf);
  return { path: file, cached: false };
}

/**
 * The ELF vmlinux inside a bzImage, or null.
 * @param {Buffer} b
 * @returns {Buffer | null}
 */
function unpackBzImage(b) {
  if (b.readUInt16LE(0x206) < 0x208) return null; // no payload fields before boot protocol 2.08
  const start = ((b[0x1f1] || 4) + 1) * 512 + b.readUInt32LE(0x248);
  const len = b.readUInt32LE(0x24c);
  if (len < 8 || start + len > b.length) return null;
  // The kernel build appends the uncompressed size (le32) to the payload.
  const payload = b.subarray(start, start + len - 4);
  const size = b.readUInt32LE(start + len - 4);
  let elf = null;
  try {
    if (payload[0] === 0x1f && payload[1] === 0x8b) elf = zlib.gunzipSync(payload);
    else if (payload.readUInt32BE(0) === 0xfd377a58) elf = unxz(payload, size);
    else if (payload.readUInt32LE(0) === 0xfd2fb528 && typeof zlibZstd.zstdDecompressSync === 'function') {
      elf = zlibZstd.zstdDecompressSync(payload);
    }
  } catch {
    return null;
  }
  return elf && elf.length === size && elf.readUInt32BE(0) === 0x7f454c46 ? elf : null;
}

// xz-utils (installed with the sandbox's packages); without it the bzImage
// boots as is, only slower.
/**
 * @param {Buffer} payload
 * @param {number} size the unpacked size
 * @returns {Buffer | null}
 */
function unxz(payload, size) {
  const r = spawnSync('xz', ['-dc'], { input: payload, maxBuffer: size + 1 });
  return r.status === 0 ? r.stdout : null;
}

/**
 * Does this ELF64 carry the Xen PVH entry note (XEN_ELFNOTE_PHYS32_ENTRY)?
 * @param {Buffer} elf
 */
function hasPvhNote(elf) {
  const phoff = Number(elf.readBigUInt64LE(0x20));
  const phentsize = elf.readUInt16LE(0x36);
  for (let i = 0; i < elf.readUInt16LE(0x38); i++) {
    const ph = phoff + i * phentsize;
    if (elf.readUInt32LE(ph) !== 4 /* PT_NOTE */) continue;
    let p = Number(elf.readBigUInt64LE(ph + 8));
    const end = p + Number(elf.readBigUInt64LE(ph + 32));
    while (p + 12 <= end) {
      const namesz = elf.readUInt32LE(p);
      const descsz = elf.readUInt32LE(p + 4);
      const type = elf.readUInt32LE(p + 8);
      const name = elf.toString('latin1', p + 12, p + 12 + namesz).replace(/\0+$/, '');
      if (name === 'Xen' && type === 18) return true;
      p += 12 + Math.ceil(namesz / 4) * 4 + Math.ceil(descsz / 4) * 4;
    }
  }
  return false;
}

/**
 * @param {string} file
 * @param {Buffer} data
 */
async function atomicWrite(file, data) {
  await fsp.mkdir(path.dirname(file), { recursive: true });
  const tmp = `${file}.${process.pid}.${randomBytes(4).toString('hex')}.tmp`;
  const forget = atExit(() => fs.rmSync(tmp, { force: true }));
  try {
    await fsp.writeFile(tmp, data);
    await fsp.rename(tmp, file);
  } catch (e) {
    await fsp.rm(tmp, { force: true });
    throw e;
  } finally {
    forget();
  }
}

/** Writer for the cpio "newc" format that the kernel unpacks as an initramfs. */
class CpioWriter {
  /** @type {Buffer[]} */
  #parts = [];
  #ino = 1;

  /**
   * @param {string} name
   * @param {number} mode file type and permissions
   * @param {Buffer} [data]
   * @param {[number, number]} [rdev] device major, minor
   */
  #entry(name, mode, data = Buffer.alloc(0), rdev = [0, 0]) {
    const nameBuf = Buffer.from(`${name}\0`);
    const fields = [
      this.#ino++, mode, 0, 0, (mode & 0o170000) === 0o040000 ? 2 : 1, 0, data.length,
      0, 0, rdev[0], rdev[1], nameBuf.length, 0,
    ];
    const header = Buffer.from('070701' + fields.map((n) => n.toString(16).padStart(8, '0')).join(''), 'latin1');
    this.#parts.push(header, nameBuf, pad4(header.length + nameBuf.length), data, pad4(data.length));
  }

  /** @param {string} name */
  dir(name, perm = 0o755) { this.#entry(name, 0o040000 | perm); }
  /**
   * @param {string} name
   * @param {Buffer} data
   */
  file(name, data, perm = 0o644) { this.#entry(name, 0o100000 | perm, data); }
  /**
   * @param {string} name
   * @param {number} major
   * @param {number} minor
   */
  chardev(name, major, minor, perm = 0o600) { this.#entry(name, 0o020000 | perm, undefined, [major, minor]); }

  finish() {
    this.#entry('TRAILER!!!', 0);
    return Buffer.concat(this.#parts);
  }
}

/** @param {number} n */
function pad4(n) {
  return Buffer.alloc((4 - (n % 4)) % 4);
}

// The guest's PID 1. It always narrates to the console (ttyS0); the host shows
// that only in verbose mode and in error messages. Results go to the control
// share (/ctl): 9p writes are synchronous, whereas console bytes still queued
// in the emulated UART are lost when the guest resets. It ends with `reboot -f`,
// which QEMU (-no-reboot) turns into an exit whether or not ACPI works.
/** @param {KernelModule[]} modules */
function initScript(modules) {
  /** @param {ModuleGroup} g */
  const names = (g) => modules.filter((m) => m.group === g).map((m) => m.name).join(' ');
  return `#!/bin/busybox sh
# PID 1 of the node-kvm sandbox, generated by sandbox/sandbox.mjs.
/bin/busybox --install -s /bin
export PATH=/bin
BASE_MODULES="${names('base')}"
KVM_MODULES="${names('kvm')}"
NINEP="${NINEP_OPTS}"

say() { echo "sandbox-init: $*"; }
finish() { sync; reboot -f; sleep 60; }
die() {
  say "FAILED: $*"
  if [ -n "$CTL_OK" ]; then
    { echo "$*"; echo "--- dmesg (last 40 lines) ---"; dmesg | tail -n 40; } > /ctl/error
  else
    dmesg | tail -n 40
    echo "${MARK}FAIL $*"
    sleep 2
  fi
  finish
}
load() {
  name=$1; shift
  f=/modules/$name.ko
  if [ ! -e "$f" ]; then
    f=/tmp/$name.ko
    unxz -c "/modules/$name.ko.xz" > "$f" || die "cannot unpack module $name"
  fi
  insmod "$f" "$@" || die "insmod $name $* failed"
  if [ $# -gt 0 ] && dmesg | grep -F "$name: unknown parameter"; then
    die "module $name rejected a parameter in: $*"
  fi
}

mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t devtmpfs devtmpfs /dev
say "kernel $(uname -r) up $(cut -d' ' -f1 /proc/uptime)s"

for m in $BASE_MODULES; do load "$m"; done
mount -t 9p -o "$NINEP" nkvmctl /ctl || die "cannot mount the control share"
CTL_OK=1
. /ctl/config

for m in $KVM_MODULES; do eval "p=\\$PARAMS_$m"; load "$m" $p; done
[ -c /dev/kvm ] || die "/dev/kvm did not appear after loading kvm_amd"
say "kvm loaded"

{
  echo "kernelRelease=$(uname -r)"
  echo "uptime=$(cut -d' ' -f1 /proc/uptime)"
  for m in kvm kvm_amd kvm_intel; do
    [ -d /sys/module/$m ] || continue
    echo "module=$m"
    for p in /sys/module/$m/parameters/*; do
      v=$(cat "$p" 2>/dev/null) && echo "param.$m.\${p##*/}=$v"
    done
  done
} > /ctl/info

R=/newroot
mount -t 9p -o "$NINEP,ro,cache=loose" nkvmroot $R || die "cannot mount the host root share"
mount -t proc proc $R/proc || die "cannot mount proc"
mount -t sysfs sysfs $R/sys || die "cannot mount sysfs"
mount -t devtmpfs devtmpfs $R/dev || die "cannot mount devtmpfs"
mount -t tmpfs -o mode=1777 tmpfs $R/tmp || die "cannot mount /tmp"
mount -t tracefs tracefs $R/sys/kernel/tracing || say "no tracefs"
mount -t debugfs debugfs $R/sys/kernel/debug || say "no debugfs"
[ -d $R/run ] && mount -t tmpfs -o mode=755 tmpfs $R/run
mkdir -p $R/dev/pts $R/dev/shm
mount -t devpts -o newinstance,ptmxmode=0666 devpts $R/dev/pts
mount -t tmpfs -o mode=1777 tmpfs $R/dev/shm
[ -e $R/dev/fd ] || ln -s /proc/self/fd $R/dev/fd
[ -e $R/dev/stdin ] || ln -s /proc/self/fd/0 $R/dev/stdin
[ -e $R/dev/stdout ] || ln -s /proc/self/fd/1 $R/dev/stdout
[ -e $R/dev/stderr ] || ln -s /proc/self/fd/2 $R/dev/stderr
mkdir -p "$R$CWD" 2>/dev/null
mount -t 9p -o "$NINEP,cache=mmap" nkvmcwd "$R$CWD" || die "cannot mount the cwd share at $CWD"

say "running command"
echo "${MARK}READY"
chroot $R "$BUSYBOX_IN_ROOT" sh -c "$(cat /ctl/run.sh)" < /dev/null >> /ctl/output 2>&1
rc=$?
echo $rc > /ctl/exit.tmp && mv /ctl/exit.tmp /ctl/exit
say "command exited with status $rc"
echo "${MARK}EXIT $rc"
finish
`;
}

// ------------------------------------------------------------ running

/** @param {string} s */
function shq(s) {
  return `'${String(s).replace(/'/g, `'\\''`)}'`;
}

/**
 * @param {string} ctl the control dir
 * @param {ResolvedOptions} o
 * @param {Busybox} busybox
 */
async function writeControlFiles(ctl, o, busybox) {
  const config = [
    `CWD=${shq(o.cwd)}`,
    `BUSYBOX_IN_ROOT=${shq(busybox.path)}`,
    ...Object.entries(o.moduleParams).map(([mod, ps]) =>
      `PARAMS_${mod}=${shq(Object.entries(ps).map(([k, v]) => `${k}=${v}`).join(' '))}`),
  ];
  // Runs inside the chroot with the host's busybox sh; `env -i` gives the
  // command exactly the environment we chose.
  const run = [
    `cd ${shq(o.cwd)} || exit 127`,
    `exec ${shq(busybox.path)} env -i ${Object.entries(o.env).map(([k, v]) => shq(`${k}=${v}`)).join(' ')} ${o.command.map(shq).join(' ')}`,
  ];
  await fsp.writeFile(path.join(ctl, 'config'), config.join('\n') + '\n');
  await fsp.writeFile(path.join(ctl, 'run.sh'), run.join('\n') + '\n');
  await fsp.writeFile(path.join(ctl, 'output'), '');
}

/**
 * @param {ResolvedOptions} o
 * @param {BootKernel} kernel
 * @param {string} initrd
 * @param {string} ctl the control dir
 * @returns {string[]}
 */
function qemuArgs(o, kernel, initrd, ctl) {
  const append = [
    'console=ttyS0',
    ...(o.verbose ? ['loglevel=4'] : ['quiet', 'loglevel=1']),
    'panic=-1',
    'mitigations=off',
    'pci=noacpi',
    ...(process.env.NODE_KVM_SANDBOX_APPEND ?? '').split(/\s+/).filter(Boolean),
  ];
  /**
   * @param {string} id
   * @param {string} p host path
   * @param {string} tag
   */
  const share = (id, p, tag, extra = '') => [
    '-fsdev', `local,id=${id},path=${p},security_model=none${extra}`,
    '-device', `virtio-9p-pci,fsdev=${id},mount_tag=${tag}`,
  ];
  return [
    '-accel', 'tcg',
    '-cpu', 'EPYC,+svm,+npt',
    '-m', String(o.memoryMb),
    '-smp', String(o.cpus),
    '-nodefaults', '-no-user-config',
    '-display', 'none',
    '-serial', 'stdio',
    '-monitor', 'none',
    '-nic', 'none',
    '-no-reboot',
    '-kernel', kernel.bootPath,
    '-initrd', initrd,
    '-append', append.join(' '),
    ...share('nkvmroot', '/', 'nkvmroot', ',readonly=on,multidevs=remap'),
    ...share('nkvmcwd', o.cwd, 'nkvmcwd'),
    ...share('nkvmctl', ctl, 'nkvmctl'),
  ];
}

// ------------------------------------------------- exits and signals

// What must happen however this process ends: kill QEMU, remove temporary
// files. Synchronous tasks, run newest first (QEMU dies before its control
// dir goes). Listeners exist only while there are tasks, so a process that
// is not running a sandbox keeps Node's defaults.
/** @type {Set<() => void>} */
const exitTasks = new Set();
const SIGNALS = { SIGHUP: 1, SIGINT: 2, SIGTERM: 15 };
/** @typedef {keyof typeof SIGNALS} HandledSignal */
const SIGNAL_NAMES = /** @type {HandledSignal[]} */ (Object.keys(SIGNALS));

/**
 * Runs `task` if the process ends before the returned function is called.
 * @param {() => void} task
 * @returns {() => void}
 */
function atExit(task) {
  if (exitTasks.size === 0) {
    // 'exit' covers normal ends, process.exit() and uncaught exceptions.
    process.on('exit', runExitTasks);
    for (const sig of SIGNAL_NAMES) process.on(sig, onSignal);
  }
  exitTasks.add(task);
  return () => forgetTask(task);
}

/** @param {() => void} task */
function forgetTask(task) {
  if (!exitTasks.delete(task) || exitTasks.size > 0) return;
  process.removeListener('exit', runExitTasks);
  for (const sig of SIGNAL_NAMES) process.removeListener(sig, onSignal);
}

function runExitTasks() {
  for (const task of [...exitTasks].reverse()) {
    try {
      task();
    } catch { /* best effort: the other tasks still run */ }
    forgetTask(task);
  }
}

// Our listener keeps Node from dying of the signal. If it is the only one,
// clean up and then die of the signal as Node would have (forgetTask removed
// the listeners, so the default action is back). If the program has its own
// listener (the CLI has), the signal is its business; 'exit' still cleans up.
/** @param {HandledSignal} sig */
function onSignal(sig) {
  if (process.listenerCount(sig) > 1) return;
  runExitTasks();
  process.kill(process.pid, sig);
  // Not reached: a signal sent to oneself is delivered before kill() returns.
  process.exit(128 + SIGNALS[sig]);
}

// True when no process has this pid (in our pid namespace).
/** @param {number} pid */
function pidIsDead(pid) {
  return pid > 0 && !fs.existsSync(`/proc/${pid}`);
}

/**
 * Removes what runs killed outright (SIGKILL, OOM) left: control dirs
 * `node-kvm-sandbox-<pid>-*` in the temporary directory and unfinished
 * cache files `*.<pid>.<hex>.tmp`, when that pid no longer exists. A reused
 * pid only delays the sweep; dirs named before the pid was in the name
 * are not touched.
 */
function sweepStale() {
  /**
   * @param {string} dir
   * @param {RegExp} re matches the names to sweep, group 1 = the pid
   */
  const sweep = (dir, re) => {
    /** @type {string[]} */
    let names = [];
    try {
      names = fs.readdirSync(dir);
    } catch { /* no such dir yet */ }
    for (const name of names) {
      const m = re.exec(name);
      if (!m || !pidIsDead(Number(m[1]))) continue;
      try {
        fs.rmSync(path.join(dir, name), { recursive: true, force: true });
      } catch { /* not ours to remove (another user's), or already gone */ }
    }
  };
  sweep(os.tmpdir(), new RegExp(`^${CTL_PREFIX}(\\d+)-\\w+$`));
  sweep(cacheDir(), /\.(\d+)\.[0-9a-f]{8}\.tmp$/);
}

/**
 * Boots the VM and waits for it to stop.
 * @param {ResolvedOptions} o
 * @param {BootKernel} kernel
 * @param {string} initrd
 * @param {string} ctl the control dir, with the files of writeControlFiles()
 * @returns {Promise<QemuRun>}
 */
function runQemu(o, kernel, initrd, ctl) {
  return new Promise((resolve, reject) => {
    const started = Date.now();
    /** @type {number | null} */
    let bootMs = null;
    /** @type {unknown} what made us kill QEMU */
    let failure = null;
    let settled = false;
    /** @type {string[]} */
    const consoleLines = [];
    let consolePartial = '';
    /** @type {string[]} */
    const stderrLines = [];
    let stderrPartial = '';

    const child = spawn(QEMU, qemuArgs(o, kernel, initrd, ctl), { stdio: ['pipe', 'pipe', 'pipe'] });
    const killChild = () => {
      if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
    };
    // QEMU would outlive this process, since nothing else kills it.
    const forgetChild = atExit(killChild);

    /** @param {unknown} err */
    const fail = (err) => {
      failure ??= err;
      killChild();
    };
    // QEMU's complaints and the last 40 console lines, for error messages.
    const diagnostics = () => {
      const qemuErr = [...stderrLines, stderrPartial].filter(Boolean).slice(-20).join('\n');
      const con = [...consoleLines, consolePartial.replace(/\r/g, '')].filter(Boolean).slice(-40).join('\n');
      return (qemuErr ? `\nQEMU stderr:\n${qemuErr}` : '') +
        `\nLast console output${o.verbose ? '' : ' (NODE_KVM_SANDBOX_VERBOSE=1 adds kernel messages)'}:\n${con || '(none)'}`;
    };

    const bootTimer = setTimeout(() => {
      if (bootMs !== null) return;
      fail(new Error(`sandbox: could not boot the VM within ${o.bootTimeoutMs} ms: the guest init never reported ready ` +
        `(kernel ${kernel.path}); QEMU was killed.${diagnostics()}`));
    }, o.bootTimeoutMs);
    const runTimer = setTimeout(() => {
      const what = bootMs === null ? 'the VM was still booting' : `command ${JSON.stringify(o.command.join(' '))} was still running`;
      fail(new Error(`sandbox: timed out after ${o.timeoutMs} ms (${what}); QEMU was killed.${diagnostics()}`));
    }, o.timeoutMs);
    const onAbort = () => fail(Object.assign(new Error('sandbox: aborted'), { name: 'AbortError' }));
    if (o.signal?.aborted) onAbort();
    o.signal?.addEventListener('abort', onAbort, { once: true });

    const consoleDecoder = new StringDecoder('utf8');
    child.stdout.on('data', (/** @type {Buffer} */ buf) => {
      const text = consolePartial + consoleDecoder.write(buf);
      const lines = text.split('\n');
      consolePartial = lines.pop() ?? '';
      for (const raw of lines) {
        const line = raw.replace(/\r/g, '');
        if (line.includes(`${MARK}READY`) && bootMs === null) bootMs = Date.now() - started;
        if (line.includes(`${MARK}READY`) || line.includes(`${MARK}EXIT`)) continue;
        consoleLines.push(line);
        if (consoleLines.length > 400) consoleLines.splice(0, 200);
        if (o.verbose) process.stderr.write(`[sandbox +${((Date.now() - started) / 1000).toFixed(1)}s] ${line}\n`);
      }
    });
    child.stderr.setEncoding('utf8');
    child.stderr.on('data', (/** @type {string} */ text) => {
      const lines = (stderrPartial + text).split('\n');
      stderrPartial = lines.pop() ?? '';
      for (const line of lines) {
        // EPYC lists features TCG cannot emulate; QEMU warns about each one.
        if (!line || line.includes("TCG doesn't support requested feature")) continue;
        if (stderrLines.length < 200) stderrLines.push(line);
        if (o.verbose) process.stderr.write(`[qemu] ${line}\n`);
      }
    });

    // The command's stdout+stderr land in ctl/output (a 9p write per guest
    // write(2)); tail it while QEMU runs.
    const outFd = fs.openSync(path.join(ctl, 'output'), 'r');
    const outDecoder = new StringDecoder('utf8');
    const outBuf = Buffer.alloc(1 << 16);
    let outPos = 0;
    const pump = () => {
      for (;;) {
        const n = fs.readSync(outFd, outBuf, 0, outBuf.length, outPos);
        if (n <= 0) break;
        outPos += n;
        const s = outDecoder.write(outBuf.subarray(0, n));
        if (s) emit(s);
      }
    };
    /** @param {string} s */
    const emit = (s) => {
      try {
        o.onOutput(s);
      } catch (e) {
        fail(e);
      }
    };
    const pumpTimer = setInterval(pump, 100);

    /**
     * @param {unknown} err
     * @param {QemuRun} [value] the result, if not `err`
     */
    const finish = (err, value) => {
      if (settled) return;
      settled = true;
      clearTimeout(bootTimer);
      clearTimeout(runTimer);
      clearInterval(pumpTimer);
      o.signal?.removeEventListener('abort', onAbort);
      forgetChild();
      try {
        pump();
        const rest = outDecoder.end();
        if (rest) emit(rest);
      } catch { /* ignore */ }
      fs.closeSync(outFd);
      if (err) reject(err);
      else resolve(/** @type {QemuRun} */ (value));
    };

    child.on('error', (/** @type {NodeJS.ErrnoException} */ e) => {
      if (e.code === 'ENOENT') {
        finish(new Error(`sandbox: ${QEMU} not found on PATH; install the Debian package ${PKG_QEMU}`));
      } else {
        finish(new Error(`sandbox: cannot run ${QEMU}: ${e.message}`));
      }
    });

    child.on('close', (code, sig) => {
      if (settled) return;
      if (failure) return finish(failure);
      /**
       * @param {string} f
       * @returns {string | null} the control file's text, null if missing
       */
      const read = (f) => {
        try {
          return fs.readFileSync(path.join(ctl, f), 'utf8');
        } catch {
          return null;
        }
      };
      const guestError = read('error');
      if (guestError !== null) {
        return finish(new Error(`sandbox: the VM booted but KVM could not be set up: ${guestError.trim()}`));
      }
      const exitText = read('exit');
      if (exitText === null || !/^\d+\s*$/.test(exitText)) {
        const how = sig ? `was killed by ${sig}`
          : code === 0 ? 'exited with status 0 (the guest reset or powered off, e.g. after a kernel crash)'
          : `exited with status ${code}`;
        if (bootMs === null) {
          return finish(new Error(`sandbox: could not boot the VM: ${QEMU} ${how} before the guest init reported ready ` +
            `(kernel ${kernel.path}, initramfs ${initrd}).${diagnostics()}`));
        }
        return finish(new Error(`sandbox: the VM stopped (${QEMU} ${how}) without reporting the command's exit status.${diagnostics()}`));
      }
      finish(null, {
        exitCode: Number(exitText.trim()),
        guest: parseGuestInfo(read('info') ?? ''),
        bootMs,
        runMs: Date.now() - started - (bootMs ?? 0),
      });
    });
  });
}

/**
 * A module parameter's text as a number: Y/N as 1/0, integers as such.
 * @param {string | undefined} v
 * @returns {number | string | null} null if missing, the text if neither
 */
function flag(v) {
  if (v === undefined) return null;
  if (v === 'Y' || v === 'y') return 1;
  if (v === 'N' || v === 'n') return 0;
  return /^-?\d+$/.test(v) ? Number(v) : v;
}

/**
 * @param {string} text ctl/info: key=value lines
 * @returns {GuestInfo}
 */
function parseGuestInfo(text) {
  /** @type {Record<string, string>} */
  const kv = {};
  /** @type {Record<string, Record<string, string>>} */
  const moduleParams = {};
  /** @type {string[]} */
  const loaded = [];
  for (const line of text.split('\n')) {
    const i = line.indexOf('=');
    if (i < 0) continue;
    const k = line.slice(0, i);
    const v = line.slice(i + 1);
    if (k === 'module') loaded.push(v);
    else if (k.startsWith('param.')) {
      // The init script writes param.<module>.<parameter>.
      const [, mod, p] = /** @type {[string, string, string]} */ (k.split('.'));
      (moduleParams[mod] ??= {})[p] = v;
    } else kv[k] = v;
  }
  return {
    kernelRelease: kv.kernelRelease ?? null,
    vendorModule: loaded.find(
      /**
       * @param {string} m
       * @returns {m is 'kvm_amd' | 'kvm_intel'}
       */
      (m) => m === 'kvm_amd' || m === 'kvm_intel') ?? null,
    moduleParams,
    uptimeMs: kv.uptime ? Math.round(Number(kv.uptime) * 1000) : null,
  };
}

// Importers (cli.mjs, the tests, TypeScript users) get the types declared in
// sandbox.d.mts, not this file's JSDoc: this makes `tsc -p sandbox/tsconfig.json`
// fail when the functions exported here do not match those declared there.
// (An export added here must be added to both.)
void (/** @satisfies {typeof import('./sandbox.mjs')} */ ({ runInSandbox, parseDuration, parseParamString }));
