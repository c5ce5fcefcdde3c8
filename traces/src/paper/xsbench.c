/* XSBench-like macroscopic cross-section lookups (the unionized energy grid method of
 * Tramm et al.'s XSBench, event-based):
 *   xsbench NUCLIDES GRIDPOINTS LOOKUPS      defaults 68 2000 (XSBench "small" has 68
 *                                            nuclides x 11303 points; "large" 355 x 11303)
 * Data (sktrace.h layout, in this order): the nuclide grids (NUCLIDES x GRIDPOINTS points of 6
 * doubles: energy, total, elastic, absorption, fission, nu-fission = 48 bytes), the unionized
 * energy grid (NUCLIDES*GRIDPOINTS doubles, sorted), the index grid (one int32 per union point
 * and nuclide: for each nuclide the last of its points at or below that energy), 12 materials
 * (XSBench's nuclide counts; fuel has min(321, NUCLIDES) nuclides) as nuclide-id lists and
 * densities.  Per lookup: a random energy and material (XSBench's material probabilities), a
 * binary search of the union grid (each probe's address chosen by the previous probe's loaded
 * value: dependent), then for each nuclide of the material: its index-grid entry (dependent on
 * the search), its two bracketing grid points (dependent on the index), and the material's
 * nuclide list and density (sequential).  MIT licence (simkit). */
#include "sktrace.h"

typedef struct { double energy, total, elastic, absorb, fission, nufission; } point;

static const int mat_counts[12] = {321, 5, 4, 4, 27, 21, 21, 21, 21, 21, 9, 9};
static const double mat_prob[12] = {0.140, 0.052, 0.275, 0.134, 0.154, 0.064, 0.066, 0.055,
                                    0.008, 0.015, 0.025, 0.013};

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

__attribute__((noinline)) double kernel(const point *grids, const double *uni,
                                        const int32_t *index, int32_t *const *mats,
                                        double *const *dens, const int *counts,
                                        uint64_t n_nuc, uint64_t n_gp, uint64_t lookups)
{
    uint64_t n_uni = n_nuc * n_gp, s = 0x2545F4914F6CDD1DULL;
    double acc = 0.0;
    for (uint64_t l = 0; l < lookups; l++) {
        double e = (double)(skt_rng(&s) >> 11) * 0x1p-53;
        double pick = (double)(skt_rng(&s) >> 11) * 0x1p-53, cum = 0.0;
        int m = 11;
        for (int k = 0; k < 12; k++) {
            cum += mat_prob[k];
            if (pick < cum) {
                m = k;
                break;
            }
        }
        uint64_t lo = 0, hi = n_uni - 1;                 /* last union point <= e */
        while (hi - lo > 1) {
            uint64_t mid = lo + (hi - lo) / 2;
            SKT_RAND(&uni[mid], SKT_LOAD, 1);
            if (uni[mid] > e)
                hi = mid;
            else
                lo = mid;
        }
        SKT_STREAM(ml); SKT_STREAM(dl);
        double xs[5] = {0, 0, 0, 0, 0};
        for (int k = 0; k < counts[m]; k++) {
            SKT_SEQ(ml, &mats[m][k], SKT_LOAD);
            SKT_SEQ(dl, &dens[m][k], SKT_LOAD);
            int32_t nuc = mats[m][k];
            const int32_t *ip = &index[lo * n_nuc + (uint64_t)nuc];
            SKT_RAND(ip, SKT_LOAD, 1);
            int64_t i = *ip;
            if (i >= (int64_t)n_gp - 1)
                i = (int64_t)n_gp - 2;
            if (i < 0)
                i = 0;
            const point *lo_p = &grids[(uint64_t)nuc * n_gp + (uint64_t)i], *hi_p = lo_p + 1;
            SKT_RAND(lo_p, SKT_LOAD, 1);
            if (((uint64_t)lo_p >> 6) != ((uint64_t)&lo_p->nufission >> 6))
                SKT_RAND(&lo_p->nufission, SKT_LOAD, 1);
            if (((uint64_t)hi_p >> 6) != ((uint64_t)&lo_p->nufission >> 6))
                SKT_RAND(hi_p, SKT_LOAD, 1);
            if (((uint64_t)&hi_p->nufission >> 6) != ((uint64_t)hi_p >> 6))
                SKT_RAND(&hi_p->nufission, SKT_LOAD, 1);
            double f = (hi_p->energy - e) / (hi_p->energy - lo_p->energy);
            double d = dens[m][k];
            xs[0] += d * (hi_p->total - f * (hi_p->total - lo_p->total));
            xs[1] += d * (hi_p->elastic - f * (hi_p->elastic - lo_p->elastic));
            xs[2] += d * (hi_p->absorb - f * (hi_p->absorb - lo_p->absorb));
            xs[3] += d * (hi_p->fission - f * (hi_p->fission - lo_p->fission));
            xs[4] += d * (hi_p->nufission - f * (hi_p->nufission - lo_p->nufission));
        }
        acc += xs[0] + xs[1] + xs[2] + xs[3] + xs[4];
    }
    return acc;
}

