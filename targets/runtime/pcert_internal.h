/* pcert_internal.h - what pcert.c shares with pcert_agent.c; not for test procedures. */
#ifndef PCERT_INTERNAL_H
#define PCERT_INTERNAL_H

#include <stddef.h>
#include <stdint.h>

/* The run's nonce (16 hex digits), valid once main() has read PCERT_NONCE. */
const char *pcert_run_nonce(void);
/* CRC-32, zlib polynomial, as in every record. */
uint32_t pcert_crc32(const void *p, size_t n);
/* Whether a byte stands for itself in a record value (else it is written %XX). */
int pcert_plain_byte(unsigned c);

/* Agent mode (docs/agent.md), defined in pcert_agent.c. pcert_agent_open readies the channel
 * named by PCERT_AGENT before the start record is printed (so a host that has seen the start
 * record may send at once); 0, or -1 with the reason in why. pcert_agent_serve answers
 * requests until quit or end of input; returns the number of requests answered. A build of
 * pcert.c without pcert_agent.c has weak stand-ins that refuse agent mode. */
int pcert_agent_open(const char *channel, char *why, size_t size);
long pcert_agent_serve(void);

/* Waiting for the run's parameters (PCERT_PARAMS, docs/protocol.md), defined in pcert_agent.c
 * beside the agent channel it shares code with. pcert_params_open opens the channel (a device
 * in raw mode, or fd:N) before the ready record is printed; the descriptor, or -1 with the
 * reason in why. pcert_params_read reads one PCERTP line from it, consuming nothing after its
 * \n, checks all of it and only then sets each NAME=value in the environment; 0, or -1 with
 * the reason. The weak stand-ins of pcert.c refuse. */
int pcert_params_open(const char *channel, char *why, size_t size);
int pcert_params_read(int fd, char *why, size_t size);

#endif
