// Argument checks that throw errors shaped like Node's own (`code`
// ERR_INVALID_ARG_TYPE, ERR_OUT_OF_RANGE, ERR_INVALID_ARG_VALUE), so that a
// bad argument never reaches the addon or the kernel as a silent coercion.
import { inspect } from 'node:util';

/** An argument error: a `TypeError` or `RangeError` with Node's `code`. */
export type ArgError = (TypeError | RangeError) & { code: string };

const U64_MAX = (1n << 64n) - 1n;

function make(Ctor: typeof TypeError | typeof RangeError, code: string, message: string): ArgError {
  const e = new Ctor(message) as ArgError;
  e.code = code;
  return e;
}

// Node says "argument" for a parameter and "property" for a field of one.
const kind = (name: string): string => (name.includes('.') || name.includes('[') ? 'property' : 'argument');

/** How Node describes a received value: `type string ('x')`, `null`, `an instance of Foo`. */
export function describeReceived(value: unknown): string {
  if (value === null || value === undefined) return String(value);
  if (typeof value === 'function') return `function ${(value as { name?: string }).name || '<anonymous>'}`;
  if (typeof value === 'object') {
    const ctor = (value as { constructor?: { name?: unknown } }).constructor;
    if (ctor && typeof ctor.name === 'string' && ctor.name !== '') return `an instance of ${ctor.name}`;
    return inspect(value, { depth: -1 });
  }
  let shown = inspect(value, { colors: false });
  if (shown.length > 28) shown = `${shown.slice(0, 25)}...`;
  return `type ${typeof value} (${shown})`;
}

// Node's ERR_OUT_OF_RANGE prints large integers with separators.
function showNumber(value: unknown): string {
  if (typeof value === 'bigint' || (typeof value === 'number' && Number.isInteger(value))) {
    const s = String(value);
    const neg = s.startsWith('-');
    const digits = neg ? s.slice(1) : s;
    if (digits.length <= 4) return `${s}${typeof value === 'bigint' ? 'n' : ''}`;
    const grouped = digits.replace(/\B(?=(\d{3})+(?!\d))/g, '_');
    return `${neg ? '-' : ''}${grouped}${typeof value === 'bigint' ? 'n' : ''}`;
  }
  return typeof value === 'string' ? inspect(value) : String(value);
}

/** `TypeError` ERR_INVALID_ARG_TYPE: `The "name" argument must be of type number. Received ...`. */
export function invalidArgType(name: string, expected: string, value: unknown): ArgError {
  return make(TypeError, 'ERR_INVALID_ARG_TYPE', `The "${name}" ${kind(name)} must be ${expected}. Received ${describeReceived(value)}`);
}

/** `RangeError` ERR_OUT_OF_RANGE: `The value of "name" is out of range. It must be <range>. Received ...`. */
export function outOfRange(name: string, range: string, value: unknown): ArgError {
  return make(RangeError, 'ERR_OUT_OF_RANGE', `The value of "${name}" is out of range. It must be ${range}. Received ${showNumber(value)}`);
}

/**
 * ERR_INVALID_ARG_VALUE, a value of the right type that cannot be used:
 * `The property 'options.x' <reason>. Received ...`. A `RangeError` by
 * default, `TypeError` for shape problems (unknown keys, NUL bytes).
 */
export function invalidArgValue(name: string, value: unknown, reason = 'is invalid', Ctor: typeof TypeError | typeof RangeError = RangeError): ArgError {
  let shown = inspect(value, { depth: 1, breakLength: Infinity, maxArrayLength: 8, maxStringLength: 64 });
  if (shown.length > 128) shown = `${shown.slice(0, 125)}...`;
  return make(Ctor, 'ERR_INVALID_ARG_VALUE', `The ${kind(name)} '${name}' ${reason}. Received ${shown}`);
}

/** Node's ERR_INVALID_RETURN_VALUE, for callbacks that return the wrong thing. */
export function invalidReturnValue(expected: string, name: string, value: unknown): ArgError {
  return make(TypeError, 'ERR_INVALID_RETURN_VALUE', `Expected ${expected} to be returned from the "${name}" function but got ${describeReceived(value)}.`);
}

/** An integer in [min, max], as a number. */
export function validateInteger(value: unknown, name: string, min = Number.MIN_SAFE_INTEGER, max = Number.MAX_SAFE_INTEGER): number {
  if (typeof value !== 'number') throw invalidArgType(name, 'of type number', value);
  if (!Number.isInteger(value)) throw outOfRange(name, 'an integer', value);
  if (value < min || value > max) throw outOfRange(name, `>= ${min} && <= ${max}`, value);
  return value === 0 ? 0 : value; // -0 becomes 0
}

/** An unsigned 8-bit integer. */
export const validateU8 = (value: unknown, name: string, max = 0xff): number => validateInteger(value, name, 0, max);
/** An unsigned 16-bit integer. */
export const validateU16 = (value: unknown, name: string, max = 0xffff): number => validateInteger(value, name, 0, max);
/** An unsigned 32-bit integer. */
export const validateU32 = (value: unknown, name: string, max = 0xffffffff): number => validateInteger(value, name, 0, max);
/** A non-negative safe integer (a length, an offset). */
export const validateLength = (value: unknown, name: string): number => validateInteger(value, name, 0);

