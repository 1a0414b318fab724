/*
 * tls_handshakes: full TLS handshakes against a server on loopback, from
 * parallel threads, each on a new connection with no session reuse (no cache,
 * no tickets), optionally followed by one HTTP request whose body is checked.
 *
 * Used by tests/tls (a load with zero failures) and bench/tls_bench.sh
 * (throughput with and without memguard). It is a plain OpenSSL client: run
 * it with OPENSSL_CONF=/dev/null so that only the server side is measured.
 *
 *   tls_handshakes -p PORT [-n TOTAL] [-t THREADS] [-v 1.2|1.3] [-s SIGALGS]
 *                  [-c CIPHERS] [-g GROUPS] [-b EXPECTED_BODY_SUBSTRING] [-q]
 *
 * Prints "handshakes: OK ok, F failed, S s, R/s" and exits 0 only if every
 * handshake (and request) succeeded.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <openssl/err.h>
#include <openssl/ssl.h>

static struct {
    int port;
    long total;
    int threads;
    int version; /* 0: any */
    char *sigalgs, *groups; /* the OpenSSL macros cast away const */
    const char *ciphers, *body;
    bool quiet;
} opt = {.total = 1000, .threads = 4};

static SSL_CTX *ctx;
static atomic_long next_conn, ok_count, fail_count;
static atomic_int errors_shown;

static void report(long conn, const char *what)
{
    if (opt.quiet || atomic_fetch_add(&errors_shown, 1) >= 5)
        return;
    char err[256] = "";
    unsigned long e = ERR_peek_last_error();
    if (e != 0)
        ERR_error_string_n(e, err, sizeof err);
    fprintf(stderr, "connection %ld: %s %s\n", conn, what, err);
}

static int connect_loopback(void)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    if (fd < 0)
        return -1;
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)opt.port)};
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    int one = 1;
    if (setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one) != 0 ||
        connect(fd, (struct sockaddr *)&a, sizeof a) != 0) {
        close(fd);
        return -1;
    }
    return fd;
}

/* One connection: handshake, then (with -b) GET / and look for the expected text. */
static bool one(long conn)
{
    int fd = connect_loopback();
    if (fd < 0) {
        report(conn, strerror(errno));
        return false;
    }
    SSL *s = SSL_new(ctx);
    bool ok = false;
    if (s == NULL || SSL_set_fd(s, fd) != 1 || SSL_set_tlsext_host_name(s, "localhost") != 1) {
        report(conn, "SSL_new");
        goto out;
    }
    if (SSL_connect(s) != 1) {
        report(conn, "handshake failed");
        goto out;
    }
    if (opt.body != NULL) {
        static const char req[] = "GET / HTTP/1.0\r\nHost: localhost\r\n\r\n";
        char resp[4096];
        int got = 0, n;
        if (SSL_write(s, req, (int)sizeof req - 1) != (int)sizeof req - 1) {
            report(conn, "request failed");
            goto out;
        }
        while (got < (int)sizeof resp - 1 && (n = SSL_read(s, resp + got, (int)sizeof resp - 1 - got)) > 0)
            got += n;
        resp[got] = '\0';
        if (strstr(resp, opt.body) == NULL) {
            report(conn, "response lacks the expected body");
            goto out;
        }
    }
    ok = true;
    SSL_shutdown(s);
out:
    SSL_free(s);
    close(fd);
    ERR_clear_error();
    return ok;
}

static void *worker(void *arg)
{
    (void)arg;
    long c;
    while ((c = atomic_fetch_add(&next_conn, 1)) < opt.total)
        atomic_fetch_add(one(c) ? &ok_count : &fail_count, 1);
    OPENSSL_thread_stop();
    return NULL;
}

static void usage(void)
{
    fprintf(stderr, "usage: tls_handshakes -p PORT [-n TOTAL] [-t THREADS] [-v 1.2|1.3] [-s SIGALGS] [-c CIPHERS] "
                    "[-g GROUPS] [-b BODY] [-q]\n");
    exit(2);
}

int main(int argc, char **argv)
{
    int ch;
    while ((ch = getopt(argc, argv, "p:n:t:v:s:c:g:b:q")) != -1) {
        switch (ch) {
        case 'p': opt.port = atoi(optarg); break;
        case 'n': opt.total = atol(optarg); break;
        case 't': opt.threads = atoi(optarg); break;
        case 'v':
            opt.version = strcmp(optarg, "1.2") == 0 ? TLS1_2_VERSION : strcmp(optarg, "1.3") == 0 ? TLS1_3_VERSION : -1;
            break;
        case 's': opt.sigalgs = optarg; break;
        case 'c': opt.ciphers = optarg; break;
        case 'g': opt.groups = optarg; break;
        case 'b': opt.body = optarg; break;
        case 'q': opt.quiet = true; break;
        default: usage();
        }
    }
    if (opt.port <= 0 || opt.port > 65535 || opt.total <= 0 || opt.threads <= 0 || opt.threads > 256 ||
        opt.version < 0)
        usage();
    if ((ctx = SSL_CTX_new(TLS_client_method())) == NULL)
        return 2;
    /* Full handshakes only: no session cache, no tickets. The server's certificate is not verified (loopback). */
    SSL_CTX_set_session_cache_mode(ctx, SSL_SESS_CACHE_OFF);
    SSL_CTX_set_options(ctx, SSL_OP_NO_TICKET);
    if ((opt.version != 0 &&
         (!SSL_CTX_set_min_proto_version(ctx, opt.version) || !SSL_CTX_set_max_proto_version(ctx, opt.version))) ||
        (opt.sigalgs != NULL && !SSL_CTX_set1_sigalgs_list(ctx, opt.sigalgs)) ||
        (opt.ciphers != NULL && !SSL_CTX_set_cipher_list(ctx, opt.ciphers)) ||
        (opt.groups != NULL && !SSL_CTX_set1_groups_list(ctx, opt.groups))) {
        fprintf(stderr, "tls_handshakes: bad -v, -s, -c or -g\n");
        return 2;
    }
    struct timespec t0, t1;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    pthread_t th[256];
    for (int i = 0; i < opt.threads; i++)
        if (pthread_create(&th[i], NULL, worker, NULL) != 0) {
            fprintf(stderr, "tls_handshakes: cannot start threads\n");
            return 2;
        }
    for (int i = 0; i < opt.threads; i++)
        pthread_join(th[i], NULL);
    clock_gettime(CLOCK_MONOTONIC, &t1);
    double secs = (double)(t1.tv_sec - t0.tv_sec) + (double)(t1.tv_nsec - t0.tv_nsec) / 1e9;
    long ok = atomic_load(&ok_count), failed = atomic_load(&fail_count);
    printf("handshakes: %ld ok, %ld failed, %.2f s, %.0f/s\n", ok, failed, secs, (double)ok / secs);
    SSL_CTX_free(ctx);
    return failed == 0 && ok == opt.total ? 0 : 1;
}
