/* GraphBIG-like graph kernels on a generated RMAT (Kronecker) graph in CSR form:
 *   graph bfs SCALE DEGREE        top-down breadth-first search from the highest-degree vertex
 *   graph pagerank SCALE DEGREE [ITERS]   push PageRank iterations (damping 0.85)
 * V = 2^SCALE vertices, about V*DEGREE directed edges (defaults 16 and 8).
 *
 * The graph: RMAT with (a, b, c, d) = (0.57, 0.19, 0.19, 0.05), generated row by row: vertex
 * u's out-degree is its RMAT row marginal E * 0.76^(zeros of u) * 0.24^(ones of u) (rounded
 * with a random fraction), each out-edge's destination bits drawn from the RMAT column
 * distribution given u's row bits (P(col bit 1) = 0.19/0.76 after a row 0 bit, 0.05/0.24 after
 * a 1; four levels per table lookup, the conditional CDF quantised to 1/4096),
 * then every vertex id scrambled by multiplication with an odd constant mod V (a bijection, as
 * Graph500 scrambles), so hubs are spread over the id space.  Layout (sktrace.h, skt_alloc in
 * order): off[V+1] (u64), col[E] (u32), then dist[V] (i32) and queue[V] (u32) for BFS, or
 * rank[V] and next[V] (f32) for PageRank.
 *
 * Traced (-DSIMKIT_TRACE): BFS: queue reads and appends (sequential), off[u] (its address comes
 * from u, loaded from the queue: dependent), col[] of u's list (sequential; the first line
 * dependent, its position came from off[u]), dist[v] load and, when v is new, its store
 * (dependent: v was loaded from col).  PageRank: off[], rank[] (sequential), col[]
 * (sequential), next[v] += (read-modify-write, dependent), then the rank update sweep.
 * MIT licence (simkit). */
#include <math.h>
#include "sktrace.h"

#define SCRAMBLE 0x9E3779B97F4A7C15ULL       /* odd: x -> x*SCRAMBLE mod V is a bijection */

static uint64_t V, E, *off;
static uint32_t *col;

static uint64_t inverse_odd(uint64_t a)       /* a^-1 mod 2^64 (Newton) */
{
    uint64_t x = a;
    for (int i = 0; i < 6; i++)
        x *= 2 - a * x;
    return x;
}

static void build(unsigned scale, uint64_t degree)
{
    V = 1ULL << scale;
    uint64_t mask = V - 1, inv = inverse_odd(SCRAMBLE);
    double etarget = (double)V * (double)degree;
    double pw0[64], pw1[64];
    pw0[0] = pw1[0] = 1.0;
    for (unsigned i = 1; i <= scale; i++) {
        pw0[i] = pw0[i - 1] * 0.76;
        pw1[i] = pw1[i - 1] * 0.24;
    }
    off = skt_alloc((V + 1) * sizeof *off);
    uint64_t s = 0x853C49E6748FEA9BULL;
    off[0] = 0;
    for (uint64_t v = 0; v < V; v++) {          /* row v of the CSR is RMAT vertex u */
        uint64_t u = (v * inv) & mask;
        unsigned ones = (unsigned)__builtin_popcountll(u);
        double want = etarget * pw0[scale - ones] * pw1[ones];
        uint64_t d = (uint64_t)want;
        if ((double)(skt_rng(&s) >> 11) * 0x1p-53 < want - (double)d)
            d++;
        off[v + 1] = off[v] + d;
    }
    E = off[V];
    col = skt_alloc((E ? E : 1) * sizeof *col);
    /* column bits four levels at a time: pick[p][r] = the 4 column bits whose conditional
     * CDF (given the 4 row bits p) first exceeds r/4096 */
    static uint8_t pick[16][4096];
    for (unsigned p = 0; p < 16; p++) {
        double cdf = 0.0;
        unsigned r = 0;
        for (unsigned c = 0; c < 16; c++) {
            double pr = 1.0;
            for (unsigned l = 0; l < 4; l++) {
                double q = (p >> l) & 1 ? 0.05 / 0.24 : 0.19 / 0.76;
                pr *= (c >> l) & 1 ? q : 1.0 - q;
            }
            cdf += pr;
            for (; r < 4096 && (r + 0.5) / 4096.0 < cdf; r++)
                pick[p][r] = (uint8_t)c;
        }
        for (; r < 4096; r++)
            pick[p][r] = 15;
    }
    for (uint64_t v = 0; v < V; v++) {
        uint64_t u = (v * inv) & mask;
        for (uint64_t j = off[v]; j < off[v + 1]; j++) {
            uint64_t dst = 0, r = 0;
            for (unsigned lvl = 0, k = 0; lvl < scale; lvl += 4, k++) {
                if (k % 5 == 0)
                    r = skt_rng(&s);
                dst |= (uint64_t)pick[(u >> lvl) & 15][r & 4095] << lvl;
                r >>= 12;
            }
            col[j] = (uint32_t)(((dst & mask) * SCRAMBLE) & mask);
        }
    }
}

