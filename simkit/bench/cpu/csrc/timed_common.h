/* Shared by the natively timed programs of simkit.bench.cpu (gups_timed.c, gather_timed.c):
 * thread CPU time, the huge-page backing of a range (AnonHugePages in /proc/self/smaps), and a
 * 2 MiB-aligned anonymous table advised for 4 KiB pages or THP. MIT licence (simkit). */
#ifndef SIMKIT_TIMED_COMMON_H
#define SIMKIT_TIMED_COMMON_H
#define _GNU_SOURCE
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <time.h>

#define HUGE (2UL << 20)

/* this thread's CPU time: a run the scheduler interrupts is not charged for the time others
 * ran (the machine may be shared); cache pollution by them still shows, hence the minimum */
static double now_ns(void)
{
    struct timespec t;
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &t);
    return t.tv_sec * 1e9 + t.tv_nsec;
}

static unsigned long huge_backed(uintptr_t lo, uintptr_t hi)
{
    FILE *f = fopen("/proc/self/smaps", "r");
    char line[512];
    unsigned long kb = 0;
    int in = 0;
    if (!f)
        return 0;
    while (fgets(line, sizeof line, f)) {
        unsigned long a, b;
        if (sscanf(line, "%lx-%lx ", &a, &b) == 2 && strchr(line, '-') < strchr(line, ' ')) {
            in = a < hi && b > lo;
            continue;
        }
        unsigned long v;
        if (in && sscanf(line, "AnonHugePages: %lu kB", &v) == 1)
            kb += v;
    }
    fclose(f);
    return kb * 1024;
}

/* ``bytes`` of anonymous memory, 2 MiB aligned, advised MADV_HUGEPAGE (thp) or
 * MADV_NOHUGEPAGE; *raw and *raw_bytes are what to munmap; NULL when mmap fails */
static void *timed_table(size_t bytes, int thp, void **raw, size_t *raw_bytes)
{
    *raw_bytes = bytes + HUGE;
    *raw = mmap(0, *raw_bytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (*raw == MAP_FAILED)
        return NULL;
    void *table = (void *)(((uintptr_t)*raw + HUGE - 1) & ~(HUGE - 1));
    madvise(table, bytes, thp ? MADV_HUGEPAGE : MADV_NOHUGEPAGE);
    return table;
}
#endif
