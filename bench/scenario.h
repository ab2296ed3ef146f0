/*
 * Injected delays, the scenarios both bls-bench and bls-dlrm run under.  A delay is a function
 * of (seed, process, iteration) only, so every mode or driver of one run sees the same trace.
 *   none                 no delay
 *   exp:MEAN_US          exponential, mean MEAN_US, independent per process and iteration
 *   hiccup:PROB:US       US with probability PROB, else nothing
 *   straggler:RANK:US    process RANK is late by US every iteration (a persistently slower one)
 */
#ifndef BLS_SCENARIO_H
#define BLS_SCENARIO_H

#include <stddef.h>
#include <stdint.h>

enum { BLS_DELAY_NONE, BLS_DELAY_EXP, BLS_DELAY_HICCUP, BLS_DELAY_STRAGGLER };

typedef struct {
    int kind;
    double a, b; /* exp: mean; hiccup: probability, us; straggler: rank, us */
    uint64_t seed;
} bls_delay_t;

/* Parses SPEC (above) into *d, keeping d->seed.  Returns 0, or -1 with a message in err. */
int bls_delay_parse(const char *spec, bls_delay_t *d, char *err, size_t errlen);

/* Microseconds process p waits in iteration k. */
double bls_delay_us(const bls_delay_t *d, int p, long k);

/* Spends us microseconds: asleep, or spinning on the CPU when busy. */
void bls_spend_us(double us, int busy);

/* The spec back as text ("exp:1000"). */
void bls_delay_format(const bls_delay_t *d, char *buf, size_t len);

#endif
