/* sktrace.h: self-tracing for the paper-regime workloads (see ../../README.md, "Paper-regime
 * workloads").  Header-only; MIT licence (simkit).
 *
 * Built plain, every macro here is empty and the program is the program.  Built with
 * -DSIMKIT_TRACE, the kernel's array accesses are written as simkit .skt records (16 bytes:
 * addr u64, icount u32, size u16, op u8, flags u8; simkit/trace/format.py) through a 1 MiB
 * buffered writer:
 *
 *  - line granularity: every record names one 64-byte line (addr aligned to 64, size 64);
 *    a sequential stream (SKT_SEQ) gives one record per new line it enters, a random access
 *    (SKT_RAND) one record per access;
 *  - flags bit 0: the address came from the load just before it, and that load wrote a record
 *    (the record before this one), as simkit's core reads it (dependence="flag": wait for the
 *    previous load).  A program marks an access dependent (the macros' dep) when its address
 *    came from the access just before it in program order (a neighbour index read from col[],
 *    a row index read from an index array, a binary-search probe chosen by a loaded value);
 *    the flag is kept only when that access wrote a record: where it did not (a sequential
 *    stream's load that stayed in its line, an L1 hit), the producer is not in the trace and
 *    the access waits on no miss, so it is left independent rather than chained to whatever
 *    record came before (which would serialize independent misses: BFS's dist[] loads behind
 *    one another);
 *  - icount: instructions since the previous record.  SKT_IPR_MILLI (environment, thousandths
 *    of an instruction) is the kernel's measured instructions per record (make_paper_traces.py
 *    measures it with callgrind on the plain build); records carry it spread evenly
 *    (floor((k+1)*ipr) - floor(k*ipr)), so the file's instruction total is the kernel's;
 *  - fast-forward and sampled windows (SimPoint spirit): nothing before skt_begin() (the
 *    initialisation) is counted; of the kernel's records, SKT_SKIP are skipped, then SKT_WINDOW
 *    are written, the next window starting SKT_PERIOD records after the previous one's start,
 *    SKT_WINDOWS times; after the last window the file is finished and the program exits 0;
 *  - memory comes from skt_alloc(): anonymous mappings placed at fixed virtual addresses
 *    (SKT_BASE, each allocation at the next 2 MiB boundary after the previous one), in the
 *    plain build too, so the traced addresses are the program's own layout, the same on every
 *    run (no ASLR dependence) and computable by hand.
 *
 * Environment: SKT_OUT (path, required when traced), SKT_SKIP, SKT_WINDOW, SKT_PERIOD,
 * SKT_WINDOWS, SKT_IPR_MILLI, SKT_NAME.  The file is written to SKT_OUT.partial and renamed
 * when complete.
 *
 * Built with -DSIMKIT_TIMED instead (simkit.bench.cpu.programs), the macros count the records
 * the traced build would write (SKT_SEQ: one per new line, as traced) and nothing else: a
 * countdown to the next window boundary, in a register (a test and a decrement per record;
 * still a few instructions per record with a stream's line test, which the model is given:
 * simkit.bench.cpu.programs calibrates the timed build's own instructions per record).  The same SKT_SKIP / SKT_WINDOW / SKT_PERIOD /
 * SKT_WINDOWS select the same records; each window is timed (CLOCK_MONOTONIC, and this
 * thread's CPU time) from its first record's access to the access after its last; after the
 * last window (or at SKT_END) one JSON line goes to stdout -- ns, cpu_ns, records,
 * ns_per_record, cpu_ns_per_record, windows, kernel_records_seen, mapped_bytes (from the first
 * allocation to the end of the last, 2 MiB-aligned), alloc_bytes (the allocations' sizes
 * summed), thp_backed_bytes (AnonHugePages of the skt mappings in /proc/self/smaps, read
 * after the clock stopped) -- and the program exits 0 if it stopped at a window's end.  Without SKT_WINDOW the whole kernel from SKT_SKIP on
 * is one window.
 *
 * SKT_PAGES (every build; unset: no advice, no touching, the builds as they always were):
 * "4k" advises each skt_alloc mapping MADV_NOHUGEPAGE, "thp" MADV_HUGEPAGE, and either then
 * writes a zero to each of its 4 KiB pages, so that every page has its own frame of the
 * advised kind before the kernel runs (a mapped-but-unwritten array, such as llm_decode's
 * weights, would otherwise read the one shared zero page: every line a cache hit).
 */
