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
 *                    block starts within 64 bytes after the first
 *   df_delayed N     p freed; 1024 x free(malloc(N)); free(p)  (mimalloc-bench's sequence)
 *   df_interleaved N p, q = malloc(N); free p, q, p (tcache not filled first)
 *   waf N            p freed; bytes 16..N-1 of p written (past any in-band free-list link);
 *                    20000 x free(malloc(N)): prints 1 if p came back (the write was there)
 *   poison N         a, p freed; p's first word overwritten with the address of a static
 *                    buffer; 64 mallocs of N: prints 1 if one returned that buffer
 *   overflow1        a, b = malloc(24); one byte written at a[24]; free(a); free(b); mallocs
 *   guard N D        p = malloc(N); a forked child reads one byte per page from p's end (D=1)
 *                    or start (D=-1) outwards: prints the distance (bytes) from p's end (or
 *                    start) to the first address that faults, -1 if none within 1 MiB
 *   uaf_read N       p = malloc(N) written, freed; a forked child reads p: prints 1 if it faults
 *   reuse_cycle N    p freed; then up to 64 x (q = malloc(N); free(q)): prints the cycle at
 *                    which q == p, -1 if never
 *   malloc0          p, q = malloc(0): prints null / same / unique, then 1 if a forked child
 *                    faults writing p[0] (0 otherwise)
 *   free_stack       free() of a 16-byte-aligned address inside a stack buffer
 *   free_unaligned   p = malloc(64); free(p + 1)
 *   freed_ptr N      q, p = malloc(N) (+ guard); free(q); free(p): prints 1 if a word of p
 *                    now holds a raw pointer within 16 MiB of p
 *   layout           64 mallocs of 32: prints their offsets from the first (the caller runs
 *                    it twice, in two processes, and compares) */
#define _GNU_SOURCE
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <unistd.h>

static void *volatile sink;
static char target[256] __attribute__((aligned(64)));

/* Runs f(arg) in a forked child: 1 if the child died of a signal (a fault), 0 otherwise. */
static int faults_in_child(void (*f)(void *), void *arg) {
    pid_t pid = fork();
    if (pid == 0) { f(arg); _exit(0); }
    int st = 0;
    waitpid(pid, &st, 0);
    return WIFSIGNALED(st);
}

static void read_byte(void *p) { sink = (void *)(uintptr_t)*(volatile char *)p; }
static void write_byte(void *p) { *(volatile char *)p = 1; }

