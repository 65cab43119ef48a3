/*
 * ratedrive: an open-loop, constant-rate HTTP/1.1 load generator (the idea
 * of wrk2), for the overload scenario of bench/run.py.
 *
 * Each of C keep-alive connections owns an evenly spaced share of the
 * schedule (request k of connection j is due at start + (k*C + j) / rate).
 * Latency is measured from the time a request was DUE, not from when it was
 * sent, so a server that falls behind is charged for the queueing it causes
 * (no coordinated omission).  Bodies are prefix + counter + tail + suffix as
 * in bench/wrk/post.lua, so every request is distinct.
 *
 * Usage: ratedrive HOST PORT PATH RATE SECONDS CONNS WIDTH OFFSET SLO_MS
 *                  [PREFIX SUFFIX]
 * Prints one JSON object: scheduled, sent, completed, status_errors,
 * socket_errors, unfinished, defaults (responses containing "default":true),
 * within_slo (completed, 2xx, latency <= SLO_MS), latency percentiles (ms),
 * and per-second completions.
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define MAX_SAMPLES 4000000
#define RBUF 65536

typedef struct {
    int fd;
    int busy;            /* a request is in flight */
    long k;              /* index of the next request of this connection */
    double due;          /* when the request in flight (or the next) is due */
    char *out;           /* request being written */
    size_t out_len, out_off;
    char in[RBUF];
    size_t in_len;
} conn_t;

static double now_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + ts.tv_nsec / 1e9;
}

static int cmp_double(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

static const char *host, *path, *prefix = "{\"input\":[", *suffix = "]}";
static int port, width, conns;
static double rate, seconds, slo_ms, start;
static long counter;
static char tail[65536];
static int epfd;
static struct sockaddr_in addr;

static long scheduled, sent, completed, status_errors, socket_errors, defaults, within;
static double *lat;
static long nlat;
static long per_second[3600];

static int open_conn(conn_t *c) {
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0);
    if (fd < 0) return -1;
    int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    if (connect(fd, (struct sockaddr *)&addr, sizeof addr) < 0 && errno != EINPROGRESS) {
        close(fd);
        return -1;
    }
    c->fd = fd;
    c->in_len = 0;
    /* Edge-triggered: a level-triggered EPOLLOUT on an idle, writable socket
     * would wake epoll_wait at once, every time (a busy loop). */
    struct epoll_event ev = {.events = EPOLLIN | EPOLLOUT | EPOLLET, .data.ptr = c};
    epoll_ctl(epfd, EPOLL_CTL_ADD, fd, &ev);
    return 0;
}

static void reset_conn(conn_t *c) {
    if (c->fd >= 0) {
        epoll_ctl(epfd, EPOLL_CTL_DEL, c->fd, NULL);
        close(c->fd);
    }
    c->fd = -1;
    if (c->busy) {
        socket_errors++;
        c->busy = 0;
        c->k++;
    }
    open_conn(c);
}

static void build_request(conn_t *c) {
    char body[70000];
    counter++;
    int blen = snprintf(body, sizeof body, "%s%.7f%s%s", prefix, counter * 1e-7, tail, suffix);
    free(c->out);
    c->out = malloc(blen + 512);
    c->out_len = snprintf(c->out, blen + 512,
                          "POST %s HTTP/1.1\r\nHost: %s:%d\r\nContent-Type: application/json\r\n"
                          "Content-Length: %d\r\n\r\n%s",
                          path, host, port, blen, body);
    c->out_off = 0;
}

static void try_write(conn_t *c) {
    while (c->out_off < c->out_len) {
        ssize_t n = write(c->fd, c->out + c->out_off, c->out_len - c->out_off);
        if (n < 0) {
            if (errno == EAGAIN) return;
            reset_conn(c);
            return;
        }
        c->out_off += n;
    }
}

/* Returns 1 when a whole response was consumed. */
static int try_parse(conn_t *c) {
    char *hdr_end = memmem(c->in, c->in_len, "\r\n\r\n", 4);
    if (!hdr_end) return 0;
    size_t hlen = hdr_end - c->in + 4;
    long clen = -1;
    for (char *p = c->in; p < hdr_end; p++) {
        if ((p == c->in || p[-1] == '\n') && strncasecmp(p, "content-length:", 15) == 0) {
            clen = strtol(p + 15, NULL, 10);
            break;
        }
    }
    if (clen < 0) return -1; /* chunked or close-delimited: not supported */
    if (c->in_len < hlen + (size_t)clen) return 0;
    int status = atoi(c->in + 9);
    double t = now_s();
    double ms = (t - c->due) * 1000.0;
    completed++;
    long sec = (long)(t - start);
    if (sec >= 0 && sec < 3600) per_second[sec]++;
    if (status < 200 || status >= 300) {
        status_errors++;
    } else {
        if (memmem(c->in + hlen, clen, "\"default\":true", 14)) defaults++;
        if (ms <= slo_ms) within++;
    }
    if (nlat < MAX_SAMPLES) lat[nlat++] = ms;
    size_t used = hlen + clen;
    memmove(c->in, c->in + used, c->in_len - used);
    c->in_len -= used;
    c->busy = 0;
    c->k++;
    return 1;
}

