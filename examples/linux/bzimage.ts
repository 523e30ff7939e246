// A bzImage loader for the x86 Linux boot protocol's 64-bit entry point
// (Documentation/arch/x86/boot.rst): no BIOS and no real-mode set-up code.
// We read the setup header, place the protected-mode kernel, the command
// line and the initramfs, fill in boot_params (the "zero page") with an e820
// memory map, and enter at startup_64 in long mode.

/** The setup header fields this loader uses (offsets are from the start of the file). */
export interface SetupHeader {
  /** 512-byte sectors of real-mode set-up code after the boot sector (0 means 4). */
  setupSects: number;
  /** Boot protocol version, e.g. 0x020f for 2.15. */
  version: number;
  loadflags: number;
  /** XLF_* bits; bit 0: the kernel has the 64-bit entry at load address + 0x200. */
  xloadflags: number;
  /** Highest address the initramfs may end at (inclusive). */
  initrdAddrMax: number;
  /** Alignment a relocatable kernel needs. */
  kernelAlignment: number;
  relocatable: boolean;
  /** Where the kernel prefers to be loaded. */
  prefAddress: bigint;
  /** Bytes the kernel needs from its load address on, to decompress itself. */
  initSize: number;
  /** Longest command line, without its NUL. */
  cmdlineSize: number;
  /** The end of the setup header in the file (0x202 + the byte at 0x201). */
  headerEnd: number;
}

/** A parsed bzImage. */
export interface BzImage {
  header: SetupHeader;
  /** The setup header's bytes, 0x1f1 up to {@link SetupHeader.headerEnd}: copied into boot_params. */
  headerBytes: Uint8Array;
  /** The protected-mode kernel: what is loaded at the load address. */
  kernel: Uint8Array;
  /** The version string the kernel embeds (`6.1.0-56-amd64 (debian-kernel@...) #1 SMP ...`). */
  versionString: string;
}

/** A range of the e820 memory map the guest sees. */
export interface E820Entry {
  addr: number;
  size: number;
  /** 1 RAM, 2 reserved, 3 ACPI reclaimable. */
  type: number;
}

export const E820_RAM = 1;
export const E820_RESERVED = 2;

// boot_params offsets (arch/x86/include/uapi/asm/bootparam.h).
const BP = {
  acpiRsdpAddr: 0x070,
  e820Entries: 0x1e8,
  setupHeader: 0x1f1,
  typeOfLoader: 0x210,
  loadflags: 0x211,
  ramdiskImage: 0x218,
  ramdiskSize: 0x21c,
  cmdLinePtr: 0x228,
  e820Table: 0x2d0,
} as const;
const E820_MAX = 128;
const LOADED_HIGH = 0x01;
const XLF_KERNEL_64 = 0x01;
const MIN_VERSION = 0x020c; // 2.12: xloadflags and the 64-bit entry are described

/** A bzImage the loader refuses, with why. */
export class BzImageError extends Error {
  override name = 'BzImageError';
}

/** Reads and checks the setup header of a bzImage. */
export function parseBzImage(image: Uint8Array): BzImage {
  if (image.length < 0x1000) throw new BzImageError(`a bzImage is larger than ${image.length} bytes`);
  const v = new DataView(image.buffer, image.byteOffset, image.byteLength);
  const magic = String.fromCharCode(...image.subarray(0x202, 0x206));
  if (v.getUint16(0x1fe, true) !== 0xaa55 || magic !== 'HdrS') {
    throw new BzImageError('not a Linux bzImage: no boot sector signature 0xAA55 and "HdrS" setup header');
  }
  const version = v.getUint16(0x206, true);
  if (version < MIN_VERSION) {
    throw new BzImageError(`boot protocol ${fmtVersion(version)} is older than 2.12, the first with the 64-bit entry point`);
  }
  const xloadflags = v.getUint16(0x236, true);
  if (!(xloadflags & XLF_KERNEL_64)) throw new BzImageError('the kernel has no 64-bit entry point (xloadflags bit 0, XLF_KERNEL_64, is clear)');
  const setupSects = image[0x1f1] || 4;
  const kernelOffset = (setupSects + 1) * 512;
  if (kernelOffset >= image.length) throw new BzImageError(`setup_sects ${setupSects} points past the end of the file`);
  const headerEnd = 0x202 + (image[0x201] ?? 0);
  const header: SetupHeader = {
    setupSects,
    version,
    loadflags: image[BP.loadflags] ?? 0,
    xloadflags,
    initrdAddrMax: v.getUint32(0x22c, true),
    kernelAlignment: v.getUint32(0x230, true),
    relocatable: image[0x234] !== 0,
    prefAddress: v.getBigUint64(0x258, true),
    initSize: v.getUint32(0x260, true),
    cmdlineSize: v.getUint32(0x238, true),
    headerEnd,
  };
  // kernel_version: a pointer (minus 0x200) to a NUL-terminated string in the set-up code.
  const verAt = v.getUint16(0x20e, true) + 0x200;
  const verEnd = image.indexOf(0, verAt);
  const versionString = verAt < kernelOffset && verEnd > verAt ? new TextDecoder('latin1').decode(image.subarray(verAt, verEnd)) : '';
  return { header, headerBytes: image.subarray(0x1f1, headerEnd), kernel: image.subarray(kernelOffset), versionString };
}

