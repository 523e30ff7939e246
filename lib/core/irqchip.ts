// The VM's in-kernel devices' state (PIC, IOAPIC, PIT) and its clock,
// decoded from the bytes the KVM_GET_* ioctls fill, at the offsets the
// addon reads from the kernel headers.
import { dataView as view, offsetOf as off, sizeOf } from './state';
import { invalidArgValue, own, validateInteger, validateObject, validateU64 } from './validate';

/** `KVM_IRQCHIP_*`: which chip of the in-kernel irqchip. */
export const IrqChip = { PIC_MASTER: 0, PIC_SLAVE: 1, IOAPIC: 2 } as const;

/** An 8259 PIC's registers (`struct kvm_pic_state`), the parts a VMM usually reads. */
export interface PicState {
  /** Interrupt request register: lines raised and not yet serviced. */
  irr: number;
  /** Interrupt mask register. */
  imr: number;
  /** In-service register. */
  isr: number;
  /** The vector of IRQ 0 of this chip (set by the guest's ICW2). */
  irqBase: number;
  /** Edge/level selection (PIIX ELCR). */
  elcr: number;
  /** The chip's whole state, as `KVM_GET_IRQCHIP` gives it (for `setIrqchip`). */
  raw: Uint8Array;
}

/** The IOAPIC (`struct kvm_ioapic_state`). */
export interface IoapicState {
  baseAddress: bigint;
  id: number;
  irr: number;
  /** The 24 redirection entries, 64 bits each (vector in bits 0-7, mask in bit 16). */
  redirectionTable: bigint[];
  /** The chip's whole state, as `KVM_GET_IRQCHIP` gives it (for `setIrqchip`). */
  raw: Uint8Array;
}

/** One channel of the i8254 PIT (`struct kvm_pit_channel_state`). */
export interface PitChannel {
  count: number;
  latchedCount: number;
  status: number;
  rwMode: number;
  mode: number;
  bcd: number;
  gate: number;
  countLoadTime: bigint;
}

/** The PIT (`struct kvm_pit_state2`). */
export interface PitState {
  channels: [PitChannel, PitChannel, PitChannel];
  flags: number;
  /** The whole struct, as `KVM_GET_PIT2` gives it (for `setPit`). */
  raw: Uint8Array;
}

/** The VM's kvmclock (`struct kvm_clock_data`). */
export interface ClockData {
  /** Guest nanoseconds. */
  clock: bigint;
  /** `KVM_CLOCK_*` bits: which of the other fields are valid. */
  flags: number;
  realtime: bigint;
  hostTsc: bigint;
}

/** @internal */
export function decodePic(raw: Uint8Array): PicState {
  const v = view(raw);
  const u8 = (f: string) => v.getUint8(off('pic', f));
  return { irr: u8('irr'), imr: u8('imr'), isr: u8('isr'), irqBase: u8('irqBase'), elcr: u8('elcr'), raw };
}

/** @internal */
export function decodeIoapic(raw: Uint8Array): IoapicState {
  const v = view(raw);
  const table = off('ioapic', 'redirtbl');
  return {
    baseAddress: v.getBigUint64(off('ioapic', 'baseAddress'), true),
    id: v.getUint32(off('ioapic', 'id'), true),
    irr: v.getUint32(off('ioapic', 'irr'), true),
    redirectionTable: Array.from({ length: off('ioapic', 'pins') }, (_, i) => v.getBigUint64(table + 8 * i, true)),
    raw,
  };
}

/** @internal */
export function decodePit(raw: Uint8Array): PitState {
  const v = view(raw);
  const channel = (i: number): PitChannel => {
    const base = off('pit2', 'channels') + i * off('pit2', 'channelSize');
    const u8 = (f: string) => v.getUint8(base + off('pit2', f));
    return {
      count: v.getUint32(base + off('pit2', 'count'), true),
      latchedCount: v.getUint16(base + off('pit2', 'latchedCount'), true),
      status: u8('status'),
      rwMode: u8('rwMode'),
      mode: u8('mode'),
      bcd: u8('bcd'),
      gate: u8('gate'),
      countLoadTime: v.getBigInt64(base + off('pit2', 'countLoadTime'), true),
    };
  };
  return { channels: [channel(0), channel(1), channel(2)], flags: v.getUint32(off('pit2', 'flags'), true), raw };
}

/** @internal */
export function decodeClock(raw: Uint8Array): ClockData {
  const v = view(raw);
  return {
    clock: v.getBigUint64(off('clock', 'clock'), true),
    flags: v.getUint32(off('clock', 'flags'), true),
    realtime: v.getBigUint64(off('clock', 'realtime'), true),
    hostTsc: v.getBigUint64(off('clock', 'hostTsc'), true),
  };
}

/** @internal The bytes of a clock to set: `clock` and `flags` from `c`, the rest zero. */
export function encodeClock(c: Partial<ClockData>): Uint8Array {
  const o = validateObject(c, 'clock', ['clock', 'flags', 'realtime', 'hostTsc']);
  const raw = new Uint8Array(sizeOf('clock'));
  const v = view(raw);
  if (own(o, 'clock') === undefined) throw invalidArgValue('clock', c, 'must have a clock (guest nanoseconds)');
  v.setBigUint64(off('clock', 'clock'), validateU64(o.clock, 'clock.clock'), true);
  if (own(o, 'flags') !== undefined) v.setUint32(off('clock', 'flags'), validateInteger(o.flags, 'clock.flags', 0, 0xffffffff), true);
  if (own(o, 'realtime') !== undefined) v.setBigUint64(off('clock', 'realtime'), validateU64(o.realtime, 'clock.realtime'), true);
  if (own(o, 'hostTsc') !== undefined) v.setBigUint64(off('clock', 'hostTsc'), validateU64(o.hostTsc, 'clock.hostTsc'), true);
  return raw;
}
