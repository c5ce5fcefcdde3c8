/* Embedding-table gather (the sparse part of a recommender or an LLM token embedding):
 * 256 bags of 32 lookups each into a 16 MiB table of 16384 rows x 256 floats, each bag summed
 * into one output row. Row popularity is Zipf-like: rank r = floor(ROWS^u) - 1 for uniform u, so
 * P(r) ~ 1/(r+1); ranks are scattered over the table by an odd multiplier (a bijection mod 2^14).
 * The traced region is kernel(); the table and the index list are made before it.
 * Deterministic: fixed seed, prints a checksum of the outputs. MIT licence (simkit). */
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

#define LOG2_ROWS 14
#define ROWS (1 << LOG2_ROWS)
#define DIM 256
#define BAGS 256
#define POOL 32

static uint64_t rng_state = 0xD1B54A32D192ED03ULL;

static uint64_t next(void)                  /* xorshift64* */
{
    rng_state ^= rng_state >> 12;
    rng_state ^= rng_state << 25;
    rng_state ^= rng_state >> 27;
    return rng_state * 0x2545F4914F6CDD1DULL;
}

__attribute__((noinline)) void kernel(const float *table, const int32_t *index, float *out)
{
    for (int b = 0; b < BAGS; b++) {
        float *o = out + (size_t)b * DIM;
        for (int d = 0; d < DIM; d++)
            o[d] = 0.0f;
        for (int p = 0; p < POOL; p++) {
            const float *r = table + (size_t)index[b * POOL + p] * DIM;
            for (int d = 0; d < DIM; d++)
                o[d] += r[d];
        }
    }
}

int main(void)
{
    float *table = malloc((size_t)ROWS * DIM * sizeof *table);
    int32_t *index = malloc(BAGS * POOL * sizeof *index);
    float *out = malloc(BAGS * DIM * sizeof *out);
    if (!table || !index || !out)
        return 1;
    float base[DIM];
    for (int d = 0; d < DIM; d++)
        base[d] = (float)(d % 17) * 0.01f;
    for (int r = 0; r < ROWS; r++) {         /* cheap to fill: this part is not traced */
        float s = (float)(r & 1023) * 0.001f;
        for (int d = 0; d < DIM; d++)
            table[(size_t)r * DIM + d] = base[d] + s;
    }
    for (int i = 0; i < BAGS * POOL; i++) {
        double u = (double)(next() >> 11) * 0x1.0p-53;
        uint32_t rank = (uint32_t)pow((double)ROWS, u) - 1;
        index[i] = (int32_t)((rank * 0x9E3779B1u) & (ROWS - 1));
    }
    kernel(table, index, out);
    double sum = 0.0;
    for (int i = 0; i < BAGS * DIM; i++)
        sum += out[i] * ((i % 7) + 1);
    printf("embedding checksum %.4f\n", sum);
    free(out);
    free(index);
    free(table);
    return 0;
}