int main(int argc, char **argv) {
    if (argc < 10) {
        fprintf(stderr, "usage: %s HOST PORT PATH RATE SECONDS CONNS WIDTH OFFSET SLO_MS "
                        "[PREFIX SUFFIX]\n", argv[0]);
        return 2;
    }
    host = argv[1];
    port = atoi(argv[2]);
    path = argv[3];
    rate = atof(argv[4]);
    seconds = atof(argv[5]);
    conns = atoi(argv[6]);
    width = atoi(argv[7]);
    counter = atol(argv[8]);
    slo_ms = atof(argv[9]);
    if (argc > 11) {
        prefix = argv[10];
        suffix = argv[11];
    }
    size_t off = 0;
    for (int i = 2; i <= width && off < sizeof tail - 16; i++)
        off += snprintf(tail + off, sizeof tail - off, ",%.4f", ((i * 7919) % 1000) / 1000.0);
    lat = malloc(sizeof(double) * MAX_SAMPLES);
    addr.sin_family = AF_INET;
    addr.sin_port = htons(port);
    inet_pton(AF_INET, host, &addr.sin_addr);
    epfd = epoll_create1(0);
    conn_t *cs = calloc(conns, sizeof(conn_t));
    for (int j = 0; j < conns; j++) {
        cs[j].fd = -1;
        if (open_conn(&cs[j]) < 0) {
            fprintf(stderr, "cannot connect\n");
            return 1;
        }
    }
    start = now_s() + 0.05;
    double end = start + seconds, drain = end + 2.0;
    for (int j = 0; j < conns; j++) cs[j].due = start + (double)j / rate;
    struct epoll_event evs[1024];
    for (;;) {
        double t = now_s();
        if (t >= drain) break;
        double next = drain;
        int busy = 0;
        for (int j = 0; j < conns; j++) {
            conn_t *c = &cs[j];
            /* connection j's requests are due at start + (k*C + j)/rate */
            if (c->busy) { busy++; continue; }
            c->due = start + (c->k * (double)conns + j) / rate;
            if (c->due >= end) continue;
            if (c->due <= t && c->fd >= 0) {
                build_request(c);
                c->busy = 1;
                scheduled++;
                sent++;
                try_write(c);
                busy++;
            } else if (c->due < next) {
                next = c->due;
            }
        }
        if (t >= end && busy == 0) break;
        /* Sleep until the next request is due, to the microsecond: at
         * thousands of requests per second a millisecond timeout is always
         * 0, and a generator that spins takes a core from the server it is
         * measuring (2-core machines). */
        double wait = next - t;
        if (wait < 0) wait = 0;
        if (wait > 0.05) wait = 0.05;
        struct timespec ts = {(time_t)wait, (long)((wait - (time_t)wait) * 1e9)};
        int n = epoll_pwait2(epfd, evs, 1024, &ts, NULL);
        if (n < 0 && errno == ENOSYS) n = epoll_wait(epfd, evs, 1024, (int)(wait * 1000.0));
        if (n < 0) n = 0;
        for (int i = 0; i < n; i++) {
            conn_t *c = evs[i].data.ptr;
            if (c->fd < 0) continue;
            if (evs[i].events & (EPOLLERR | EPOLLHUP)) { reset_conn(c); continue; }
            if ((evs[i].events & EPOLLOUT) && c->busy) try_write(c);
            if (evs[i].events & EPOLLIN) {
                for (;;) {  /* edge-triggered: read until EAGAIN */
                    ssize_t r = read(c->fd, c->in + c->in_len, RBUF - c->in_len);
                    if (r < 0 && errno == EAGAIN) break;
                    if (r <= 0) { reset_conn(c); break; }
                    c->in_len += r;
                    int p = 0;
                    while (c->in_len && (p = try_parse(c)) == 1) {}
                    if (p < 0) { reset_conn(c); break; }
                }
            }
        }
    }
    /* Requests that were due before the end but never sent (the server was
     * too slow to free their connection) count as scheduled and unfinished. */
    long unfinished = 0;
    for (int j = 0; j < conns; j++) {
        conn_t *c = &cs[j];
        if (c->busy) unfinished++;
        long due_total = 0;
        /* every k with start + (k*C + j)/rate < end was due */
        double kmax = ((end - start) * rate - j) / conns;
        if (kmax > 0) due_total = (long)kmax + (((long)kmax < kmax) ? 1 : 0);
        if (due_total > c->k + c->busy) {
            long never = due_total - c->k - c->busy;
            unfinished += never;
            scheduled += never;
        }
    }
    qsort(lat, nlat, sizeof(double), cmp_double);
#define PCT(p) (nlat ? lat[(long)((nlat - 1) * (p))] : 0.0)
    printf("{\"rate\":%.1f,\"seconds\":%.1f,\"connections\":%d,\"slo_ms\":%.1f,"
           "\"scheduled\":%ld,\"sent\":%ld,\"completed\":%ld,\"status_errors\":%ld,"
           "\"socket_errors\":%ld,\"unfinished\":%ld,\"defaults\":%ld,\"within_slo\":%ld,"
           "\"p50_ms\":%.3f,\"p90_ms\":%.3f,\"p99_ms\":%.3f,\"max_ms\":%.3f,\"per_second\":[",
           rate, seconds, conns, slo_ms, scheduled, sent, completed, status_errors,
           socket_errors, unfinished, defaults, within, PCT(0.5), PCT(0.9), PCT(0.99),
           nlat ? lat[nlat - 1] : 0.0);
    int last = (int)(seconds + 2);
    for (int s = 0; s <= last && s < 3600; s++) printf("%s%ld", s ? "," : "", per_second[s]);
    printf("]}\n");
    return 0;
}
