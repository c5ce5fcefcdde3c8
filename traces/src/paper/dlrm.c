/* DLRM-like embedding-bag gathers (the SparseLengthsSum of a recommender's sparse features):
 *   dlrm TABLES ROWS DIM BAGS POOLING     defaults 8 65536 64 4096 32
 * TABLES embedding tables of ROWS x DIM floats (DIM 64: 256-byte rows, 4 lines); for each of
 * BAGS samples and each table, POOLING row indices (power-law popular: row = ROWS * u^3 for a
 * uniform u, scrambled by an odd multiplier mod ROWS when ROWS is a power of two) are read from
 * the index array and the rows summed into the sample's output vector.
 * Layout (sktrace.h, in this order): the tables (one mapping each), the index array
 * (BAGS x TABLES x POOLING uint32, filled before the kernel), the output (BAGS x TABLES x DIM
 * floats).  Traced: index reads (sequential), every line of every gathered row (dependent:
 * the row number was loaded from the index array), output stores (sequential).
 * MIT licence (simkit). */
#include "sktrace.h"

__attribute__((noinline)) void kernel(float *const *tables, const uint32_t *idx, float *out,
                                      uint64_t n_tab, uint64_t dim, uint64_t bags,
                                      uint64_t pool)
{
    SKT_STREAM(ir); SKT_STREAM(ow);
    for (uint64_t b = 0; b < bags; b++) {
        for (uint64_t t = 0; t < n_tab; t++) {
            float *o = &out[(b * n_tab + t) * dim];
            float acc[256];
            for (uint64_t d = 0; d < dim; d++)
                acc[d] = 0.0f;
            const uint32_t *ix = &idx[(b * n_tab + t) * pool];
            for (uint64_t p = 0; p < pool; p++) {
                SKT_SEQ(ir, &ix[p], SKT_LOAD);
                const float *row = &tables[t][(uint64_t)ix[p] * dim];
                for (uint64_t d = 0; d < dim; d += 16)   /* each line from ix[p]: the */
                    SKT_RAND(&row[d], SKT_LOAD, d == 0);  /* first follows that load  */
                for (uint64_t d = 0; d < dim; d++)
                    acc[d] += row[d];
            }
            for (uint64_t d = 0; d < dim; d++) {
                SKT_SEQ(ow, &o[d], SKT_STORE);
                o[d] = acc[d];
            }
        }
    }
}

int main(int argc, char **argv)
{
    uint64_t n_tab = skt_arg(argc, argv, 1, 8), rows = skt_arg(argc, argv, 2, 65536);
    uint64_t dim = skt_arg(argc, argv, 3, 64), bags = skt_arg(argc, argv, 4, 4096);
    uint64_t pool = skt_arg(argc, argv, 5, 32);
    if (n_tab < 1 || n_tab > 1024 || rows < 1 || dim < 16 || dim > 256 || dim % 16
        || pool < 1 || bags < 1) {
        fprintf(stderr, "dlrm: TABLES in 1..1024, DIM a multiple of 16 in 16..256, "
                        "ROWS, BAGS, POOLING >= 1\n");
        return 2;
    }
    float **tables = calloc(n_tab, sizeof *tables);
    uint64_t s = 0x853C49E6748FEA9BULL;
    for (uint64_t t = 0; t < n_tab; t++) {
        tables[t] = skt_alloc(rows * dim * sizeof **tables);
        for (uint64_t i = 0; i < rows * dim; i++)
            tables[t][i] = (float)((i * 2654435761ULL + t) & 1023) * (1.0f / 1024);
    }
    uint64_t n_idx = bags * n_tab * pool;
    uint32_t *idx = skt_alloc(n_idx * sizeof *idx);
    int pow2 = (rows & (rows - 1)) == 0;
    for (uint64_t i = 0; i < n_idx; i++) {
        double u = (double)(skt_rng(&s) >> 11) * 0x1p-53;
        uint64_t r = (uint64_t)((double)rows * u * u * u);
        if (r >= rows)
            r = rows - 1;
        idx[i] = (uint32_t)(pow2 ? (r * 0x9E3779B97F4A7C15ULL) & (rows - 1) : r);
    }
    float *out = skt_alloc(bags * n_tab * dim * sizeof *out);
    SKT_BEGIN(argc, argv);
    kernel(tables, idx, out, n_tab, dim, bags, pool);
    SKT_END();
    double sum = 0.0;
    for (uint64_t i = 0; i < bags * n_tab * dim; i++)
        sum += out[i] * (double)((i % 5) + 1);
    printf("dlrm tables %llu rows %llu dim %llu bags %llu pooling %llu checksum %.9g\n",
           (unsigned long long)n_tab, (unsigned long long)rows, (unsigned long long)dim,
           (unsigned long long)bags, (unsigned long long)pool, sum);
    free(tables);
    return 0;
}
