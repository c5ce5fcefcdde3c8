/* simkit allocator cost microbenchmark: the CPU time (user + system,
 * CLOCK_PROCESS_CPUTIME_ID) of the operations the allocator models count, on this machine.
 * Each figure is the minimum over REPS batches (a busy machine only makes batches slower).
 *
 *   fault          first write to a page of a fresh anonymous mapping (kernel fault + zeroing)
 *   release_page   each resident page freed by munmap (beyond the call itself)
 *   mmap           mmap of one untouched anonymous page (PROT_READ|PROT_WRITE)
 *   munmap         munmap of one untouched page
 *   mremap         mremap of one untouched page to two (may move)
 *   mprotect       mprotect(PROT_READ|PROT_WRITE) of one page of a PROT_NONE reservation
 *   madvise        madvise(MADV_DONTNEED) of one untouched page (the call itself)
 *   brk            one sbrk(+4096) or sbrk(-4096) (untouched)
 *   line_<KiB>     a dependent load of one cache line, random order, working set of KiB
 *   memset_line    memset of one 64-byte line of a 4 KiB buffer in cache
 *   bitmap_word    one 64-bit word of a slot bitmap tested for a free bit (all full)
 * With argument "alloc" (run under LD_PRELOAD of a real allocator) it prints instead:
 *   alloc_pair_32  malloc(32) + free, LIFO pairs (the fast path)
 *   alloc_batch_64 malloc(64) x 4096 then free x 4096, per malloc + free
 * Output: one "name ns" pair per line. */
#define _GNU_SOURCE
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <time.h>
#include <unistd.h>

#define REPS 7
#define PG 4096

static double now_ns(void) {
    struct timespec t;
    clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &t);
    return t.tv_sec * 1e9 + t.tv_nsec;
}

static void put(const char *name, double ns) { printf("%s %.3f\n", name, ns); }
static volatile uint64_t sink;

