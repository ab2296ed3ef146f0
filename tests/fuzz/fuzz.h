/* The fuzz targets' shared declarations: libFuzzer's entry point, and a scratch file that the
 * path-based readers (Criteo, safetensors) read the input from. */
#ifndef BLS_FUZZ_H
#define BLS_FUZZ_H

#include <stddef.h>
#include <stdint.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* Writes data to this process's scratch file (under /tmp, removed at exit); its path, or NULL
 * when it cannot be written. */
const char *fuzz_scratch(const uint8_t *data, size_t size);

/* An invariant broken: print it and abort (the fuzzer keeps the input). */
#define FUZZ_ASSERT(cond)                                                                      \
    do {                                                                                       \
        if (!(cond))                                                                           \
            fuzz_fail(__FILE__, __LINE__, #cond);                                              \
    } while (0)
void fuzz_fail(const char *file, int line, const char *what);

#endif