/** A 64-bit unsigned value given as a bigint or a non-negative safe integer; returned as a bigint. */
export function validateU64(value: unknown, name: string, max = U64_MAX): bigint {
  if (typeof value === 'bigint') {
    if (value < 0n || value > max) throw outOfRange(name, `>= 0n && <= ${showNumber(max)}`, value);
    return value;
  }
  if (typeof value === 'number') {
    if (!Number.isInteger(value)) throw outOfRange(name, 'an integer', value);
    if (value < 0 || value > Number.MAX_SAFE_INTEGER) {
      throw outOfRange(name, `>= 0 && <= ${showNumber(Number.MAX_SAFE_INTEGER)} (use a bigint above 2^53)`, value);
    }
    const v = BigInt(value);
    if (v > max) throw outOfRange(name, `<= ${showNumber(max)}`, value);
    return v;
  }
  throw invalidArgType(name, 'of type bigint or number', value);
}

/** Throws unless `value` (bytes or an address) is a multiple of `alignment`. */
export function validateAligned(value: bigint | number, name: string, alignment: number | bigint, what = `a multiple of ${alignment}`): void {
  const misaligned = typeof value === 'bigint' ? value % BigInt(alignment) !== 0n : value % Number(alignment) !== 0;
  if (misaligned) throw outOfRange(name, what, value);
}

/** A boolean (no truthiness). */
export function validateBoolean(value: unknown, name: string): boolean {
  if (typeof value !== 'boolean') throw invalidArgType(name, 'of type boolean', value);
  return value;
}

/** A string, optionally refusing NUL bytes (which C APIs would silently cut at). */
export function validateString(value: unknown, name: string, options: { noNul?: boolean } = {}): string {
  if (typeof value !== 'string') throw invalidArgType(name, 'of type string', value);
  if (options.noNul && value.includes('\0')) throw invalidArgValue(name, value, 'must be a string without null bytes', TypeError);
  return value;
}

/** One of a fixed set of values. */
export function validateOneOf<T>(value: unknown, name: string, allowed: readonly T[]): T {
  if (!allowed.includes(value as T)) {
    throw invalidArgValue(name, value, `must be one of: ${allowed.map((a) => inspect(a)).join(', ')}`);
  }
  return value as T;
}

/** A function. */
export function validateFunction(value: unknown, name: string): (...args: never[]) => unknown {
  if (typeof value !== 'function') throw invalidArgType(name, 'of type function', value);
  return value as (...args: never[]) => unknown;
}

/** An array, optionally of at most `maxLength` elements. */
export function validateArray(value: unknown, name: string, maxLength = Number.MAX_SAFE_INTEGER): unknown[] {
  if (!Array.isArray(value)) throw invalidArgType(name, 'an instance of Array', value);
  if (value.length > maxLength) throw outOfRange(`${name}.length`, `<= ${maxLength}`, value.length);
  return value;
}

/** A `Uint8Array` (a Node `Buffer` is one). */
export function validateUint8Array(value: unknown, name: string): Uint8Array {
  if (!(value instanceof Uint8Array)) throw invalidArgType(name, 'an instance of Uint8Array', value);
  return value;
}

/** An instance of `Class`. */
export function validateInstance<T>(value: unknown, name: string, Class: { prototype: T; readonly name: string }): T {
  if (!(value instanceof (Class as unknown as new () => T))) throw invalidArgType(name, `an instance of ${Class.name}`, value);
  return value as T;
}

/**
 * A plain object (not null, not an array) whose own keys are all in
 * `keys`, so a typo such as `{ rpi: 1 }` is refused rather than ignored.
 * Pass `keys` undefined to accept any keys. Keys whose value is
 * `undefined` count as absent, as optional TypeScript fields do.
 */
export function validateObject(value: unknown, name: string, keys?: readonly string[]): Record<string, unknown> {
  if (typeof value !== 'object' || value === null || Array.isArray(value)) {
    throw invalidArgType(name, 'of type object', value);
  }
  if (keys) {
    for (const k of Object.keys(value)) {
      if (!keys.includes(k)) {
        throw invalidArgValue(`${name}.${k}`, (value as Record<string, unknown>)[k], `is not a known key (expected ${keys.join(', ')})`, TypeError);
      }
    }
  }
  return value as Record<string, unknown>;
}

/** An optional options argument: `undefined` gives `{}`. */
export function validateOptions(value: unknown, name: string, keys: readonly string[]): Record<string, unknown> {
  return value === undefined ? {} : validateObject(value, name, keys);
}

/** The own value of `key` in an object, undefined when absent (never from the prototype). */
export function own(o: Record<string, unknown>, key: string): unknown {
  return Object.prototype.hasOwnProperty.call(o, key) ? o[key] : undefined;
}
