// A vCPU's kernel state structs, decoded from (and encoded into) the bytes
// KVM_GET_* fills, at the offsets the addon read from the kernel headers.
import { binding } from './binding';
import { invalidArgValue, own, validateArray, validateInteger, validateObject, validateU64, validateUint8Array } from './validate';

type Layout = Record<string, number> & { size: number };
const L = binding.stateLayouts as Record<string, Layout>;
const layout = (kind: string): Layout => {
  const l = L[kind];
  if (l === undefined) throw new Error(`node-kvm internal error: no layout for ${kind}`);
  return l;
};
const at = (l: Layout, field: string): number => {
  const v = l[field];
  if (v === undefined) throw new Error(`node-kvm internal error: no offset for ${field}`);
  return v;
};

/** The x87 FPU and SSE state (`struct kvm_fpu`, `KVM_GET_FPU`). */
export interface Fpu {
  /** ST0-ST7, 16 bytes each (80-bit values, fxsave layout). */
  fpr: Uint8Array;
  fcw: number;
  fsw: number;
  /** The abridged tag word, as fxsave stores it. */
  ftwx: number;
  lastOpcode: number;
  lastIp: bigint;
  lastDp: bigint;
  /** XMM0-XMM15, 16 bytes each. */
  xmm: Uint8Array;
  mxcsr: number;
}

/** The debug registers (`struct kvm_debugregs`, `KVM_GET_DEBUGREGS`). */
export interface DebugRegs {
  /** DR0-DR3. */
  db: [bigint, bigint, bigint, bigint];
  dr6: bigint;
  dr7: bigint;
  flags: bigint;
}

/** Extended control registers (`struct kvm_xcrs`): XCR0 is index 0. */
export interface Xcrs {
  flags: number;
  xcrs: { xcr: number; value: bigint }[];
}

/** `KVM_MP_STATE_*`: what a vCPU is doing as a multiprocessor member. */
export const MP_STATES = [
  'runnable', 'uninitialized', 'init_received', 'halted', 'sipi_received',
  'stopped', 'check_stop', 'operating', 'load', 'ap_reset_hold', 'suspended',
] as const;
/** One of {@link MP_STATES}. */
export type MpState = (typeof MP_STATES)[number];

/** Pending and injected events (`struct kvm_vcpu_events`, `KVM_GET_VCPU_EVENTS`). */
export interface VcpuEvents {
  exception: { injected: number; nr: number; hasErrorCode: number; pending: number; errorCode: number; hasPayload: number; payload: bigint };
  interrupt: { injected: number; nr: number; soft: number; shadow: number };
  nmi: { injected: number; pending: number; masked: number };
  sipiVector: number;
  /** `KVM_VCPUEVENT_VALID_*` bits: which parts a set applies. */
  flags: number;
  smi: { smm: number; pending: number; smmInsideNmi: number; latchedInit: number };
  tripleFault: { pending: number };
}

/** What {@link Vcpu.setVcpuEvents} accepts: any subset, down to single fields. */
export type VcpuEventsInput = { [K in keyof VcpuEvents]?: VcpuEvents[K] extends object ? Partial<VcpuEvents[K]> : VcpuEvents[K] };

const view = (b: Uint8Array) => new DataView(b.buffer, b.byteOffset, b.byteLength);

/** @internal The offset of `field` in the kernel struct `kind`, as the addon read it from the headers. */
export const offsetOf = (kind: string, field: string): number => at(layout(kind), field);
/** @internal The size of the kernel struct `kind`. */
export const sizeOf = (kind: string): number => layout(kind).size;
/** @internal A DataView over exactly `b`. */
export const dataView = view;

/** @internal */
export function decodeFpu(b: Uint8Array): Fpu {
  const l = layout('fpu');
  const v = view(b);
  return {
    fpr: b.slice(at(l, 'fpr'), at(l, 'fpr') + 128),
    fcw: v.getUint16(at(l, 'fcw'), true),
    fsw: v.getUint16(at(l, 'fsw'), true),
    ftwx: v.getUint8(at(l, 'ftwx')),
    lastOpcode: v.getUint16(at(l, 'lastOpcode'), true),
    lastIp: v.getBigUint64(at(l, 'lastIp'), true),
    lastDp: v.getBigUint64(at(l, 'lastDp'), true),
    xmm: b.slice(at(l, 'xmm'), at(l, 'xmm') + 256),
    mxcsr: v.getUint32(at(l, 'mxcsr'), true),
  };
}

