/*
 * splitmix64.h: the project's one pseudo-random generator, SplitMix64 (Steele, Lea and Flood,
 * "Fast splittable pseudorandom number generators", 2014), header-only so that the engine
 * (weights, synthetic data) and the harness (delays, arrival schedules) share one definition
 * without depending on each other.  torch_bls/dlrm_serving.py carries the Python copy; a test
 * holds the two equal.
 *
 * Counter-based use: splitmix64_mix(f(seed, stream, i)) makes value i of a stream a function of
 * its coordinates alone, so any process can produce any part of it and agree with the others.
 */
#ifndef SPLITMIX64_H
#define SPLITMIX64_H

#include <stdint.h>

#define SPLITMIX64_GAMMA 0x9e3779b97f4a7c15ULL

/* The finaliser: a bijective mix of all 64 bits. */
static inline uint64_t splitmix64_mix(uint64_t x)
{
    x ^= x >> 30;
    x *= 0xbf58476d1ce4e5b9ULL;
    x ^= x >> 27;
    x *= 0x94d049bb133111ebULL;
    return x ^ (x >> 31);
}

/* The sequence: advances *state by the golden gamma and mixes it. */
static inline uint64_t splitmix64_next(uint64_t *state)
{
    *state += SPLITMIX64_GAMMA;
    return splitmix64_mix(*state);
}

/* The top 53 bits of h as a double in (0, 1): never 0, so log() of it is finite. */
static inline double splitmix64_unit(uint64_t h)
{
    return ((double)(h >> 11) + 0.5) * (1.0 / 9007199254740992.0);
}

#endif
