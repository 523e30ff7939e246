// kvm-test: smoke
import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { ElfError, GuestMemory, Kvm, loadElf, loadFlat, setupMode, type Vm } from '../../../lib';
// @ts-expect-error: plain ESM script without types
import { buildGuests } from '../../../scripts/build-guests.mjs';
import { catchError } from '../helpers';

const paths = () => buildGuests() as Record<string, string>;
const elf64 = () => new Uint8Array(readFileSync(paths().long!));
const elf32 = () => new Uint8Array(readFileSync(paths().protected!));

function withVm(size: number, f: (vm: Vm, memory: GuestMemory) => void) {
  using kvm = Kvm.open();
  using memory = GuestMemory.allocate(size);
  using vm = kvm.createVm();
  vm.addSlot({ guestPhysAddr: 0, memory });
  f(vm, memory);
}

function patch(file: Uint8Array, edits: [offset: number, bytes: number[]][]): Uint8Array {
  const copy = file.slice();
  for (const [o, b] of edits) copy.set(b, o);
  return copy;
}

const elfCode = (vm: Vm, file: Uint8Array) => (catchError(() => loadElf(vm, file)) as ElfError).code;

describe('loading ELF programs', () => {
  it('loads PT_LOAD segments at their physical addresses and zeroes .bss', () => {
    withVm(0x100000, (vm, memory) => {
      memory.bytes.fill(0xee);
      const file = elf64();
      const p = loadElf(vm, file);
      expect(p).toMatchObject({ entry: 0x8000n, elfClass: 64 });
      const [seg] = p.ranges;
      // Its first bytes are the file's bytes at the segment's file offset (0x1000).
      expect([...memory.bytes.subarray(0x8000, 0x8010)]).toEqual([...file.subarray(0x1000, 0x1010)]);
      // Everything between the file bytes and the segment's end is zero.
      const filesz = new DataView(file.buffer).getBigUint64(64 + 32, true);
      expect(memory.bytes.subarray(0x8000 + Number(filesz), Number(seg!.end)).every((b) => b === 0)).toBe(true);
      expect(memory.bytes[Number(seg!.end)]).toBe(0xee);
    });
  });

  it('loads 32-bit files too', () => {
    withVm(0x100000, (vm) => expect(loadElf(vm, elf32())).toMatchObject({ entry: 0x8000n, elfClass: 32 }));
  });

  it('names what is wrong with malformed or unsupported files', () => {
    withVm(0x100000, (vm) => {
      const f = elf64();
      expect(elfCode(vm, new TextEncoder().encode('#!/bin/sh\necho hi\n'))).toBe('ERR_ELF_NOT_ELF');
      expect(elfCode(vm, f.subarray(0, 10))).toBe('ERR_ELF_TRUNCATED');
      expect(elfCode(vm, f.subarray(0, 40))).toBe('ERR_ELF_TRUNCATED'); // header cut
      expect(elfCode(vm, f.subarray(0, 0x1008))).toBe('ERR_ELF_TRUNCATED'); // segment data cut
      expect(elfCode(vm, patch(f, [[4, [3]]]))).toBe('ERR_ELF_CLASS');
      expect(elfCode(vm, patch(f, [[5, [2]]]))).toBe('ERR_ELF_ENDIAN');
      expect(elfCode(vm, patch(f, [[18, [3, 0]]]))).toBe('ERR_ELF_MACHINE'); // 64-bit file, i386 machine
      expect(elfCode(vm, patch(f, [[18, [40, 0]]]))).toBe('ERR_ELF_MACHINE'); // ARM
      expect(elfCode(vm, patch(f, [[16, [3, 0]]]))).toBe('ERR_ELF_TYPE'); // ET_DYN
      expect(elfCode(vm, patch(f, [[16, [1, 0]]]))).toBe('ERR_ELF_TYPE'); // ET_REL
      expect(elfCode(vm, patch(f, [[56, [0, 0]]]))).toBe('ERR_ELF_NO_SEGMENTS'); // phnum 0
      expect(elfCode(vm, patch(f, [[64 + 32, [0xff, 0xff, 0, 0]]]))).toBe('ERR_ELF_SEGMENT'); // filesz > memsz
      const msg = (catchError(() => loadElf(vm, patch(f, [[18, [40, 0]]]))) as Error).message;
      expect(msg).toBe('ELF machine 40 is not x86-64 (62) for a 64-bit file');
    });
  });

  it('answers any corruption of a real file with a load or an ElfError, nothing else', () => {
    // Deterministic pseudo-random byte flips in the headers (xorshift32).
    let x = 0x9e3779b9;
    const rand = () => ((x ^= x << 13), (x ^= x >>> 17), (x ^= x << 5), (x >>> 0));
    withVm(0x100000, (vm) => {
      const f = elf64();
      let loaded = 0;
      for (let i = 0; i < 300; i++) {
        const bad = f.slice();
        for (let k = 0; k < 1 + (rand() % 4); k++) bad[rand() % 128] = rand() & 0xff;
        try {
          loadElf(vm, bad);
          loaded++;
        } catch (e) {
          expect(e).toBeInstanceOf(ElfError);
        }
      }
      expect(loaded).toBeLessThan(300);
    });
  });

  it('refuses segments outside guest memory, and then writes nothing', () => {
    withVm(0x8000, (vm, memory) => {
      memory.bytes.fill(0xaa);
      const err = catchError(() => loadElf(vm, elf64())) as ElfError;
      expect(err).toBeInstanceOf(ElfError);
      expect(err.code).toBe('ERR_ELF_OUTSIDE_MEMORY');
      expect(err.message).toMatch(/segment 0 \(0x8000-0x8[0-9a-f]+\) is not inside guest memory/);
      expect(memory.bytes.every((b) => b === 0xaa)).toBe(true);
    });
  });
});

describe('layout', () => {
  it('refuses to put page tables or the GDT over the loaded program', () => {
    withVm(0x100000, (vm) => {
      const p = loadFlat(vm, new Uint8Array(0x1000).fill(0x90), 0x2000);
      const vcpu = vm.createVcpu();
      expect((catchError(() => setupMode(vcpu, { mode: 'long', entry: p.entry, avoid: p.ranges })) as Error).message).toMatch(
        /page table at 0x2000 would overlap the program at 0x2000-0x3000/,
      );
      expect(
        (catchError(() => setupMode(vcpu, { mode: 'protected', entry: p.entry, avoid: p.ranges, layout: { gdt: 0x2ff0 } })) as Error).message,
      ).toMatch(/GDT at 0x2ff0-0x3010 would overlap the program/);
      // Moved out of the way, the same program sets up fine.
      expect(setupMode(vcpu, { mode: 'long', entry: p.entry, avoid: p.ranges, layout: { pageTables: 0x10000 } })).toMatchObject({
        cr3: 0x10000n,
      });
    });
  });
});
