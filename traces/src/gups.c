/* GUPS-style random access (HPCC RandomAccess): read-modify-write updates at pseudo-random
 * indices of an 8 MiB table of 64-bit words, driven by HPCC's LFSR (x <<= 1, ^ 7 on carry).
 * The traced region is the function kernel(); the table is filled before it.
 * Deterministic: fixed seed, prints a checksum of the table.  MIT licence (simkit). */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

#define LOG2_TABLE 20                       /* 2^20 words = 8 MiB */
#define TABLE_WORDS (1UL << LOG2_TABLE)
#define UPDATES (4 * TABLE_WORDS)           /* HPCC: four updates per table word */
#define POLY 0x7ULL

__attribute__((noinline)) void kernel(uint64_t *table, uint64_t updates)
{
    uint64_t ran = 0x2545F4914F6CDD1DULL;
    for (uint64_t i = 0; i < updates; i++) {
        ran = (ran << 1) ^ ((int64_t)ran < 0 ? POLY : 0);
        table[ran & (TABLE_WORDS - 1)] ^= ran;
    }
}

int main(void)
{
    uint64_t *table = malloc(TABLE_WORDS * sizeof *table);
    if (!table)
        return 1;
    for (uint64_t i = 0; i < TABLE_WORDS; i++)
        table[i] = i;
    kernel(table, UPDATES);
    uint64_t sum = 0;
    for (uint64_t i = 0; i < TABLE_WORDS; i++)
        sum += table[i] * (i | 1);
    printf("gups checksum %016llx\n", (unsigned long long)sum);
    free(table);
    return 0;
}
