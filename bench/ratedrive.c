/*
 * ratedrive: an HTTP/1.1 load generator that counts goodput exactly, for
 * bench/run.py: open loop at a constant rate (the idea of wrk2) for the
 * overload points, or closed loop (each connection sends its next request
 * as soon as the last one is answered, like wrk) for the goodput sweep.
 *
 * Open loop (RATE > 0): each of C keep-alive connections owns an evenly
 * spaced share of the schedule (request k of connection j is due at
 * start + (k*C + j) / rate).  Latency is measured from the time a request
 * was DUE, not from when it was sent, so a server that falls behind is
 * charged for the queueing it causes (no coordinated omission).  Requests
 * in flight 2 s after the schedule ends, and those never sent, are
 * "unfinished".
 * Closed loop (RATE = 0): latency from the send; the run stops at SECONDS,
 * and requests in flight then are "unfinished" (not errors).
 *
 * Bodies are prefix + counter + tail + suffix as in bench/wrk/post.lua, so
 * every request is distinct.  Every 2xx body is scanned for its "default"
 * keys (one per prediction: input_batch answers carry several): a
 * prediction is real when "default" is false (or when the body has no such
 * key: a server with no notion of defaults), and goodput when it is real
 * and its response came within SLO_MS.
 *
 * Usage: ratedrive HOST PORT PATH RATE SECONDS CONNS WIDTH OFFSET SLO_MS
 *                  [PREFIX SUFFIX]
 * Prints one JSON object: mode, scheduled, sent, completed (responses),
 * status_errors (non-2xx), socket_errors, unfinished, predictions, real,
 * defaults, good (real within SLO_MS), within_slo (predictions within
 * SLO_MS, defaults included), latency percentiles of every response (ms),
 * and per_second / good_per_second (responses and goodput per second).
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
#include <sys/resource.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define MAX_SAMPLES 4000000
#define MAX_SECONDS 3600
#define RBUF 65536

typedef struct {
    int fd;
    int idx;             /* j: this connection's place in the schedule */
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
static int port, width, conns, closed_loop;
static double rate, seconds, slo_ms, start, end;
static long counter;
static char tail[65536];
static int epfd;
static struct sockaddr_in addr;

static long scheduled, sent, completed, status_errors, socket_errors, inflight;
static long predictions, real, defaults, good, within;
static double *lat;
static long nlat;
static long per_second[MAX_SECONDS], good_per_second[MAX_SECONDS];

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
        inflight--;
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

/* Sends the request due at c->due on connection c. */
static void send_request(conn_t *c) {
    build_request(c);
    c->busy = 1;
    inflight++;
    scheduled++;
    sent++;
    try_write(c);
}

/* A free connection sends its next request if it is due: in the closed
 * loop at once, in the open loop when its slot in the schedule has come
 * (request k of connection j is due at start + (k*C + j)/rate). */
static void start_if_free(conn_t *c, double t) {
    if (c->busy || c->fd < 0 || t < start) return;
    double due = closed_loop ? t : start + (c->k * (double)conns + c->idx) / rate;
    if (due < end && due <= t) {
        c->due = due;
        send_request(c);
    }
}

/* The "default" keys of a JSON body: how many are true and how many false.
 * "default_explanation" and the like do not match (the closing quote). */
static void count_defaults(const char *body, size_t len, long *t, long *f) {
    const char *p = body, *stop = body + len;
    *t = *f = 0;
    while (p < stop) {
        const char *q = memmem(p, stop - p, "\"default\"", 9);
        if (!q) return;
        q += 9;
        while (q < stop && (*q == ' ' || *q == '\t' || *q == '\r' || *q == '\n')) q++;
        if (q < stop && *q == ':') {
            q++;
            while (q < stop && (*q == ' ' || *q == '\t' || *q == '\r' || *q == '\n')) q++;
            if (q < stop && *q == 't') (*t)++;
            else if (q < stop && *q == 'f') (*f)++;
        }
        p = q;
    }
}

static void count_response(int status, const char *body, size_t len, double t, double ms) {
    long sec = (long)(t - start);
    int in_run = sec >= 0 && sec < MAX_SECONDS;
    completed++;
    if (in_run) per_second[sec]++;
    if (nlat < MAX_SAMPLES) lat[nlat++] = ms;
    if (status < 200 || status >= 300) {
        status_errors++;
        return;
    }
    long nt, nf;
    count_defaults(body, len, &nt, &nf);
    if (nt + nf == 0) nf = 1; /* no notion of defaults: one real answer */
    predictions += nt + nf;
    real += nf;
    defaults += nt;
    if (ms <= slo_ms) {
        within += nt + nf;
        good += nf;
        if (in_run) good_per_second[sec] += nf;
    }
}

/* Returns 1 when a whole response was consumed, 0 when more is needed, -1
 * when the response has no Content-Length (not supported). */
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
    if (clen < 0) return -1;
    if (c->in_len < hlen + (size_t)clen) return 0;
    double t = now_s();
    if (!closed_loop || t < end)  /* closed loop: what comes after the end is not counted */
        count_response(atoi(c->in + 9), c->in + hlen, clen, t, (t - c->due) * 1000.0);
    size_t used = hlen + clen;
    memmove(c->in, c->in + used, c->in_len - used);
    c->in_len -= used;
    c->busy = 0;
    inflight--;
    c->k++;
    return 1;
}

