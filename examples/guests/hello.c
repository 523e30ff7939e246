// A freestanding guest, built once per mode by scripts/build-guests.mjs:
// prints a greeting to port 0xE9, writes 42 at guest-physical 0x400 and
// halts with 42 in eax. MODE names the mode; STACK_TOP is set per mode.

static void outb(unsigned short port, unsigned char value) {
  __asm__ volatile("outb %0, %1" : : "a"(value), "Nd"(port));
}

// In .bss: the loader must zero it, whatever the memory held before.
static volatile unsigned int must_be_zero[64];

int main(void) {
  for (unsigned int i = 0; i < 64; i++) {
    if (must_be_zero[i] != 0) return 13;
  }
  for (const char *s = "Hello from " MODE " mode!\n"; *s; s++) outb(0xE9, (unsigned char)*s);
  *(volatile unsigned int *)0x400 = 42;
  return 42;
}

// Entry: a stack, main(), then hlt with main's result in eax.
#define STR_(x) #x
#define STR(x) STR_(x)
__asm__(
    ".section .text.start, \"ax\"\n"
    ".global _start\n"
    "_start:\n"
#ifdef __x86_64__
    "  mov $" STR(STACK_TOP) ", %rsp\n"
#else
    "  mov $" STR(STACK_TOP) ", %esp\n"
#endif
    "  call main\n"
    "1: hlt\n"
    "  jmp 1b\n");