function fmtVersion(v: number): string {
  return `${v >> 8}.${(v & 0xff).toString().padStart(2, '0')}`;
}

/**
 * The e820 map of a PC without a BIOS worth the name: low RAM up to the
 * EBDA, the legacy hole up to 1 MiB reserved (our ACPI tables live there),
 * RAM from 1 MiB to the end.
 */
export function e820Map(memorySize: number): E820Entry[] {
  return [
    { addr: 0, size: 0x9fc00, type: E820_RAM },
    { addr: 0x9fc00, size: 0x100000 - 0x9fc00, type: E820_RESERVED },
    { addr: 0x100000, size: memorySize - 0x100000, type: E820_RAM },
  ];
}

/** Where {@link placeLinux} puts things, guest-physical. */
export interface LinuxLayout {
  /** boot_params, the zero page: rsi at entry. */
  bootParams: number;
  cmdline: number;
  kernel: number;
  /** startup_64: kernel + 0x200. */
  entry: number;
  initrd: number;
  initrdSize: number;
}

/** What {@link placeLinux} needs besides the image. */
export interface PlaceOptions {
  /** Guest RAM size in bytes, starting at guest-physical 0. */
  memorySize: number;
  cmdline: string;
  initrd: Uint8Array;
  /** Guest-physical address of the ACPI RSDP, passed in boot_params (protocol 2.14+). */
  rsdp?: number;
  /** Where boot_params goes (default 0x10000); the command line follows at +0x10000. */
  bootParams?: number;
}

const PAGE = 0x1000;
const alignUp = (n: number, a: number): number => Math.ceil(n / a) * a;
const alignDown = (n: number, a: number): number => Math.floor(n / a) * a;

/**
 * Places a parsed bzImage in guest memory (written through `mem(gpa, length)`):
 * the protected-mode kernel at its preferred address, the initramfs as high as
 * RAM and `initrd_addr_max` allow, the command line, and boot_params with a
 * copy of the setup header, the loader type, the pointers and the e820 map.
 * Returns the layout; enter at `entry` with rsi = `bootParams`.
 */
export function placeLinux(bz: BzImage, mem: (gpa: number, length: number) => Uint8Array, o: PlaceOptions): LinuxLayout {
  const { header } = bz;
  const bootParams = o.bootParams ?? 0x10000;
  const cmdlineAt = bootParams + 0x10000;
  const cmd = new TextEncoder().encode(o.cmdline);
  if (cmd.length > header.cmdlineSize) {
    throw new BzImageError(`the command line is ${cmd.length} bytes; this kernel takes at most ${header.cmdlineSize}`);
  }

  // A relocatable kernel can go anywhere suitably aligned; its preferred
  // address (16 MiB for distribution kernels) is where it runs without
  // moving itself.
  const pref = Number(header.prefAddress);
  const kernel = header.relocatable ? alignUp(Math.max(pref, 0x100000), header.kernelAlignment || 0x200000) : 0x100000;
  const kernelEnd = kernel + Math.max(header.initSize, bz.kernel.length);
  if (kernelEnd > o.memorySize) {
    throw new BzImageError(`the kernel needs RAM up to 0x${kernelEnd.toString(16)} (init_size ${header.initSize >> 20} MiB from 0x${kernel.toString(16)}); give the guest more memory`);
  }
  mem(kernel, bz.kernel.length).set(bz.kernel);

  // The initramfs goes high, page-aligned, clear of the kernel's decompression area.
  const initrdTop = Math.min(o.memorySize, header.initrdAddrMax + 1);
  const initrd = alignDown(initrdTop - o.initrd.length, PAGE);
  if (initrd < kernelEnd) {
    throw new BzImageError(`no room for a ${o.initrd.length}-byte initramfs between the kernel (up to 0x${kernelEnd.toString(16)}) and 0x${initrdTop.toString(16)}; give the guest more memory`);
  }
  mem(initrd, o.initrd.length).set(o.initrd);

  const c = mem(cmdlineAt, cmd.length + 1);
  c.set(cmd);
  c[cmd.length] = 0;

  const bp = mem(bootParams, PAGE);
  bp.fill(0);
  const v = new DataView(bp.buffer, bp.byteOffset, bp.byteLength);
  bp.set(bz.headerBytes, BP.setupHeader);
  bp[BP.typeOfLoader] = 0xff; // "undefined" loader: we have no assigned id
  bp[BP.loadflags] = (bp[BP.loadflags] ?? 0) | LOADED_HIGH;
  v.setUint32(BP.ramdiskImage, initrd, true);
  v.setUint32(BP.ramdiskSize, o.initrd.length, true);
  v.setUint32(BP.cmdLinePtr, cmdlineAt, true);
  if (o.rsdp !== undefined && header.version >= 0x020e) v.setBigUint64(BP.acpiRsdpAddr, BigInt(o.rsdp), true);
  const e820 = e820Map(o.memorySize);
  if (e820.length > E820_MAX) throw new BzImageError('too many e820 entries');
  bp[BP.e820Entries] = e820.length;
  e820.forEach((e, i) => {
    const at = BP.e820Table + i * 20;
    v.setBigUint64(at, BigInt(e.addr), true);
    v.setBigUint64(at + 8, BigInt(e.size), true);
    v.setUint32(at + 16, e.type, true);
  });
  return { bootParams, cmdline: cmdlineAt, kernel, entry: kernel + 0x200, initrd, initrdSize: o.initrd.length };
}