/** @internal Writes the fields `fpu` names over `b`. */
export function encodeFpu(b: Uint8Array, fpu: Partial<Fpu>): void {
  const l = layout('fpu');
  const v = view(b);
  const o = validateObject(fpu, 'fpu', ['fpr', 'fcw', 'fsw', 'ftwx', 'lastOpcode', 'lastIp', 'lastDp', 'xmm', 'mxcsr']);
  const bytes = (name: 'fpr' | 'xmm', n: number) => {
    if (own(o, name) === undefined) return;
    const src = validateUint8Array(o[name], `fpu.${name}`);
    if (src.length !== n) throw invalidArgValue(`fpu.${name}`, src, `must be ${n} bytes`);
    b.set(src, at(l, name));
  };
  bytes('fpr', 128);
  bytes('xmm', 256);
  if (own(o, 'fcw') !== undefined) v.setUint16(at(l, 'fcw'), validateInteger(o.fcw, 'fpu.fcw', 0, 0xffff), true);
  if (own(o, 'fsw') !== undefined) v.setUint16(at(l, 'fsw'), validateInteger(o.fsw, 'fpu.fsw', 0, 0xffff), true);
  if (own(o, 'ftwx') !== undefined) v.setUint8(at(l, 'ftwx'), validateInteger(o.ftwx, 'fpu.ftwx', 0, 0xff));
  if (own(o, 'lastOpcode') !== undefined) v.setUint16(at(l, 'lastOpcode'), validateInteger(o.lastOpcode, 'fpu.lastOpcode', 0, 0xffff), true);
  if (own(o, 'lastIp') !== undefined) v.setBigUint64(at(l, 'lastIp'), validateU64(o.lastIp, 'fpu.lastIp'), true);
  if (own(o, 'lastDp') !== undefined) v.setBigUint64(at(l, 'lastDp'), validateU64(o.lastDp, 'fpu.lastDp'), true);
  if (own(o, 'mxcsr') !== undefined) v.setUint32(at(l, 'mxcsr'), validateInteger(o.mxcsr, 'fpu.mxcsr', 0, 0xffffffff), true);
}

/** @internal */
export function decodeDebugRegs(b: Uint8Array): DebugRegs {
  const l = layout('debugregs');
  const v = view(b);
  const db = at(l, 'db');
  return {
    db: [0, 1, 2, 3].map((i) => v.getBigUint64(db + 8 * i, true)) as [bigint, bigint, bigint, bigint],
    dr6: v.getBigUint64(at(l, 'dr6'), true),
    dr7: v.getBigUint64(at(l, 'dr7'), true),
    flags: v.getBigUint64(at(l, 'flags'), true),
  };
}

/** @internal */
export function encodeDebugRegs(b: Uint8Array, regs: Partial<DebugRegs>): void {
  const l = layout('debugregs');
  const v = view(b);
  const o = validateObject(regs, 'debugRegs', ['db', 'dr6', 'dr7', 'flags']);
  if (own(o, 'db') !== undefined) {
    validateArray(o.db, 'debugRegs.db', 4).forEach((x, i) => v.setBigUint64(at(l, 'db') + 8 * i, validateU64(x, `debugRegs.db[${i}]`), true));
  }
  for (const f of ['dr6', 'dr7', 'flags'] as const) {
    if (own(o, f) !== undefined) v.setBigUint64(at(l, f), validateU64(o[f], `debugRegs.${f}`), true);
  }
}

/** @internal */
export function decodeXcrs(b: Uint8Array): Xcrs {
  const l = layout('xcrs');
  const v = view(b);
  const n = Math.min(v.getUint32(at(l, 'nrXcrs'), true), at(l, 'max'));
  const xcrs: Xcrs['xcrs'] = [];
  for (let i = 0; i < n; i++) {
    const base = at(l, 'xcrs') + i * at(l, 'xcrSize');
    xcrs.push({ xcr: v.getUint32(base + at(l, 'xcrIndex'), true), value: v.getBigUint64(base + at(l, 'xcrValue'), true) });
  }
  return { flags: v.getUint32(at(l, 'flags'), true), xcrs };
}

