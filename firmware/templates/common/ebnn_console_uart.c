/* edgebnn firmware console: printf through the board's UART, no semihosting.
 *
 * Compiled only into UART builds (`edgebnn firmware build --console uart`),
 * with ebnn_console_config.h generated from the target file's
 * [console.uart] table: the driver, the UART's base address, the value of
 * its baud rate register and the register writes (clocks, pins) that come
 * first. The drivers poll and only transmit.
 *
 * picolibc's stdio writes through the `stdout` FILE defined here. When main
 * returns, crt0 (picolibc's "hosted" one) calls exit() and then _exit(),
 * which prints "EBNN exit status=<main's return value>" and waits for
 * interrupts forever: there is no host to return to. `edgebnn firmware run`
 * stops the emulator once that line has arrived.
 */
#include <stdint.h>
#include <stdio.h>

#include "ebnn_console_config.h"

#define EBNN_REG32(addr) (*(volatile uint32_t *)(uintptr_t)(addr))
#define EBNN_REG8(addr) (*(volatile uint8_t *)(uintptr_t)(addr))

#define EBNN_UART_CMSDK_APB 1
#define EBNN_UART_STM32_USART 2
#define EBNN_UART_NRF51 3
#define EBNN_UART_NS16550 4

#if EBNN_UART_DRIVER == EBNN_UART_CMSDK_APB
/* Arm CMSDK APB UART: DATA 0x00, STATE 0x04 (bit 0: TX buffer full),
 * CTRL 0x08 (bit 0: TX enable), BAUDDIV 0x10. */
static void ebnn_uart_setup(void) {
  EBNN_REG32(EBNN_UART_BASE + 0x10u) = EBNN_UART_BAUD_REGISTER;
  EBNN_REG32(EBNN_UART_BASE + 0x08u) = 1u;
}
static void ebnn_uart_write(uint8_t c) {
  while (EBNN_REG32(EBNN_UART_BASE + 0x04u) & 1u) {
  }
  EBNN_REG32(EBNN_UART_BASE + 0x00u) = c;
}
#elif EBNN_UART_DRIVER == EBNN_UART_STM32_USART
/* STM32F1/F2/F4 USART: SR 0x00 (bit 7: TXE), DR 0x04, BRR 0x08,
 * CR1 0x0C (bit 13: UE, bit 3: TE). */
static void ebnn_uart_setup(void) {
  EBNN_REG32(EBNN_UART_BASE + 0x08u) = EBNN_UART_BAUD_REGISTER;
  EBNN_REG32(EBNN_UART_BASE + 0x0Cu) = (1u << 13) | (1u << 3);
}
static void ebnn_uart_write(uint8_t c) {
  while (!(EBNN_REG32(EBNN_UART_BASE + 0x00u) & (1u << 7))) {
  }
  EBNN_REG32(EBNN_UART_BASE + 0x04u) = c;
}
#elif EBNN_UART_DRIVER == EBNN_UART_NRF51
/* Nordic nRF51 UART: TASKS_STARTTX 0x008, EVENTS_TXDRDY 0x11C,
 * ENABLE 0x500 (4 = enabled), TXD 0x51C, BAUDRATE 0x524. The TX pin
 * (PSELTXD, 0x50C) is set by the target file's init writes. */
static void ebnn_uart_setup(void) {
  EBNN_REG32(EBNN_UART_BASE + 0x524u) = EBNN_UART_BAUD_REGISTER;
  EBNN_REG32(EBNN_UART_BASE + 0x500u) = 4u;
  EBNN_REG32(EBNN_UART_BASE + 0x008u) = 1u;
}
static void ebnn_uart_write(uint8_t c) {
  EBNN_REG32(EBNN_UART_BASE + 0x11Cu) = 0u;
  EBNN_REG32(EBNN_UART_BASE + 0x51Cu) = c;
  while (EBNN_REG32(EBNN_UART_BASE + 0x11Cu) == 0u) {
  }
}
#elif EBNN_UART_DRIVER == EBNN_UART_NS16550
/* 16550: THR/DLL 0x0, IER/DLM 0x1, FCR 0x2, LCR 0x3, LSR 0x5 (bit 5:
 * THR empty); byte registers. */
static void ebnn_uart_setup(void) {
  EBNN_REG8(EBNN_UART_BASE + 1u) = 0u;    /* no interrupts */
  EBNN_REG8(EBNN_UART_BASE + 3u) = 0x80u; /* DLAB: the divisor latch */
  EBNN_REG8(EBNN_UART_BASE + 0u) = (uint8_t)(EBNN_UART_BAUD_REGISTER & 0xFFu);
  EBNN_REG8(EBNN_UART_BASE + 1u) = (uint8_t)((EBNN_UART_BAUD_REGISTER >> 8) & 0xFFu);
  EBNN_REG8(EBNN_UART_BASE + 3u) = 0x03u; /* 8 data bits, no parity, 1 stop bit */
  EBNN_REG8(EBNN_UART_BASE + 2u) = 0x07u; /* FIFOs on and cleared */
}
static void ebnn_uart_write(uint8_t c) {
  while (!(EBNN_REG8(EBNN_UART_BASE + 5u) & 0x20u)) {
  }
  EBNN_REG8(EBNN_UART_BASE + 0u) = c;
}
#else
#error "ebnn_console_config.h names no known EBNN_UART_DRIVER"
#endif

static int ebnn_uart_ready;

static void ebnn_uart_start(void) {
  int i;
  for (i = 0; i < EBNN_UART_INIT_COUNT; ++i) {
    uint32_t addr = ebnn_uart_init[i][0];
    EBNN_REG32(addr) = (EBNN_REG32(addr) & ~ebnn_uart_init[i][1]) | ebnn_uart_init[i][2];
  }
  ebnn_uart_setup();
  ebnn_uart_ready = 1;
}

/* One character to the serial port; "\n" goes out as "\r\n" for terminals. */
static void ebnn_uart_putchar(char c) {
  if (!ebnn_uart_ready) {
    ebnn_uart_start();
  }
  if (c == '\n') {
    ebnn_uart_write((uint8_t)'\r');
  }
  ebnn_uart_write((uint8_t)c);
}

static int ebnn_console_put(char c, FILE *file) {
  (void)file;
  ebnn_uart_putchar(c);
  return (unsigned char)c;
}

static FILE ebnn_console_stdout = FDEV_SETUP_STREAM(ebnn_console_put, NULL, NULL, _FDEV_SETUP_WRITE);
FILE *const stdout = &ebnn_console_stdout;
FILE *const stderr = &ebnn_console_stdout;

void _exit(int status) {
  static const char prefix[] = "EBNN exit status=";
  char digits[4];
  unsigned value = (unsigned)status & 0xFFu;
  int n = 0, i;
  for (i = 0; prefix[i] != '\0'; ++i) {
    ebnn_uart_putchar(prefix[i]);
  }
  do {
    digits[n++] = (char)('0' + value % 10u);
    value /= 10u;
  } while (value != 0u);
  while (n > 0) {
    ebnn_uart_putchar(digits[--n]);
  }
  ebnn_uart_putchar('\n');
  for (;;) {
    __asm__ volatile("wfi");
  }
}