/* the walk of `guard`: *last (shared) holds the furthest offset read so far */
static char *walk_from;
static long walk_dir;
static volatile long *walk_last;
static void walk(void *unused) {
    (void)unused;
    uintptr_t a = (uintptr_t)walk_from;
    for (long d = 0; d <= (1L << 20);) {
        volatile char *q = (volatile char *)(walk_dir > 0 ? a + d : a - 1 - d);
        sink = (void *)(uintptr_t)*q;
        *walk_last = d + 1;
        uintptr_t at = (uintptr_t)q;                       /* on to the next page */
        d += walk_dir > 0 ? (long)(4096 - at % 4096) : (long)(at % 4096 + 1);
    }
    *walk_last = -1;
}

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
    if (!strcmp(what, "df_delayed")) {
        void *p = malloc(n);
        free(p);
        for (int i = 0; i < 1024; i++) free(malloc(n));
        free(p);
        sink = malloc(n);
        sink = malloc(n);
        printf("survived\n");
        return 0;
    }
    if (!strcmp(what, "df_interleaved")) {
        void *p = malloc(n), *q = malloc(n);
        free(p);
        free(q);
        free(p);
        sink = malloc(n);
        sink = malloc(n);
        printf("survived\n");
        return 0;
    }
    if (!strcmp(what, "waf")) {
        char *p = malloc(n);
        sink = malloc(n);
        free(p);
        memset(p + 16, 0x41, n - 16);
        int back = 0;
        for (int i = 0; i < 20000; i++) {
            void *q = malloc(n);
            back |= q == p;
            free(q);
        }
        printf("%d\n", back);
        return 0;
    }
    if (!strcmp(what, "poison")) {
        void *a = malloc(n), *p = malloc(n);
        sink = malloc(n);
        free(a);
        free(p);
        *(void **)p = target + 64;
        int hit = 0;
        for (int i = 0; i < 64; i++) {
            char *q = malloc(n);
            hit |= q >= target && q < target + sizeof target;
        }
        printf("%d\n", hit);
        return 0;
    }
    if (!strcmp(what, "overflow1")) {
        char *a = malloc(24), *b = malloc(24);
        sink = malloc(24);
        a[24] = 0x41;
        free(a);
        free(b);
        sink = malloc(24);
        sink = malloc(24);
        printf("survived\n");
        return 0;
    }
    if (!strcmp(what, "guard")) {
        long dir = argc > 3 ? strtol(argv[3], NULL, 10) : 1;
        char *p = malloc(n);
        memset(p, 0, n);
        walk_last = mmap(NULL, 4096, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
        *walk_last = 0;
        walk_from = dir > 0 ? p + n : p;
        walk_dir = dir;
        faults_in_child(walk, NULL);
        long last = *walk_last;
        if (last < 0) { printf("-1\n"); return 0; }
        /* the first address that faulted: the page after the last one read */
        uintptr_t a = (uintptr_t)walk_from;
        long dist;
        if (last == 0) dist = 0;
        else if (dir > 0) {
            uintptr_t lastq = a + last - 1;
            dist = (long)((lastq / 4096 + 1) * 4096 - a);
        } else {
            uintptr_t lastq = a - 1 - (last - 1);
            dist = (long)(a - (lastq / 4096) * 4096);
        }
        printf("%ld\n", dist);
        return 0;
    }
    if (!strcmp(what, "uaf_read")) {
        char *p = malloc(n);
        memset(p, 0x41, n);
        sink = malloc(16);
        free(p);
        printf("%d\n", faults_in_child(read_byte, p));
        return 0;
    }
    if (!strcmp(what, "reuse_cycle")) {
        void *p = malloc(n);
        free(p);
        for (int i = 1; i <= 64; i++) {
            void *q = malloc(n);
            free(q);
            if (q == p) { printf("%d\n", i); return 0; }
        }
        printf("-1\n");
        return 0;
    }
    if (!strcmp(what, "malloc0")) {
        char *p = malloc(0), *q = malloc(0);
        printf("%s %d\n", !p ? "null" : p == q ? "same" : "unique",
               p ? faults_in_child(write_byte, p) : 0);
        return 0;
    }
    if (!strcmp(what, "free_stack")) {
        char buf[128] __attribute__((aligned(16)));
        memset(buf, 0, sizeof buf);
        sink = buf;
        free(buf + 32);
        sink = malloc(32);
        printf("survived\n");
        return 0;
    }
    if (!strcmp(what, "free_unaligned")) {
        char *p = malloc(64);
        memset(p, 0, 64);
        sink = malloc(16);
        free(p + 1);
        sink = malloc(64);
        printf("survived\n");
        return 0;
    }
    if (!strcmp(what, "freed_ptr")) {
        char *q = malloc(n), *p = malloc(n);
        sink = malloc(n);
        memset(p, 0, n);
        free(q);
        free(p);
        int raw = 0;
        for (size_t i = 0; i + 8 <= n; i += 8) {
            uintptr_t w = *(volatile uintptr_t *)(p + i);
            uintptr_t a = (uintptr_t)p;
            raw |= w && (w > a ? w - a : a - w) < (1u << 24);
        }
        printf("%d\n", raw);
        return 0;
    }
    if (!strcmp(what, "layout")) {
        uintptr_t first = (uintptr_t)malloc(32);
        printf("0");
        for (int i = 1; i < 64; i++) printf(",%ld", (long)((uintptr_t)malloc(32) - first));
        printf("\n");
        return 0;
    }
    return 2;
}
