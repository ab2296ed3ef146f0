/* Counting checks for the engine's self-checking tests: print "N passed, N failed" at the end. */
#ifndef BLS_ENGINE_CHECK_H
#define BLS_ENGINE_CHECK_H

#include <stdio.h>

static int passed, failed;

#define CHECK(cond, ...)                                                                         \
    do {                                                                                         \
        if (cond) {                                                                              \
            passed++;                                                                            \
        } else {                                                                                 \
            failed++;                                                                            \
            fprintf(stderr, "FAIL %s:%d: ", __FILE__, __LINE__);                                 \
            fprintf(stderr, __VA_ARGS__);                                                        \
            fprintf(stderr, "\n");                                                               \
        }                                                                                        \
    } while (0)

#endif