/** @internal */
export function encodeXcrs(b: Uint8Array, xcrs: Xcrs): void {
  const l = layout('xcrs');
  const v = view(b);
  const o = validateObject(xcrs, 'xcrs', ['flags', 'xcrs']);
  const list = validateArray(o.xcrs, 'xcrs.xcrs', at(l, 'max'));
  b.fill(0);
  v.setUint32(at(l, 'nrXcrs'), list.length, true);
  v.setUint32(at(l, 'flags'), own(o, 'flags') === undefined ? 0 : validateInteger(o.flags, 'xcrs.flags', 0, 0xffffffff), true);
  list.forEach((x, i) => {
    const e = validateObject(x, `xcrs.xcrs[${i}]`, ['xcr', 'value']);
    const base = at(l, 'xcrs') + i * at(l, 'xcrSize');
    v.setUint32(base + at(l, 'xcrIndex'), validateInteger(e.xcr, `xcrs.xcrs[${i}].xcr`, 0, 0xffffffff), true);
    v.setBigUint64(base + at(l, 'xcrValue'), validateU64(e.value, `xcrs.xcrs[${i}].value`), true);
  });
}

/** @internal */
export function decodeMpState(b: Uint8Array): MpState | number {
  const n = view(b).getUint32(at(layout('mpState'), 'mpState'), true);
  return MP_STATES[n] ?? n;
}

/** @internal */
export function encodeMpState(b: Uint8Array, state: MpState | number): void {
  const n = typeof state === 'number' ? validateInteger(state, 'state', 0, 0xffffffff) : MP_STATES.indexOf(state);
  if (n < 0) throw invalidArgValue('state', state, `must be one of ${MP_STATES.join(', ')}, or a number`);
  view(b).setUint32(at(layout('mpState'), 'mpState'), n, true);
}

// Event fields: [path in VcpuEvents, offset name, size in bytes].
const EVENT_FIELDS: [string, string, string, 1 | 4 | 8][] = [
  ['exception', 'injected', 'exceptionInjected', 1], ['exception', 'nr', 'exceptionNr', 1],
  ['exception', 'hasErrorCode', 'exceptionHasErrorCode', 1], ['exception', 'pending', 'exceptionPending', 1],
  ['exception', 'errorCode', 'exceptionErrorCode', 4], ['exception', 'hasPayload', 'exceptionHasPayload', 1],
  ['exception', 'payload', 'exceptionPayload', 8],
  ['interrupt', 'injected', 'interruptInjected', 1], ['interrupt', 'nr', 'interruptNr', 1],
  ['interrupt', 'soft', 'interruptSoft', 1], ['interrupt', 'shadow', 'interruptShadow', 1],
  ['nmi', 'injected', 'nmiInjected', 1], ['nmi', 'pending', 'nmiPending', 1], ['nmi', 'masked', 'nmiMasked', 1],
  ['', 'sipiVector', 'sipiVector', 4], ['', 'flags', 'flags', 4],
  ['smi', 'smm', 'smiSmm', 1], ['smi', 'pending', 'smiPending', 1], ['smi', 'smmInsideNmi', 'smiInsideNmi', 1],
  ['smi', 'latchedInit', 'smiLatchedInit', 1], ['tripleFault', 'pending', 'tripleFaultPending', 1],
];

/** @internal */
export function decodeEvents(b: Uint8Array): VcpuEvents {
  const l = layout('events');
  const v = view(b);
  const out: Record<string, unknown> = { exception: {}, interrupt: {}, nmi: {}, smi: {}, tripleFault: {} };
  for (const [group, name, off, size] of EVENT_FIELDS) {
    const o = at(l, off);
    const value = size === 1 ? v.getUint8(o) : size === 4 ? v.getUint32(o, true) : v.getBigUint64(o, true);
    if (group) (out[group] as Record<string, unknown>)[name] = value;
    else out[name] = value;
  }
  return out as unknown as VcpuEvents;
}

/** @internal Writes the fields `events` names over `b`. */
export function encodeEvents(b: Uint8Array, events: unknown): void {
  const l = layout('events');
  const v = view(b);
  const groups = ['exception', 'interrupt', 'nmi', 'smi', 'tripleFault'];
  const o = validateObject(events, 'events', [...groups, 'sipiVector', 'flags']);
  const inner: Record<string, Record<string, unknown>> = {};
  for (const g of groups) {
    if (own(o, g) !== undefined) inner[g] = validateObject(o[g], `events.${g}`, EVENT_FIELDS.filter((f) => f[0] === g).map((f) => f[1]));
  }
  for (const [group, name, off, size] of EVENT_FIELDS) {
    const src = group ? inner[group] : o;
    if (src === undefined || own(src, name) === undefined) continue;
    const path = group ? `events.${group}.${name}` : `events.${name}`;
    const x = src[name];
    if (size === 1) v.setUint8(at(l, off), validateInteger(x, path, 0, 0xff));
    else if (size === 4) v.setUint32(at(l, off), validateInteger(x, path, 0, 0xffffffff), true);
    else v.setBigUint64(at(l, off), validateU64(x, path), true);
  }
}