#ifndef SKTRACE_H
#define SKTRACE_H
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

#define SKT_BASE 0x100000000000ULL          /* 16 TiB: first allocation */
#define SKT_ALIGN (2ULL << 20)

static uint64_t skt_next_addr = SKT_BASE;
static uint64_t skt_alloc_bytes;            /* the sum of the allocations' sizes */

static void *skt_alloc(uint64_t bytes)
{
    uint64_t at = skt_next_addr;
    void *p = mmap((void *)at, bytes, PROT_READ | PROT_WRITE,
                   MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE | MAP_FIXED_NOREPLACE, -1, 0);
    if (p == MAP_FAILED || (uint64_t)p != at) {
        fprintf(stderr, "skt_alloc: cannot map %llu bytes at 0x%llx\n",
                (unsigned long long)bytes, (unsigned long long)at);
        exit(2);
    }
    skt_next_addr = (at + bytes + SKT_ALIGN - 1) & ~(SKT_ALIGN - 1);
    skt_alloc_bytes += bytes;
    const char *pages = getenv("SKT_PAGES");
    if (pages && *pages) {
        int thp = !strcmp(pages, "thp");
        if (!thp && strcmp(pages, "4k")) {
            fprintf(stderr, "SKT_PAGES: 4k or thp, not %s\n", pages);
            exit(2);
        }
        if (madvise(p, bytes, thp ? MADV_HUGEPAGE : MADV_NOHUGEPAGE) && !thp) {
            fprintf(stderr, "skt_alloc: madvise failed\n");
            exit(2);
        }
        for (uint64_t o = 0; o < bytes; o += 4096)
            ((volatile char *)p)[o] = 0;
    }
    return p;
}

enum { SKT_LOAD = 0, SKT_STORE = 1, SKT_MODIFY = 3 };

/* A count from the environment (the traced and the timed builds' SKT_* settings). */
__attribute__((unused)) static uint64_t skt_env(const char *name, uint64_t dflt)
{
    const char *v = getenv(name);
    if (!v || !*v)
        return dflt;
    char *end;
    unsigned long long x = strtoull(v, &end, 10);
    if (*end) {
        fprintf(stderr, "%s: not a count: %s\n", name, v);
        exit(2);
    }
    return x;
}

#ifdef SIMKIT_TRACE
typedef struct __attribute__((packed)) {
    uint64_t addr;
    uint32_t icount;
    uint16_t size;
    uint8_t op, flags;
} skt_rec;
_Static_assert(sizeof(skt_rec) == 16, "record is 16 bytes");

typedef struct { uint64_t last; } skt_stream;   /* last line number + 1 (0: none yet) */

#define SKT_BUF (1 << 16)
static skt_rec skt_buf[SKT_BUF];
static unsigned skt_nbuf;
static FILE *skt_f;
static char skt_path[4096], skt_tmp[4200];
static uint64_t skt_seen, skt_next, skt_skip, skt_window = ~0ULL, skt_period = ~0ULL;
static uint64_t skt_windows = 1, skt_win_done, skt_records, skt_instr, skt_ipr_milli = 1000;
static uint64_t skt_ops[4], skt_dep, skt_k, skt_win_end;
static int skt_on, skt_in_window;
static char skt_cmd[1024];

static void skt_flush(void)
{
    if (skt_nbuf && fwrite(skt_buf, sizeof(skt_rec), skt_nbuf, skt_f) != skt_nbuf) {
        fprintf(stderr, "%s: write failed\n", skt_tmp);
        exit(2);
    }
    skt_nbuf = 0;
}

