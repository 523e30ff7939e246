import { describe, expect, it } from 'vitest';
import {
  describeReceived, invalidArgType, invalidArgValue, outOfRange, own, validateAligned, validateArray, validateBoolean,
  validateInteger, validateLength, validateObject, validateOneOf, validateOptions, validateString, validateU16,
  validateU32, validateU64, validateU8,
} from '../../../lib/core/validate';

function thrown(f: () => unknown): Error & { code?: string } {
  try {
    f();
  } catch (e) {
    return e as Error & { code?: string };
  }
  throw new Error('expected an error, got none');
}

describe('validate', () => {
  it('words errors like Node', () => {
    expect(invalidArgType('options.slot', 'of type number', 'x').message).toBe(
      `The "options.slot" property must be of type number. Received type string ('x')`,
    );
    expect(invalidArgType('id', 'of type number', null).message).toBe('The "id" argument must be of type number. Received null');
    expect(outOfRange('size', 'a positive multiple of 4096', 5).message).toBe(
      'The value of "size" is out of range. It must be a positive multiple of 4096. Received 5',
    );
    expect(outOfRange('id', '<= 4095', 2 ** 32 + 1).message).toMatch(/Received 4_294_967_297$/);
    expect(invalidArgValue('regs.rpi', 1, 'is not a known key').message).toBe("The property 'regs.rpi' is not a known key. Received 1");
    expect(describeReceived(new Map())).toBe('an instance of Map');
    expect(describeReceived(() => 1)).toMatch(/^function /);
    expect(describeReceived(1n)).toBe('type bigint (1n)');
  });

  it('gives TypeError for the wrong type and RangeError for a bad value, each with a code', () => {
    const t = thrown(() => validateU32('1', 'id'));
    expect(t).toBeInstanceOf(TypeError);
    expect(t.code).toBe('ERR_INVALID_ARG_TYPE');
    const r = thrown(() => validateU32(-1, 'id'));
    expect(r).toBeInstanceOf(RangeError);
    expect(r.code).toBe('ERR_OUT_OF_RANGE');
  });

  it('refuses NaN, fractions, negatives, infinities and values past the width', () => {
    for (const v of [NaN, 1.5, -1, Infinity, -Infinity, 2 ** 32, 2 ** 32 + 1]) {
      expect(thrown(() => validateU32(v, 'x')).code).toBe('ERR_OUT_OF_RANGE');
    }
    for (const v of [undefined, null, '1', 1n, {}, [], true]) expect(thrown(() => validateU32(v, 'x')).code).toBe('ERR_INVALID_ARG_TYPE');
    expect(validateU32(0xffffffff, 'x')).toBe(0xffffffff);
    expect(Object.is(validateU32(-0, 'x'), 0)).toBe(true);
    expect(validateU16(0xffff, 'x')).toBe(0xffff);
    expect(thrown(() => validateU16(0x10000, 'x')).code).toBe('ERR_OUT_OF_RANGE');
    expect(validateU8(3, 'dpl', 3)).toBe(3);
    expect(thrown(() => validateU8(4, 'dpl', 3)).code).toBe('ERR_OUT_OF_RANGE');
    expect(thrown(() => validateInteger(5, 'x', 6, 9)).message).toMatch(/>= 6 && <= 9/);
    expect(validateLength(2 ** 53 - 1, 'n')).toBe(2 ** 53 - 1);
    expect(thrown(() => validateLength(2 ** 53, 'n')).code).toBe('ERR_OUT_OF_RANGE');
  });

  it('takes u64 values as bigints or safe integers and returns bigints', () => {
    expect(validateU64(5, 'r')).toBe(5n);
    expect(validateU64(2n ** 64n - 1n, 'r')).toBe(2n ** 64n - 1n);
    for (const v of [-1n, 2n ** 64n, -1, 1.5, NaN, 2 ** 53, Infinity]) expect(thrown(() => validateU64(v, 'r')).code).toBe('ERR_OUT_OF_RANGE');
    for (const v of ['1', null, undefined, {}]) expect(thrown(() => validateU64(v, 'r')).code).toBe('ERR_INVALID_ARG_TYPE');
    expect(thrown(() => validateU64(0x1_0000n, 'r', 0xffffn)).code).toBe('ERR_OUT_OF_RANGE');
  });

  it('checks alignment of numbers and bigints', () => {
    validateAligned(0x2000, 'gpa', 4096);
    validateAligned(0x2000n, 'gpa', 4096);
    const e = thrown(() => validateAligned(0x2800n, 'gpa', 4096, 'a multiple of 4096'));
    expect(e.code).toBe('ERR_OUT_OF_RANGE');
    expect(e.message).toMatch(/"gpa".*multiple of 4096. Received 10_240n/);
  });

  it('checks booleans, strings, enumerations and arrays without coercion', () => {
    expect(validateBoolean(false, 'b')).toBe(false);
    expect(thrown(() => validateBoolean(0, 'b')).code).toBe('ERR_INVALID_ARG_TYPE');
    expect(validateString('/dev/kvm', 'path', { noNul: true })).toBe('/dev/kvm');
    const nul = thrown(() => validateString('/dev/kvm\0junk', 'path', { noNul: true }));
    expect(nul).toBeInstanceOf(TypeError);
    expect(nul.code).toBe('ERR_INVALID_ARG_VALUE');
    expect(thrown(() => validateString(42, 'path')).code).toBe('ERR_INVALID_ARG_TYPE');
    expect(validateOneOf('long', 'mode', ['real', 'long'])).toBe('long');
    expect(thrown(() => validateOneOf('x', 'mode', ['real', 'long'])).message).toMatch(/must be one of: 'real', 'long'/);
    expect(thrown(() => validateArray([1, 2, 3, 4, 5], 'bps', 4)).code).toBe('ERR_OUT_OF_RANGE');
    expect(thrown(() => validateArray({ length: 1 }, 'bps')).code).toBe('ERR_INVALID_ARG_TYPE');
  });

  it('refuses unknown keys of option objects, naming them, and ignores the prototype', () => {
    const e = thrown(() => validateObject({ rip: 1, rpi: 1 }, 'regs', ['rip']));
    expect(e.code).toBe('ERR_INVALID_ARG_VALUE');
    expect(e.message).toMatch(/'regs\.rpi'/);
    for (const v of [null, [], 1, 'x']) expect(thrown(() => validateObject(v, 'o')).code).toBe('ERR_INVALID_ARG_TYPE');
    expect(validateOptions(undefined, 'options', ['a'])).toEqual({});
    expect(thrown(() => validateOptions(null, 'options', ['a'])).code).toBe('ERR_INVALID_ARG_TYPE');
    const inherited = Object.create({ slot: 5 }) as Record<string, unknown>;
    expect(own(inherited, 'slot')).toBeUndefined();
  });
});