static void faults_and_release(void) {
    const size_t n = 4096;                       /* 16 MiB */
    double best_f = 1e30, best_r = 1e30, best_u = 1e30;
    for (int r = 0; r < REPS; r++) {
        char *p = mmap(NULL, n * PG, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
        double t0 = now_ns();
        for (size_t i = 0; i < n; i++) p[i * PG] = 1;
        double t1 = now_ns();
        munmap(p, n * PG);
        double t2 = now_ns();
        /* the same munmap of an untouched mapping: the call without page frees */
        p = mmap(NULL, n * PG, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
        double t3 = now_ns();
        munmap(p, n * PG);
        double t4 = now_ns();
        if ((t1 - t0) / n < best_f) best_f = (t1 - t0) / n;
        if (t2 - t1 < best_r) best_r = t2 - t1;
        if (t4 - t3 < best_u) best_u = t4 - t3;
    }
    put("fault", best_f);
    put("release_page", (best_r - best_u) / n);
}

static void syscalls(void) {
    enum { N = 2000 };
    static void *ps[N];
    double bm = 1e30, bu = 1e30, bp = 1e30, ba = 1e30, bb = 1e30, br = 1e30;
    for (int r = 0; r < REPS; r++) {
        double t0 = now_ns();
        for (int i = 0; i < N; i++)
            ps[i] = mmap(NULL, PG, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
        double t1 = now_ns();
        for (int i = 0; i < N; i++) munmap(ps[i], PG);
        double t2 = now_ns();
        if ((t1 - t0) / N < bm) bm = (t1 - t0) / N;
        if ((t2 - t1) / N < bu) bu = (t2 - t1) / N;
        for (int i = 0; i < N; i++)
            ps[i] = mmap(NULL, PG, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
        t0 = now_ns();
        for (int i = 0; i < N; i++) ps[i] = mremap(ps[i], PG, 2 * PG, MREMAP_MAYMOVE);
        t1 = now_ns();
        for (int i = 0; i < N; i++) munmap(ps[i], 2 * PG);
        if ((t1 - t0) / N < br) br = (t1 - t0) / N;
        /* a PROT_NONE reservation whose pages are made usable one at a time (guard slabs
         * alternate, so every other page: no VMA merging into one growing region) */
        char *res = mmap(NULL, 2 * N * PG, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
        t0 = now_ns();
        for (int i = 0; i < N; i++) mprotect(res + 2 * i * PG, PG, PROT_READ | PROT_WRITE);
        t1 = now_ns();
        for (int i = 0; i < N; i++) madvise(res + 2 * i * PG, PG, MADV_DONTNEED);
        t2 = now_ns();
        munmap(res, 2 * N * PG);
        if ((t1 - t0) / N < bp) bp = (t1 - t0) / N;
        if ((t2 - t1) / N < ba) ba = (t2 - t1) / N;
        t0 = now_ns();
        for (int i = 0; i < N / 2; i++) { sbrk(PG); sbrk(-PG); }
        t1 = now_ns();
        if ((t1 - t0) / N < bb) bb = (t1 - t0) / N;
    }
    put("mmap", bm);
    put("munmap", bu);
    put("mremap", br);
    put("mprotect", bp);
    put("madvise", ba);
    put("brk", bb);
}

static uint64_t rng = 88172645463325252ULL;
static uint64_t xs(void) { rng ^= rng << 13; rng ^= rng >> 7; rng ^= rng << 17; return rng; }

static void lines(size_t kib) {
    size_t n = kib * 1024 / 64;
    uint64_t *a = aligned_alloc(64, n * 64);
    size_t *perm = malloc(n * sizeof *perm);
    for (size_t i = 0; i < n; i++) perm[i] = i;
    for (size_t i = n - 1; i > 0; i--) { size_t j = xs() % (i + 1); size_t t = perm[i]; perm[i] = perm[j]; perm[j] = t; }
    for (size_t i = 0; i < n; i++) a[perm[i] * 8] = perm[(i + 1) % n] * 8;
    size_t steps = 2000000, x = 0;
    for (size_t i = 0; i < n; i++) x = a[x];    /* warm */
    double best = 1e30;
    for (int r = 0; r < 3; r++) {
        double t0 = now_ns();
        for (size_t i = 0; i < steps; i++) x = a[x];
        double t1 = now_ns();
        if ((t1 - t0) / steps < best) best = (t1 - t0) / steps;
    }
    sink = x;
    char name[32];
    snprintf(name, sizeof name, "line_%zu", kib);
    put(name, best);
    free(perm);
    free(a);
}

static void memset_and_bitmap(void) {
    static unsigned char buf[PG] __attribute__((aligned(64)));
    double best = 1e30;
    for (int r = 0; r < REPS; r++) {
        double t0 = now_ns();
        for (int i = 0; i < 20000; i++) { memset(buf, i, PG); __asm__ volatile("" ::: "memory"); }
        double t1 = now_ns();
        if ((t1 - t0) / (20000.0 * PG / 64) < best) best = (t1 - t0) / (20000.0 * PG / 64);
    }
    put("memset_line", best);
    static uint64_t words[1024];
    for (int i = 0; i < 1024; i++) words[i] = ~0ULL;
    best = 1e30;
    for (int r = 0; r < REPS; r++) {
        uint64_t found = 0;
        double t0 = now_ns();
        for (int k = 0; k < 2000; k++) {
            __asm__ volatile("" ::: "memory");
            for (int i = 0; i < 1024; i++)
                if (~words[i]) { found += i * 64 + __builtin_ctzll(~words[i]); break; }
        }
        double t1 = now_ns();
        sink = found;
        if ((t1 - t0) / (2000.0 * 1024) < best) best = (t1 - t0) / (2000.0 * 1024);
    }
    put("bitmap_word", best);
}

static void alloc_fast_paths(void) {
    enum { N = 4096 };
    static void *ps[N];
    double best = 1e30;
    for (int r = 0; r < REPS; r++) {
        double t0 = now_ns();
        for (int i = 0; i < 200000; i++) { void *p = malloc(32); *(volatile char *)p = 1; free(p); }
        double t1 = now_ns();
        if ((t1 - t0) / 200000 < best) best = (t1 - t0) / 200000;
    }
    put("alloc_pair_32", best);
    best = 1e30;
    for (int r = 0; r < REPS; r++) {
        double t0 = now_ns();
        for (int k = 0; k < 20; k++) {
            for (int i = 0; i < N; i++) { ps[i] = malloc(64); *(volatile char *)ps[i] = 1; }
            for (int i = 0; i < N; i++) free(ps[i]);
        }
        double t1 = now_ns();
        if ((t1 - t0) / (20.0 * N) < best) best = (t1 - t0) / (20.0 * N);
    }
    put("alloc_batch_64", best);
}

int main(int argc, char **argv) {
    if (argc > 1 && strcmp(argv[1], "alloc") == 0) {
        alloc_fast_paths();
        return 0;
    }
    faults_and_release();
    syscalls();
    size_t sizes[] = {16, 256, 4096, 65536};
    for (int i = 0; i < 4; i++) lines(sizes[i]);
    memset_and_bitmap();
    return 0;
}