static void on_event(conn_t *c, uint32_t events) {
    if (c->fd < 0) return;
    if (events & (EPOLLERR | EPOLLHUP)) {
        reset_conn(c);
        return;
    }
    if ((events & EPOLLOUT) && c->busy) try_write(c);
    if (!(events & EPOLLIN)) return;
    for (;;) { /* edge-triggered: read until EAGAIN */
        ssize_t r = read(c->fd, c->in + c->in_len, RBUF - c->in_len);
        if (r < 0 && errno == EAGAIN) break;
        if (r <= 0) {
            reset_conn(c);
            break;
        }
        c->in_len += r;
        int p = 0;
        while (c->in_len && (p = try_parse(c)) == 1) {}
        if (p < 0) {
            reset_conn(c);
            break;
        }
    }
}

/* Open loop: walks the schedule up to now (request i is due at
 * start + i/rate, on connection i % C); a connection still busy with an
 * earlier request sends this one when it is free (on_event).  Returns the
 * time the next request is due. */
static double send_due(conn_t *cs, double t) {
    static long next_i;
    for (;;) {
        double due = start + next_i / rate;
        if (due >= end) return end;
        if (due > t) return due;
        start_if_free(&cs[next_i % conns], t);
        next_i++;
    }
}

/* Open loop: requests due before the end but never sent (the server was too
 * slow to free their connection) count as scheduled and unfinished. */
static long open_unfinished(conn_t *cs) {
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
    return unfinished;
}

static void print_result(long unfinished) {
    qsort(lat, nlat, sizeof(double), cmp_double);
#define PCT(p) (nlat ? lat[(long)((nlat - 1) * (p))] : 0.0)
    printf("{\"mode\":\"%s\",\"rate\":%.1f,\"seconds\":%.3f,\"connections\":%d,"
           "\"slo_ms\":%.1f,\"scheduled\":%ld,\"sent\":%ld,\"completed\":%ld,"
           "\"status_errors\":%ld,\"socket_errors\":%ld,\"unfinished\":%ld,"
           "\"predictions\":%ld,\"real\":%ld,\"defaults\":%ld,\"good\":%ld,\"within_slo\":%ld,"
           "\"p50_ms\":%.3f,\"p90_ms\":%.3f,\"p99_ms\":%.3f,\"max_ms\":%.3f,",
           closed_loop ? "closed" : "open", rate, end - start, conns, slo_ms, scheduled, sent,
           completed, status_errors, socket_errors, unfinished, predictions, real, defaults,
           good, within, PCT(0.5), PCT(0.9), PCT(0.99), nlat ? lat[nlat - 1] : 0.0);
    int last = (int)(end - start + (closed_loop ? 0 : 2));
    const long *series[2] = {per_second, good_per_second};
    const char *names[2] = {"per_second", "good_per_second"};
    for (int k = 0; k < 2; k++) {
        printf("%s\"%s\":[", k ? "," : "", names[k]);
        for (int s = 0; s <= last && s < MAX_SECONDS; s++)
            printf("%s%ld", s ? "," : "", series[k][s]);
        printf("]");
    }
    printf("}\n");
}

/* As many descriptors as the hard limit allows: 1,024 connections do not
 * fit under the usual soft limit of 1,024. */
static void raise_fd_limit(void) {
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
        rl.rlim_cur = rl.rlim_max;
        setrlimit(RLIMIT_NOFILE, &rl);
    }
}

int main(int argc, char **argv) {
    if (argc < 10) {
        fprintf(stderr, "usage: %s HOST PORT PATH RATE SECONDS CONNS WIDTH OFFSET SLO_MS "
                        "[PREFIX SUFFIX]\n  RATE 0: closed loop\n", argv[0]);
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
    closed_loop = rate <= 0;
    if (conns < 1 || seconds <= 0) {
        fprintf(stderr, "CONNS and SECONDS must be positive\n");
        return 2;
    }
    raise_fd_limit();
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
        cs[j].idx = j;
        if (open_conn(&cs[j]) < 0) {
            fprintf(stderr, "cannot open connection %d: %s\n", j, strerror(errno));
            return 1;
        }
    }
    start = now_s() + 0.05;
    end = start + seconds;
    double drain = closed_loop ? end : end + 2.0, next_scan = start;
    struct epoll_event evs[1024];
    for (;;) {
        double t = now_s(), next = drain;
        if (t >= drain) break;
        if (closed_loop) {
            /* every free connection sends; after a response it sends at once
             * (on_event), so this sweep only catches reconnected ones */
            if (t >= start && t >= next_scan) {
                for (int j = 0; j < conns; j++) start_if_free(&cs[j], t);
                next_scan = t + 0.05;
            }
            next = t < start ? start : (next_scan < end ? next_scan : end);
        } else {
            if (t >= end && inflight == 0) break;
            next = t < start ? start : send_due(cs, t);
            if (next >= end) next = drain;
        }
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
            on_event(c, evs[i].events);
            if (!c->busy) start_if_free(c, now_s());
        }
    }
    long unfinished = 0;
    if (closed_loop) {
        for (int j = 0; j < conns; j++) unfinished += cs[j].busy;
    } else {
        unfinished = open_unfinished(cs);
    }
    print_result(unfinished);
    return 0;
}