static void skt_finish(void)
{
    skt_flush();
    char head[4096];
    memset(head, 0, sizeof head);
    char *name = getenv("SKT_NAME");
    int n = snprintf(head + 12, sizeof head - 12,
        "{\"format\":1,\"dtype\":[[\"addr\",\"<u8\"],[\"icount\",\"<u4\"],[\"size\",\"<u2\"],"
        "[\"op\",\"|u1\"],[\"flags\",\"|u1\"]],\"records\":%llu,\"meta\":{\"source\":\"%s\","
        "\"command\":\"%s\",\"created\":\"\",\"producer\":\"sktrace.h\",\"records\":%llu,"
        "\"instructions\":%llu,\"ops\":{\"load\":%llu,\"store\":%llu,\"ifetch\":0,"
        "\"modify\":%llu},\"notes\":\"self-traced at 64-byte line granularity; icount from "
        "the measured instructions per record\",\"extra\":{\"skip\":%llu,\"window\":%llu,"
        "\"period\":%llu,\"windows\":%llu,\"windows_written\":%llu,"
        "\"instructions_per_record_milli\":%llu,\"dependent_records\":%llu,"
        "\"kernel_records_seen\":%llu,\"mapped_bytes\":%llu}}}",
        (unsigned long long)skt_records, name ? name : "", skt_cmd,
        (unsigned long long)skt_records, (unsigned long long)skt_instr,
        (unsigned long long)skt_ops[0], (unsigned long long)skt_ops[1],
        (unsigned long long)skt_ops[3], (unsigned long long)skt_skip,
        (unsigned long long)skt_window, (unsigned long long)skt_period,
        (unsigned long long)skt_windows, (unsigned long long)skt_win_done,
        (unsigned long long)skt_ipr_milli, (unsigned long long)skt_dep,
        (unsigned long long)skt_seen, (unsigned long long)(skt_next_addr - SKT_BASE));
    if (n <= 0 || n >= (int)sizeof head - 12) {
        fprintf(stderr, "sktrace: header too long\n");
        exit(2);
    }
    memcpy(head, "SIMKTRC1", 8);
    uint32_t len = (uint32_t)n;
    memcpy(head + 8, &len, 4);
    if (fseek(skt_f, 0, SEEK_SET) || fwrite(head, 1, sizeof head, skt_f) != sizeof head
        || fclose(skt_f) || rename(skt_tmp, skt_path)) {
        fprintf(stderr, "%s: cannot finish the trace\n", skt_path);
        exit(2);
    }
    skt_on = 0;
}

/* Start counting: call once, where the kernel begins. */
static void skt_begin(int argc, char **argv)
{
    const char *out = getenv("SKT_OUT");
    if (!out || !*out) {
        fprintf(stderr, "SKT_OUT: set it to the .skt file to write\n");
        exit(2);
    }
    snprintf(skt_path, sizeof skt_path, "%s", out);
    snprintf(skt_tmp, sizeof skt_tmp, "%s.partial", out);
    size_t used = 0;
    for (int i = 0; i < argc && used + 2 < sizeof skt_cmd; i++) {
        for (const char *c = argv[i]; *c && used + 2 < sizeof skt_cmd; c++)
            if (*c != '"' && *c != '\\' && (unsigned char)*c >= 32)
                skt_cmd[used++] = *c;
        if (i + 1 < argc)
            skt_cmd[used++] = ' ';
    }
    skt_skip = skt_env("SKT_SKIP", 0);
    skt_window = skt_env("SKT_WINDOW", ~0ULL);
    skt_period = skt_env("SKT_PERIOD", skt_window);
    skt_windows = skt_env("SKT_WINDOWS", 1);
    skt_ipr_milli = skt_env("SKT_IPR_MILLI", 1000);
    if (skt_window == 0 || skt_windows == 0 || skt_period < skt_window) {
        fprintf(stderr, "SKT_WINDOW, SKT_WINDOWS must be > 0 and SKT_PERIOD >= SKT_WINDOW\n");
        exit(2);
    }
    skt_f = fopen(skt_tmp, "wb");
    if (!skt_f) {
        fprintf(stderr, "%s: cannot write\n", skt_tmp);
        exit(2);
    }
    static char zero[4096];
    fwrite(zero, 1, sizeof zero, skt_f);
    skt_next = skt_skip;      /* record number where the next window starts */
    skt_on = 1;
}

/* Stop (kernel finished before the last window): write what was recorded. */
static void skt_end(void)
{
    if (skt_on) {
        if (skt_in_window)
            skt_win_done++;
        skt_finish();
    }
}

static void skt_slow(uint64_t line, int op, int dep)
{
    if (!skt_in_window) {
        if (skt_seen != skt_next)
            return;
        skt_in_window = 1;
        skt_win_end = skt_next + skt_window;
    }
    uint64_t i0 = skt_k * skt_ipr_milli / 1000;
    skt_k++;
    uint32_t ic = (uint32_t)(skt_k * skt_ipr_milli / 1000 - i0);
    skt_rec *r = &skt_buf[skt_nbuf++];
    r->addr = line << 6;
    r->icount = ic;
    r->size = 64;
    r->op = (uint8_t)op;
    r->flags = (uint8_t)(dep != 0);
    skt_records++;
    skt_instr += ic;
    skt_ops[op]++;
    skt_dep += dep != 0;
    if (skt_nbuf == SKT_BUF)
        skt_flush();
    if (skt_seen + 1 == skt_win_end) {
        skt_in_window = 0;
        skt_win_done++;
        if (skt_win_done == skt_windows) {
            skt_seen++;
            skt_finish();
            fprintf(stderr, "sktrace: %llu records in %llu windows written to %s\n",
                    (unsigned long long)skt_records, (unsigned long long)skt_win_done,
                    skt_path);
            exit(0);
        }
        skt_next += skt_period;
    }
}

