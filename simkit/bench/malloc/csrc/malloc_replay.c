/* simkit malloc replayer: replays a simkit allocation trace (converted by simkit.bench.malloc
 * to flat arrays) through whatever malloc is linked or preloaded, touching every page of each
 * block so RSS is real (REFERENCE 4.7: memset <= 256 B, then 1 byte per 4 KiB, and the last
 * byte). Its own tables are mmapped (MAP_POPULATE) before the start RSS is read, so the
 * allocator under test sees only the trace's requests.
 * Output, one line: elapsed_ns events start_rss_kb hwm_kb end_rss_kb cpu_ns minor_faults
 * (cpu_ns: the process's CPU time over the replay, user + system, so other processes on a busy
 * machine do not count; minor_faults: getrusage's ru_minflt over the replay)
 * With a second argument OUT, the address each event returned (0 for free) is written to OUT
 * as n uint64 values (for checking a model's placement against the real allocator); "-" for
 * none. With a third and fourth, RSS.out EVERY: after every EVERY-th event (0, EVERY, ...)
 * the event index and VmRSS (KiB, from /proc/self/statm) are written to RSS.out as uint64
 * pairs, ending with a (UINT64_MAX, start RSS) pair. */
#define _GNU_SOURCE
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

static long status_kb(const char *key) {
    char buf[8192];
    int fd = open("/proc/self/status", O_RDONLY);
    if (fd < 0) return -1;
    ssize_t n = read(fd, buf, sizeof buf - 1);
    close(fd);
    if (n <= 0) return -1;
    buf[n] = 0;
    char *p = strstr(buf, key);
    if (!p) return -1;
    return strtol(p + strlen(key) + 1, NULL, 10);
}

/* Fault in every page of the shared libraries' mappings (libc's malloc code, the preloaded
 * allocator) before the start RSS is read, so the RSS growth measured is the heap's, not the
 * code pages the replay happens to execute first. */
static char maps[1 << 17];
static void prefault_libraries(void) {
    int fd = open("/proc/self/maps", O_RDONLY);
    if (fd < 0) return;
    ssize_t n = 0, got;
    while (n < (ssize_t)sizeof maps - 1 && (got = read(fd, maps + n, sizeof maps - 1 - n)) > 0)
        n += got;
    close(fd);
    maps[n] = 0;
    for (char *line = maps; line && *line; ) {
        char *next = strchr(line, '\n');
        if (next) *next++ = 0;
        unsigned long lo, hi;
        char perms[8] = {0};
        if (sscanf(line, "%lx-%lx %7s", &lo, &hi, perms) == 3 && perms[0] == 'r' &&
            strstr(line, ".so")) {
            volatile unsigned char sink2 = 0;
            for (unsigned long a = lo; a < hi; a += 4096) sink2 ^= *(volatile unsigned char *)a;
            (void)sink2;
        }
        line = next;
    }
}

static void touch(unsigned char *p, uint64_t n) {
    if (!p || !n) return;
    memset(p, 1, n < 256 ? n : 256);
    for (uint64_t off = 4096; off < n; off += 4096) p[off] = 1;
    p[n - 1] = 1;
}

static long statm_kb(void) {
    char buf[256];
    int fd = open("/proc/self/statm", O_RDONLY);
    if (fd < 0) return -1;
    ssize_t n = read(fd, buf, sizeof buf - 1);
    close(fd);
    if (n <= 0) return -1;
    buf[n] = 0;
    long size, resident;
    if (sscanf(buf, "%ld %ld", &size, &resident) != 2) return -1;
    return resident * (sysconf(_SC_PAGESIZE) / 1024);
}