__attribute__((noinline)) uint64_t kernel_bfs(int32_t *dist, uint32_t *queue, uint32_t src)
{
    SKT_STREAM(qread); SKT_STREAM(qwrite); SKT_STREAM(cols);
    uint64_t head = 0, tail = 1, level_end = 1;
    int32_t level = 0;
    dist[src] = 0;
    queue[0] = src;
    while (head < tail) {
        if (head == level_end) {
            level++;
            level_end = tail;
        }
        SKT_SEQ(qread, &queue[head], SKT_LOAD);
        uint32_t u = queue[head++];
        SKT_RAND(&off[u], SKT_LOAD, 1);
        uint64_t b = off[u], e = off[u + 1];
        if (((uint64_t)&off[u + 1] >> 6) != ((uint64_t)&off[u] >> 6))
            SKT_RAND(&off[u + 1], SKT_LOAD, 1);
        for (uint64_t j = b; j < e; j++) {
            SKT_SEQD(cols, &col[j], SKT_LOAD, j == b);
            uint32_t v = col[j];
            SKT_RAND(&dist[v], SKT_LOAD, 1);
            if (dist[v] < 0) {
                SKT_RAND(&dist[v], SKT_STORE, 1);
                dist[v] = level + 1;
                SKT_SEQ(qwrite, &queue[tail], SKT_STORE);
                queue[tail++] = v;
            }
        }
    }
    return tail;
}

__attribute__((noinline)) void kernel_pagerank(float *rank, float *next, unsigned iters)
{
    for (unsigned it = 0; it < iters; it++) {
        SKT_STREAM(offs); SKT_STREAM(ranks); SKT_STREAM(cols);
        for (uint64_t u = 0; u < V; u++) {
            SKT_SEQ(offs, &off[u + 1], SKT_LOAD);
            SKT_SEQ(ranks, &rank[u], SKT_LOAD);
            uint64_t b = off[u], e = off[u + 1];
            if (b == e)
                continue;
            float c = rank[u] / (float)(e - b);
            for (uint64_t j = b; j < e; j++) {
                SKT_SEQ(cols, &col[j], SKT_LOAD);
                uint32_t v = col[j];
                SKT_RAND(&next[v], SKT_MODIFY, 1);
                next[v] += c;
            }
        }
        SKT_STREAM(nx); SKT_STREAM(rk);
        float base = 0.15f / (float)V;
        for (uint64_t v = 0; v < V; v++) {
            SKT_SEQ(nx, &next[v], SKT_MODIFY);
            SKT_SEQ(rk, &rank[v], SKT_STORE);
            rank[v] = base + 0.85f * next[v];
            next[v] = 0.0f;
        }
    }
}

int main(int argc, char **argv)
{
    int pagerank = argc > 1 && !strcmp(argv[1], "pagerank");
    if (argc < 2 || (!pagerank && strcmp(argv[1], "bfs"))) {
        fprintf(stderr, "usage: graph bfs|pagerank [SCALE [DEGREE [ITERS]]]\n");
        return 2;
    }
    uint64_t scale = skt_arg(argc, argv, 2, 16), degree = skt_arg(argc, argv, 3, 8);
    uint64_t iters = skt_arg(argc, argv, 4, 2);
    if (scale < 2 || scale > 31 || degree < 1 || degree > 1000) {
        fprintf(stderr, "graph: SCALE must be in 2..31 and DEGREE in 1..1000\n");
        return 2;
    }
    build((unsigned)scale, degree);
    if (!pagerank) {
        int32_t *dist = skt_alloc(V * sizeof *dist);
        uint32_t *queue = skt_alloc(V * sizeof *queue);
        memset(dist, 0xff, V * sizeof *dist);
        uint32_t src = (uint32_t)((0 * SCRAMBLE) & (V - 1));   /* RMAT vertex 0: the hub */
        SKT_BEGIN(argc, argv);
        uint64_t reached = kernel_bfs(dist, queue, src);
        SKT_END();
        uint64_t sum = 0;
        for (uint64_t v = 0; v < V; v++)
            sum += (uint64_t)(dist[v] + 1) * (v | 1);
        printf("graph bfs scale %llu edges %llu reached %llu checksum %llu\n",
               (unsigned long long)scale, (unsigned long long)E, (unsigned long long)reached,
               (unsigned long long)sum);
    } else {
        float *rank = skt_alloc(V * sizeof *rank), *next = skt_alloc(V * sizeof *next);
        for (uint64_t v = 0; v < V; v++)
            rank[v] = 1.0f / (float)V;
        SKT_BEGIN(argc, argv);
        kernel_pagerank(rank, next, (unsigned)iters);
        SKT_END();
        double sum = 0;
        for (uint64_t v = 0; v < V; v++)
            sum += rank[v] * (double)((v % 7) + 1);
        printf("graph pagerank scale %llu edges %llu iters %llu checksum %.9g\n",
               (unsigned long long)scale, (unsigned long long)E, (unsigned long long)iters, sum);
    }
    return 0;
}