static int skt_prev_rec;    /* the kernel's previous access wrote a record */

/* One kernel access to the line holding p; dep: the address came from the access just before
 * (flagged only when that one wrote a record). */
static inline void skt_access(const void *p, int op, int dep)
{
    if (__builtin_expect(skt_in_window || skt_seen == skt_next, 0))
        skt_slow((uint64_t)p >> 6, op, dep && skt_prev_rec);
    skt_prev_rec = 1;
    skt_seen++;
}

/* A sequential stream: a record only when it enters a new line. */
static inline void skt_seq_access(skt_stream *s, const void *p, int op, int dep)
{
    uint64_t line = ((uint64_t)p >> 6) + 1;
    if (line != s->last) {
        s->last = line;
        skt_access(p, op, dep);
    } else {
        skt_prev_rec = 0;
    }
}

#define SKT_STREAM(name) skt_stream name = {0}
#define SKT_RAND(p, op, dep) skt_access((p), (op), (dep))
#define SKT_SEQ(s, p, op) skt_seq_access(&(s), (p), (op), 0)
#define SKT_SEQD(s, p, op, dep) skt_seq_access(&(s), (p), (op), (dep))
#define SKT_BEGIN(argc, argv) skt_begin((argc), (argv))
#define SKT_END() skt_end()
#elif defined(SIMKIT_TIMED)
#include <time.h>

typedef struct { uint64_t last; } skt_stream;   /* last line number + 1 (0: none yet) */

/* skt_left: records until the next window boundary (record number skt_evt), counted down;
 * the records so far are skt_evt - skt_left.  Kept in a register for the whole program where
 * gcc allows (x86-64: r15, callee-saved, so library calls keep it): per record the counting
 * is then a test and a decrement, no load-add-store chain through memory. */
#if defined(__x86_64__) && defined(__GNUC__) && !defined(__clang__)
register uint64_t skt_left asm("r15");
#else
static uint64_t skt_left;
#endif
static uint64_t skt_seen, skt_evt = ~0ULL, skt_next, skt_skip, skt_window = ~0ULL;
static uint64_t skt_period = ~0ULL, skt_windows = 1, skt_win_done, skt_win_start, skt_timed;
static int skt_on, skt_in_window;
static uint64_t skt_ns, skt_cpu_ns, skt_t0, skt_c0;

static uint64_t skt_clock(clockid_t c)
{
    struct timespec t;
    clock_gettime(c, &t);
    return (uint64_t)t.tv_sec * 1000000000ULL + (uint64_t)t.tv_nsec;
}

static unsigned long long skt_huge_backed(void)
{
    FILE *f = fopen("/proc/self/smaps", "r");
    char line[512];
    unsigned long long kb = 0;
    int in = 0;
    if (!f)
        return 0;
    while (fgets(line, sizeof line, f)) {
        unsigned long long a, b, v;
        if (sscanf(line, "%llx-%llx ", &a, &b) == 2 && strchr(line, '-') < strchr(line, ' ')) {
            in = a < skt_next_addr && b > SKT_BASE;
            continue;
        }
        if (in && sscanf(line, "AnonHugePages: %llu kB", &v) == 1)
            kb += v;
    }
    fclose(f);
    return kb * 1024;
}

static void skt_start(void)
{
    skt_in_window = 1;
    skt_win_start = skt_seen;
    skt_evt = skt_window == ~0ULL ? ~0ULL : skt_seen + skt_window;
    skt_left = skt_evt - skt_seen;
    skt_c0 = skt_clock(CLOCK_THREAD_CPUTIME_ID);
    skt_t0 = skt_clock(CLOCK_MONOTONIC);
}

static void skt_stop(void)
{
    uint64_t t1 = skt_clock(CLOCK_MONOTONIC), c1 = skt_clock(CLOCK_THREAD_CPUTIME_ID);
    skt_ns += t1 - skt_t0;
    skt_cpu_ns += c1 - skt_c0;
    skt_timed += skt_seen - skt_win_start;
    skt_in_window = 0;
    skt_win_done++;
}

