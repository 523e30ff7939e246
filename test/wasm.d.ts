// Node's types leave out the WebAssembly JS API (it lives in lib.dom); the
// tests need only Memory.
declare namespace WebAssembly {
  class Memory {
    constructor(descriptor: { initial: number; maximum?: number; shared?: boolean });
    readonly buffer: ArrayBuffer;
    grow(delta: number): number;
  }
}
