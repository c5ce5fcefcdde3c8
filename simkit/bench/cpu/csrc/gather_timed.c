/* An embedding-table gather timed natively (the sparse lookup of traces/src/embedding.c: each
 * lookup adds one row of the table into an accumulator): rows of 32 floats (128 B, two cache
 * lines, 128 B aligned) at LFSR-random row indices (the generator of traces/src/gups.c, so the
 * rows are uniform over the table), over a table of 2^LOG2 bytes in an anonymous mmap, 2 MiB
 * aligned, advised MADV_NOHUGEPAGE ("4k") or MADV_HUGEPAGE ("thp"), filled before timing.
 * Lookups are independent (the index does not come from a load). Prints one JSON line: the best
 * (minimum) ns per lookup over REPS timed runs of LOOKUPS lookups each (after one untimed warm
 * run; thread CPU time), and how many bytes of the table the kernel backs with huge pages.
 *   usage: gather_timed LOG2_BYTES LOOKUPS REPS 4k|thp
 * The row add uses GCC vector types (four lanes of float): the loop body is straight-line, so
 * simkit counts its instructions in the disassembly. MIT licence (simkit). */
#include "timed_common.h"
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define POLY 0x7ULL
#define ROW 128                                  /* bytes: 32 floats, two 64 B lines */

typedef float v4 __attribute__((vector_size(16)));

__attribute__((noinline)) uint64_t kernel(const v4 *table, uint64_t row_mask, uint64_t lookups,
                                          uint64_t ran, v4 *out)
{
    v4 a0 = {0}, a1 = {0}, a2 = {0}, a3 = {0}, a4 = {0}, a5 = {0}, a6 = {0}, a7 = {0};
    for (uint64_t i = 0; i < lookups; i++) {
        ran = (ran << 1) ^ ((int64_t)ran < 0 ? POLY : 0);
        const v4 *r = table + (ran & row_mask) * (ROW / sizeof(v4));
        a0 += r[0]; a1 += r[1]; a2 += r[2]; a3 += r[3];
        a4 += r[4]; a5 += r[5]; a6 += r[6]; a7 += r[7];
    }
    out[0] = a0 + a1 + a2 + a3 + a4 + a5 + a6 + a7;
    return ran;
}

int main(int argc, char **argv)
{
    if (argc != 5) {
        fprintf(stderr, "usage: gather_timed LOG2_BYTES LOOKUPS REPS 4k|thp\n");
        return 2;
    }
    int log2 = atoi(argv[1]);
    uint64_t lookups = strtoull(argv[2], 0, 10);
    int reps = atoi(argv[3]);
    int thp = strcmp(argv[4], "thp") == 0;
    if (log2 < 8 || log2 > 39 || lookups == 0 || reps < 1 || (!thp && strcmp(argv[4], "4k"))) {
        fprintf(stderr, "gather_timed: bad arguments\n");
        return 2;
    }
    size_t bytes = (size_t)1 << log2;
    void *raw;
    size_t raw_bytes;
    float *table = timed_table(bytes, thp, &raw, &raw_bytes);
    if (!table) {
        perror("gather_timed: mmap");
        return 1;
    }
    for (size_t i = 0; i < bytes / sizeof(float); i++)
        table[i] = (float)(i & 1023) * 0.001f;
    uint64_t row_mask = bytes / ROW - 1;
    v4 out[1];
    uint64_t ran = kernel((const v4 *)table, row_mask, lookups, 0x2545F4914F6CDD1DULL, out);
    double best = 1e300;
    for (int r = 0; r < reps; r++) {
        double t0 = now_ns();
        ran = kernel((const v4 *)table, row_mask, lookups, ran, out);
        double dt = now_ns() - t0;
        if (dt < best)
            best = dt;
    }
    printf("{\"table_bytes\": %zu, \"updates\": %llu, \"reps\": %d, \"page_kind\": \"%s\", "
           "\"ns_per_update\": %.4f, \"thp_backed_bytes\": %lu, \"checksum\": \"%08x\"}\n",
           bytes, (unsigned long long)lookups, reps, thp ? "thp" : "4k", best / lookups,
           huge_backed((uintptr_t)table, (uintptr_t)table + bytes),
           (unsigned)(out[0][0] * 1000.0f) ^ (unsigned)ran);
    munmap(raw, raw_bytes);
    return 0;
}