static void skt_report(void)
{
    const char *pages = getenv("SKT_PAGES");
    double r = skt_timed ? (double)skt_timed : 1.0;
    printf("{\"ns\": %llu, \"cpu_ns\": %llu, \"records\": %llu, \"ns_per_record\": %.4f, "
           "\"cpu_ns_per_record\": %.4f, \"windows\": %llu, \"kernel_records_seen\": %llu, "
           "\"mapped_bytes\": %llu, \"alloc_bytes\": %llu, \"thp_backed_bytes\": %llu, "
           "\"pages\": \"%s\"}\n",
           (unsigned long long)skt_ns, (unsigned long long)skt_cpu_ns,
           (unsigned long long)skt_timed, (double)skt_ns / r, (double)skt_cpu_ns / r,
           (unsigned long long)skt_win_done, (unsigned long long)skt_seen,
           (unsigned long long)(skt_next_addr - SKT_BASE), (unsigned long long)skt_alloc_bytes,
           skt_huge_backed(),
           pages && *pages ? pages : "default");
    fflush(stdout);
    skt_on = 0;
}

/* A window boundary: record number skt_evt is about to be counted. */
static __attribute__((noinline)) void skt_tslow(void)
{
    skt_seen = skt_evt;
    if (!skt_in_window) {
        skt_start();
        return;
    }
    skt_stop();
    if (skt_win_done == skt_windows) {
        skt_report();
        exit(0);
    }
    skt_next += skt_period;
    if (skt_next == skt_seen) {
        skt_start();
    } else {
        skt_evt = skt_next;
        skt_left = skt_evt - skt_seen;
    }
}

static void skt_begin(void)
{
    skt_skip = skt_env("SKT_SKIP", 0);
    skt_window = skt_env("SKT_WINDOW", ~0ULL);
    skt_period = skt_env("SKT_PERIOD", skt_window);
    skt_windows = skt_env("SKT_WINDOWS", 1);
    if (skt_window == 0 || skt_windows == 0 || skt_period < skt_window) {
        fprintf(stderr, "SKT_WINDOW, SKT_WINDOWS must be > 0 and SKT_PERIOD >= SKT_WINDOW\n");
        exit(2);
    }
    skt_on = 1;
    skt_next = skt_skip;
    skt_seen = 0;
    if (skt_skip == 0) {
        skt_start();
    } else {
        skt_evt = skt_skip;
        skt_left = skt_skip;
    }
}

static void skt_end(void)
{
    if (!skt_on)
        return;
    skt_seen = skt_evt - skt_left;
    if (skt_in_window)
        skt_stop();
    skt_report();
}

static inline void skt_count(void)
{
    if (__builtin_expect(skt_left == 0, 0))
        skt_tslow();
    skt_left--;
}

static inline void skt_seq_count(skt_stream *s, const void *p)
{
    uint64_t line = ((uint64_t)p >> 6) + 1;
    if (line != s->last) {
        s->last = line;
        skt_count();
    }
}

#define SKT_STREAM(name) skt_stream name = {0}
#define SKT_RAND(p, op, dep) skt_count()
#define SKT_SEQ(s, p, op) skt_seq_count(&(s), (p))
#define SKT_SEQD(s, p, op, dep) skt_seq_count(&(s), (p))
#define SKT_BEGIN(argc, argv) skt_begin()
#define SKT_END() skt_end()
#else
#define SKT_STREAM(name)
#define SKT_RAND(p, op, dep) ((void)0)
#define SKT_SEQ(s, p, op) ((void)0)
#define SKT_SEQD(s, p, op, dep) ((void)0)
#define SKT_BEGIN(argc, argv) ((void)0)
#define SKT_END() ((void)0)
#endif

/* xorshift64*: the programs' one random generator (no libc rand). */
static inline uint64_t skt_rng(uint64_t *s)
{
    uint64_t x = *s;
    x ^= x >> 12;
    x ^= x << 25;
    x ^= x >> 27;
    *s = x;
    return x * 0x2545F4914F6CDD1DULL;
}

static uint64_t skt_arg(int argc, char **argv, int i, uint64_t dflt)
{
    if (i >= argc)
        return dflt;
    char *end;
    unsigned long long x = strtoull(argv[i], &end, 10);
    if (!*argv[i] || *end) {
        fprintf(stderr, "%s: argument %d is not a count: %s\n", argv[0], i, argv[i]);
        exit(2);
    }
    return x;
}
#endif