int main(int argc, char **argv)
{
    uint64_t n_nuc = skt_arg(argc, argv, 1, 68), n_gp = skt_arg(argc, argv, 2, 2000);
    uint64_t lookups = skt_arg(argc, argv, 3, 100000);
    if (n_nuc < 2 || n_nuc > 4096 || n_gp < 4 || n_gp > (1ULL << 24)) {
        fprintf(stderr, "xsbench: NUCLIDES in 2..4096, GRIDPOINTS in 4..2^24\n");
        return 2;
    }
    uint64_t n_uni = n_nuc * n_gp, s = 0x853C49E6748FEA9BULL;
    point *grids = skt_alloc(n_uni * sizeof *grids);
    double *uni = skt_alloc(n_uni * sizeof *uni);
    int32_t *index = skt_alloc(n_uni * n_nuc * sizeof *index);
    for (uint64_t n = 0; n < n_nuc; n++) {        /* sorted energies in (0, 1): random gaps */
        double t = 0.0;
        point *g = &grids[n * n_gp];
        for (uint64_t i = 0; i < n_gp; i++) {
            t += 0.5 + (double)(skt_rng(&s) >> 11) * 0x1p-53;
            g[i].energy = t;
        }
        t += 0.5 + (double)(skt_rng(&s) >> 11) * 0x1p-53;
        for (uint64_t i = 0; i < n_gp; i++) {
            g[i].energy /= t;
            g[i].total = (double)(skt_rng(&s) >> 11) * 0x1p-53;
            g[i].elastic = (double)(skt_rng(&s) >> 11) * 0x1p-53;
            g[i].absorb = (double)(skt_rng(&s) >> 11) * 0x1p-53;
            g[i].fission = (double)(skt_rng(&s) >> 11) * 0x1p-53;
            g[i].nufission = (double)(skt_rng(&s) >> 11) * 0x1p-53;
            uni[n * n_gp + i] = g[i].energy;
        }
    }
    qsort(uni, n_uni, sizeof *uni, cmp_double);
    int64_t *cur = calloc(n_nuc, sizeof *cur);
    for (uint64_t n = 0; n < n_nuc; n++)
        cur[n] = -1;
    for (uint64_t u = 0; u < n_uni; u++) {        /* one sweep, as XSBench builds it */
        for (uint64_t n = 0; n < n_nuc; n++) {
            const point *g = &grids[n * n_gp];
            while (cur[n] + 1 < (int64_t)n_gp && g[cur[n] + 1].energy <= uni[u])
                cur[n]++;
            index[u * n_nuc + n] = (int32_t)cur[n];
        }
    }
    int32_t *mats[12];
    double *dens[12];
    int counts[12];
    for (int m = 0; m < 12; m++) {
        counts[m] = mat_counts[m] < (int)n_nuc ? mat_counts[m] : (int)n_nuc;
        mats[m] = skt_alloc((uint64_t)counts[m] * sizeof **mats);
        dens[m] = skt_alloc((uint64_t)counts[m] * sizeof **dens);
        for (int k = 0; k < counts[m]; k++) {   /* distinct nuclides: a random offset, stride 1 */
            mats[m][k] = (int32_t)(((uint64_t)k + (m == 0 ? 0 : skt_rng(&s) % n_nuc)) % n_nuc);
            dens[m][k] = (double)(skt_rng(&s) >> 11) * 0x1p-53;
        }
    }
    SKT_BEGIN(argc, argv);
    double acc = kernel(grids, uni, index, mats, dens, counts, n_nuc, n_gp, lookups);
    SKT_END();
    printf("xsbench nuclides %llu gridpoints %llu lookups %llu checksum %.9g\n",
           (unsigned long long)n_nuc, (unsigned long long)n_gp, (unsigned long long)lookups,
           acc);
    free(cur);
    return 0;
}
