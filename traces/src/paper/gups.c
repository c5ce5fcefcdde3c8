/* GUPS (HPCC RandomAccess) at a paper-regime footprint: read-modify-write updates
 *   table[ran & (words - 1)] ^= ran
 * at HPCC's LFSR sequence (ran = ran << 1 ^ (ran < 0 ? 7 : 0)) over a table of 2^k 64-bit
 * words (argument 1: log2 words, default 20 = 8 MiB; 29 = 4 GiB), 4 updates per word.
 * The index is computed, not loaded: records have no dependence flag (op MODIFY).
 * Tracing build: -DSIMKIT_TRACE (see sktrace.h).  MIT licence (simkit). */
#include "sktrace.h"

#define POLY 0x7ULL

__attribute__((noinline)) void kernel(uint64_t *table, uint64_t words, uint64_t updates)
{
    uint64_t ran = 0x2545F4914F6CDD1DULL;
    for (uint64_t i = 0; i < updates; i++) {
        ran = (ran << 1) ^ ((int64_t)ran < 0 ? POLY : 0);
        uint64_t *p = &table[ran & (words - 1)];
        SKT_RAND(p, SKT_MODIFY, 0);
        *p ^= ran;
    }
}

int main(int argc, char **argv)
{
    uint64_t log2w = skt_arg(argc, argv, 1, 20);
    if (log2w < 3 || log2w > 34) {
        fprintf(stderr, "gups: log2 words must be in 3..34\n");
        return 2;
    }
    uint64_t words = 1ULL << log2w;
    uint64_t updates = skt_arg(argc, argv, 2, 4 * words);
    uint64_t *table = skt_alloc(words * sizeof *table);
    for (uint64_t i = 0; i < words; i++)
        table[i] = i;
    SKT_BEGIN(argc, argv);
    kernel(table, words, updates);
    SKT_END();
    uint64_t sum = 0;
    for (uint64_t i = 0; i < words; i++)
        sum += table[i] * (i | 1);
    printf("gups words %llu updates %llu checksum %016llx\n", (unsigned long long)words,
           (unsigned long long)updates, (unsigned long long)sum);
    return 0;
}
