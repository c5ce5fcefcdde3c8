/* GUPS (HPCC RandomAccess) timed natively: the loop of traces/src/gups.c over a table of
 * 2^LOG2 64-bit words in an anonymous mmap, 2 MiB aligned, advised MADV_NOHUGEPAGE ("4k") or
 * MADV_HUGEPAGE ("thp"), filled before timing. Prints one JSON line: the best (minimum) ns per
 * update over REPS timed runs of UPDATES updates each (after one untimed warm run; thread CPU
 * time, so time the process spent descheduled is not counted), and how many
 * bytes of the table the kernel backs with huge pages (AnonHugePages in /proc/self/smaps).
 *   usage: gups_timed LOG2_WORDS UPDATES REPS 4k|thp
 * MIT licence (simkit). */
#include "timed_common.h"
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define POLY 0x7ULL

/* the kernel of traces/src/gups.c, with the table mask a parameter */
__attribute__((noinline)) uint64_t kernel(uint64_t *table, uint64_t mask, uint64_t updates,
                                          uint64_t ran)
{
    for (uint64_t i = 0; i < updates; i++) {
        ran = (ran << 1) ^ ((int64_t)ran < 0 ? POLY : 0);
        table[ran & mask] ^= ran;
    }
    return ran;
}

int main(int argc, char **argv)
{
    if (argc != 5) {
        fprintf(stderr, "usage: gups_timed LOG2_WORDS UPDATES REPS 4k|thp\n");
        return 2;
    }
    int log2 = atoi(argv[1]);
    uint64_t updates = strtoull(argv[2], 0, 10);
    int reps = atoi(argv[3]);
    int thp = strcmp(argv[4], "thp") == 0;
    if (log2 < 3 || log2 > 36 || updates == 0 || reps < 1 || (!thp && strcmp(argv[4], "4k"))) {
        fprintf(stderr, "gups_timed: bad arguments\n");
        return 2;
    }
    size_t bytes = (size_t)8 << log2;
    void *raw;
    size_t raw_bytes;
    uint64_t *table = timed_table(bytes, thp, &raw, &raw_bytes);
    if (!table) {
        perror("gups_timed: mmap");
        return 1;
    }
    uint64_t mask = ((uint64_t)1 << log2) - 1;
    for (uint64_t i = 0; i <= mask; i++)
        table[i] = i;
    uint64_t ran = kernel(table, mask, updates, 0x2545F4914F6CDD1DULL);
    double best = 1e300;
    for (int r = 0; r < reps; r++) {
        double t0 = now_ns();
        ran = kernel(table, mask, updates, ran);
        double dt = now_ns() - t0;
        if (dt < best)
            best = dt;
    }
    uint64_t sum = 0;
    for (uint64_t i = 0; i <= mask; i += 4099)
        sum += table[i];
    printf("{\"table_bytes\": %zu, \"updates\": %llu, \"reps\": %d, \"page_kind\": \"%s\", "
           "\"ns_per_update\": %.4f, \"thp_backed_bytes\": %lu, \"checksum\": \"%016llx\"}\n",
           bytes, (unsigned long long)updates, reps, thp ? "thp" : "4k", best / updates,
           huge_backed((uintptr_t)table, (uintptr_t)table + bytes),
           (unsigned long long)(sum ^ ran));
    munmap(raw, raw_bytes);
    return 0;
}
