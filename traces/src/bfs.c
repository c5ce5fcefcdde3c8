/* Breadth-first search over a seeded random directed graph in CSR form: 2^17 vertices,
 * out-degree uniform in 1..15 (mean 8), targets uniform. row[] is 0.5 MiB, col[] about 4 MiB.
 * The traced region is kernel(), the traversal from vertex 0; the graph is built before it.
 * Deterministic: fixed seed, prints the number of vertices reached and a checksum of depths.
 * MIT licence (simkit). */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

#define LOG2_N 17
#define N (1 << LOG2_N)

static uint64_t rng_state = 0x9E3779B97F4A7C15ULL;

static uint64_t next(void)                  /* xorshift64* */
{
    rng_state ^= rng_state >> 12;
    rng_state ^= rng_state << 25;
    rng_state ^= rng_state >> 27;
    return rng_state * 0x2545F4914F6CDD1DULL;
}

__attribute__((noinline)) int32_t kernel(const int32_t *row, const int32_t *col, int32_t *depth,
                                         int32_t *queue)
{
    int32_t head = 0, tail = 0;
    queue[tail++] = 0;
    depth[0] = 0;
    while (head < tail) {
        int32_t u = queue[head++];
        for (int32_t e = row[u]; e < row[u + 1]; e++) {
            int32_t v = col[e];
            if (depth[v] < 0) {
                depth[v] = depth[u] + 1;
                queue[tail++] = v;
            }
        }
    }
    return tail;
}

int main(void)
{
    int32_t *row = malloc((N + 1) * sizeof *row);
    int32_t *depth = malloc(N * sizeof *depth);
    int32_t *queue = malloc(N * sizeof *queue);
    if (!row || !depth || !queue)
        return 1;
    row[0] = 0;
    for (int32_t v = 0; v < N; v++)
        row[v + 1] = row[v] + 1 + (int32_t)(next() % 15);
    int32_t *col = malloc((size_t)row[N] * sizeof *col);
    if (!col)
        return 1;
    for (int32_t e = 0; e < row[N]; e++)
        col[e] = (int32_t)(next() >> 40) & (N - 1);
    for (int32_t v = 0; v < N; v++)
        depth[v] = -1;
    int32_t reached = kernel(row, col, depth, queue);
    uint64_t sum = 0;
    for (int32_t v = 0; v < N; v++)
        sum += (uint64_t)(depth[v] + 1) * (uint64_t)(v + 1);
    printf("bfs edges %d reached %d checksum %llu\n", row[N], reached, (unsigned long long)sum);
    free(col);
    free(queue);
    free(depth);
    free(row);
    return 0;
}