int main(int argc, char **argv) {
    if (argc != 2 && argc != 3 && argc != 5) {
        fprintf(stderr, "usage: %s TRACE.bin [ADDRS.out|- [RSS.out EVERY]]\n", argv[0]);
        return 2;
    }
    int fd = open(argv[1], O_RDONLY);
    if (fd < 0) { perror(argv[1]); return 2; }
    struct stat sb;
    fstat(fd, &sb);
    void *m = mmap(NULL, sb.st_size, PROT_READ, MAP_PRIVATE | MAP_POPULATE, fd, 0);
    if (m == MAP_FAILED) { perror("mmap"); return 2; }
    const uint64_t *hdr = m;
    uint64_t n = hdr[0], nobj = hdr[1];
    const uint64_t *size = hdr + 2;
    const uint32_t *id = (const uint32_t *)(size + n);
    const uint32_t *old = id + n;
    const uint32_t *align = old + n;
    const uint8_t *op = (const uint8_t *)(align + n);
    void **ptr = mmap(NULL, (nobj + 1) * sizeof(void *), PROT_READ | PROT_WRITE,
                      MAP_PRIVATE | MAP_ANONYMOUS | MAP_POPULATE, -1, 0);
    if (ptr == MAP_FAILED) { perror("mmap"); return 2; }
    uint64_t *addrs = NULL;
    if (argc >= 3 && strcmp(argv[2], "-") != 0) {
        int ofd = open(argv[2], O_RDWR | O_CREAT | O_TRUNC, 0644);
        if (ofd < 0 || ftruncate(ofd, (n + 1) * 8)) { perror(argv[2]); return 2; }
        addrs = mmap(NULL, (n + 1) * 8, PROT_READ | PROT_WRITE, MAP_SHARED, ofd, 0);
        if (addrs == MAP_FAILED) { perror("mmap"); return 2; }
    }
    uint64_t *rss = NULL, every = 0, nrss = 0;
    if (argc == 5) {
        every = strtoull(argv[4], NULL, 10);
        if (every == 0) { fprintf(stderr, "EVERY must be positive\n"); return 2; }
        uint64_t cap = 2 * (n / every + 2);
        int rfd = open(argv[3], O_RDWR | O_CREAT | O_TRUNC, 0644);
        if (rfd < 0 || ftruncate(rfd, cap * 8)) { perror(argv[3]); return 2; }
        rss = mmap(NULL, cap * 8, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_POPULATE, rfd, 0);
        if (rss == MAP_FAILED) { perror("mmap"); return 2; }
    }
    prefault_libraries();
    long start_rss = status_kb("VmRSS:");
    struct timespec t0, t1, c0, c1;
    struct rusage ru0, ru1;
    getrusage(RUSAGE_SELF, &ru0);
    clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &c0);
    clock_gettime(CLOCK_MONOTONIC, &t0);
    for (uint64_t i = 0; i < n; i++) {
        void *p;
        switch (op[i]) {
        case 0: p = malloc(size[i]); ptr[id[i]] = p; touch(p, size[i]); break;
        case 1: p = calloc(1, size[i]); ptr[id[i]] = p; touch(p, size[i]); break;
        case 2:
            p = realloc(old[i] == 0xFFFFFFFFu ? NULL : ptr[old[i]], size[i]);
            if (old[i] != 0xFFFFFFFFu) ptr[old[i]] = NULL;
            ptr[id[i]] = p; touch(p, size[i]); break;
        case 3: free(ptr[id[i]]); ptr[id[i]] = NULL; break;
        case 4:
            if (posix_memalign(&p, align[i] < sizeof(void *) ? sizeof(void *) : align[i],
                               size[i])) p = NULL;
            ptr[id[i]] = p; touch(p, size[i]); break;
        }
        if (addrs) addrs[i] = op[i] == 3 ? 0 : (uint64_t)(uintptr_t)ptr[id[i]];
        if (rss && i % every == 0) {
            rss[2 * nrss] = i;
            rss[2 * nrss + 1] = (uint64_t)statm_kb();
            nrss++;
        }
    }
    if (rss) {
        rss[2 * nrss] = UINT64_MAX;
        rss[2 * nrss + 1] = (uint64_t)start_rss;
    }
    clock_gettime(CLOCK_MONOTONIC, &t1);
    clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &c1);
    getrusage(RUSAGE_SELF, &ru1);
    long hwm = status_kb("VmHWM:"), end_rss = status_kb("VmRSS:");
    char out[256];
    int len = snprintf(out, sizeof out, "%lld %llu %ld %ld %ld %lld %ld\n",
                       (long long)(t1.tv_sec - t0.tv_sec) * 1000000000LL + (t1.tv_nsec - t0.tv_nsec),
                       (unsigned long long)n, start_rss, hwm, end_rss,
                       (long long)(c1.tv_sec - c0.tv_sec) * 1000000000LL + (c1.tv_nsec - c0.tv_nsec),
                       ru1.ru_minflt - ru0.ru_minflt);
    write(1, out, len);
    return 0;
}
