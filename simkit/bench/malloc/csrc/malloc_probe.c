/* simkit malloc security probes, one per run (the caller reads the exit status and stdout):
 *   double_free N    p = malloc(N); guard; free(p); free(p)      (SIGABRT = caught)
 *   invalid_free     p = malloc(64) zeroed; free(p + 16)
 *   reuse N          p = malloc(N); free(p); q = malloc(N): prints 1 if q == p
 *   reuse_distance N p freed, then mallocs of N (kept) until p comes back: prints the count
 *   placement        256 mallocs of 32 B: prints the address deltas' Shannon entropy (bits)
 *   zero_on_free N   p filled with 0xAB, freed: prints the share of bytes 16.. now zero
 *   overflow K       a, b = malloc(32); write K bytes of 0x41 past a's 32; free(b); malloc
 *   overflow_self K  the same, then free(a) (the overflowed block itself); malloc
 *   fastbin_dup N    7 blocks of N freed first (fills glibc's tcache), then free p, q, p; 10
 *                    mallocs of N: prints 1 if one address came back twice (a duplicate)
 *   adjacency        256 mallocs of 32: prints the share of consecutive pairs whose second
 *                    block starts within 64 bytes after the first */
#define _GNU_SOURCE
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static void *volatile sink;

int main(int argc, char **argv) {
    if (argc < 2) return 2;
    const char *what = argv[1];
    size_t n = argc > 2 ? strtoull(argv[2], NULL, 10) : 32;
    setvbuf(stdout, NULL, _IONBF, 0);
    if (!strcmp(what, "double_free")) {
        void *p = malloc(n);
        sink = malloc(16);
        free(p);
        free(p);
        sink = malloc(n);
        sink = malloc(n);
        printf("survived\n");
        return 0;
    }
    if (!strcmp(what, "invalid_free")) {
        char *p = malloc(64);
        memset(p, 0, 64);
        sink = malloc(16);
        free(p + 16);
        sink = malloc(64);
        printf("survived\n");
        return 0;
    }
    if (!strcmp(what, "reuse")) {
        void *p = malloc(n);
        free(p);
        void *q = malloc(n);
        printf("%d\n", p == q);
        return 0;
    }
    if (!strcmp(what, "reuse_distance")) {
        void *p = malloc(n);
        free(p);
        for (int i = 1; i <= 4096; i++) {
            void *q = malloc(n);
            if (q == p) { printf("%d\n", i); return 0; }
        }
        printf("-1\n");
        return 0;
    }
    if (!strcmp(what, "placement")) {
        enum { K = 256 };
        uintptr_t a[K];
        for (int i = 0; i < K; i++) a[i] = (uintptr_t)malloc(32);
        /* entropy of the deltas between consecutive allocations */
        long d[K - 1];
        for (int i = 1; i < K; i++) d[i - 1] = (long)(a[i] - a[i - 1]);
        double h = 0;
        for (int i = 0; i < K - 1; i++) {
            int seen = 0, c = 0;
            for (int j = 0; j < i; j++) if (d[j] == d[i]) { seen = 1; break; }
            if (seen) continue;
            for (int j = 0; j < K - 1; j++) if (d[j] == d[i]) c++;
            double pr = (double)c / (K - 1);
            h -= pr * log2(pr);
        }
        printf("%.3f\n", h);
        return 0;
    }
    if (!strcmp(what, "zero_on_free")) {
        unsigned char *p = malloc(n);
        memset(p, 0xAB, n);
        sink = malloc(16);
        free(p);
        size_t z = 0;
        for (size_t i = 16; i < n; i++) z += ((volatile unsigned char *)p)[i] == 0;
        printf("%.3f\n", n > 16 ? (double)z / (n - 16) : 0.0);
        return 0;
    }
    if (!strcmp(what, "overflow") || !strcmp(what, "overflow_self")) {
        char *a = malloc(32), *b = malloc(32);
        sink = b;
        memset(a + 32, 0x41, n);
        free(!strcmp(what, "overflow") ? b : a);    /* the neighbour, or the block itself */
        sink = malloc(32);
        sink = malloc(32);
        printf("survived\n");
        return 0;
    }
    if (!strcmp(what, "fastbin_dup")) {
        void *t[7], *got[10];
        void *p = malloc(n), *q = malloc(n);
        for (int i = 0; i < 7; i++) t[i] = malloc(n);
        for (int i = 0; i < 7; i++) free(t[i]);
        free(p);
        free(q);
        free(p);
        for (int i = 0; i < 10; i++) got[i] = malloc(n);
        int dup = 0;
        for (int i = 0; i < 10; i++)
            for (int j = 0; j < i; j++) dup |= got[i] == got[j];
        printf("%d\n", dup);
        return 0;
    }
    if (!strcmp(what, "adjacency")) {
        enum { K = 256 };
        uintptr_t a[K];
        for (int i = 0; i < K; i++) a[i] = (uintptr_t)malloc(32);
        int adj = 0;
        for (int i = 1; i < K; i++) adj += a[i] > a[i - 1] && a[i] - a[i - 1] <= 64;
        printf("%.4f\n", (double)adj / (K - 1));
        return 0;
    }
    return 2;
}
