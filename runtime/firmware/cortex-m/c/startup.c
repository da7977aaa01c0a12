/*
 * The vector table and reset handler of a C program on QEMU's MPS2 boards: the stack at
 * the top of the RAM, then newlib's semihosting start-up (`_start` of rdimon-crt0: bss,
 * the C library, main, exit). Faults end the program through semihosting with status 2.
 */
#include <stdint.h>
#include <stdlib.h>

extern void _exit(int status);

extern void _start(void);
extern uint32_t __stack_top;

void Reset_Handler(void) {
    /* The FPU (CP10, CP11) is off after reset: the hard-float ABI needs it. */
    volatile uint32_t *cpacr = (volatile uint32_t *)0xE000ED88u;
    *cpacr |= 0xFu << 20;
    __asm volatile("dsb\n isb" ::: "memory");
    _start();
    for (;;) {
    }
}

static void Fault_Handler(void) {
    _exit(2);
}

__attribute__((section(".vectors"), used)) static void (*const vectors[16])(void) = {
    (void (*)(void))&__stack_top, /* initial stack pointer */
    Reset_Handler,
    Fault_Handler, /* NMI */
    Fault_Handler, /* HardFault */
    Fault_Handler, /* MemManage */
    Fault_Handler, /* BusFault */
    Fault_Handler, /* UsageFault */
    0, 0, 0, 0,
    Fault_Handler, /* SVCall */
    Fault_Handler, /* DebugMon */
    0,
    Fault_Handler, /* PendSV */
    Fault_Handler, /* SysTick */
};
