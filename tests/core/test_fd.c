/* Reading secrets from file descriptors straight into guarded memory. */
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <memguard/memguard.h>

#include "harness.h"

/* A temporary file holding data, opened for reading at offset 0. */
static int file_with(const void *data, size_t n)
{
    char path[] = "/tmp/mgt-fd-XXXXXX";
    int fd = mkstemp(path);
    if (fd < 0)
        return -1;
    unlink(path);
    if (write(fd, data, n) != (ssize_t)n || lseek(fd, 0, SEEK_SET) != 0) {
        close(fd);
        return -1;
    }
    return fd;
}

struct feeder {
    int fd;
    const unsigned char *data;
    size_t n;
};

static void *feed(void *arg)
{
    struct feeder *f = arg;
    size_t off = 0;
    while (off < f->n) {
        size_t chunk = f->n - off < 1000 ? f->n - off : 1000; /* many short writes */
        ssize_t w = write(f->fd, f->data + off, chunk);
        if (w <= 0)
            break;
        off += (size_t)w;
    }
    close(f->fd);
    return NULL;
}

static void test_from_fd_reads_exactly_size(void)
{
    const char text[] = "0123456789abcdef";
    int fd = file_with(text, 16);
    CU_ASSERT_FATAL(fd >= 0);
    mg_buffer *b = mg_buffer_from_fd(fd, 10);
    CU_ASSERT_PTR_NOT_NULL_FATAL(b);
    CU_ASSERT_TRUE(mg_buffer_equal(b, "0123456789", 10));
    CU_ASSERT_FALSE(mg_buffer_is_mutable(b));
    char rest[8] = {0};
    CU_ASSERT_EQUAL(read(fd, rest, sizeof rest), 6); /* nothing beyond size was consumed */
    CU_ASSERT_EQUAL(memcmp(rest, "abcdef", 6), 0);
    mg_buffer_destroy(b);
    close(fd);
}

static void test_from_fd_short_input_is_enodata(void)
{
    int fd = file_with("abc", 3);
    CU_ASSERT_FATAL(fd >= 0);
    CU_ASSERT_PTR_NULL(mg_buffer_from_fd(fd, 4));
    CU_ASSERT_EQUAL(mg_last_error(), MG_ENODATA);
    close(fd);
    CU_ASSERT_PTR_NULL(mg_buffer_from_fd(-1, 4));
    CU_ASSERT_EQUAL(mg_last_error(), MG_EINVAL);
    CU_ASSERT_PTR_NULL(mg_buffer_from_fd(fd, 4)); /* closed descriptor */
    CU_ASSERT_EQUAL(mg_last_error(), MG_EIO);
}

static void test_until_on_file_seeks_back_after_delimiter(void)
{
    const char text[] = "secret-key\nnext line\n";
    int fd = file_with(text, strlen(text));
    CU_ASSERT_FATAL(fd >= 0);
    mg_buffer *b = mg_buffer_from_fd_until(fd, '\n');
    CU_ASSERT_PTR_NOT_NULL_FATAL(b);
    CU_ASSERT_EQUAL(mg_buffer_size(b), 10);
    CU_ASSERT_TRUE(mg_buffer_equal(b, "secret-key", 10));
    char rest[32] = {0};
    CU_ASSERT_EQUAL(read(fd, rest, sizeof rest), 10);
    CU_ASSERT_STRING_EQUAL(rest, "next line\n");
    mg_buffer_destroy(b);
    close(fd);
}

static void test_until_on_pipe_consumes_nothing_past_delimiter(void)
{
    int p[2];
    CU_ASSERT_FATAL(pipe(p) == 0);
    const char text[] = "hunter2\0tail";
    CU_ASSERT_FATAL(write(p[1], text, sizeof text - 1) == (ssize_t)(sizeof text - 1));
    close(p[1]);
    mg_buffer *b = mg_buffer_from_fd_until(p[0], '\0');
    CU_ASSERT_PTR_NOT_NULL_FATAL(b);
    CU_ASSERT_TRUE(mg_buffer_equal(b, "hunter2", 7));
    char rest[8] = {0};
    CU_ASSERT_EQUAL(read(p[0], rest, sizeof rest), 4);
    CU_ASSERT_EQUAL(memcmp(rest, "tail", 4), 0);
    mg_buffer_destroy(b);
    close(p[0]);
}

static void test_until_without_delimiter_reads_to_eof(void)
{
    int fd = file_with("no newline", 10);
    CU_ASSERT_FATAL(fd >= 0);
    mg_buffer *b = mg_buffer_from_fd_until(fd, '\n');
    CU_ASSERT_PTR_NOT_NULL_FATAL(b);
    CU_ASSERT_TRUE(mg_buffer_equal(b, "no newline", 10));
    mg_buffer_destroy(b);
    close(fd);
    /* A delimiter first: nothing before it is "no data". */
    fd = file_with("\nx", 2);
    CU_ASSERT_PTR_NULL(mg_buffer_from_fd_until(fd, '\n'));
    CU_ASSERT_EQUAL(mg_last_error(), MG_ENODATA);
    close(fd);
}

static void test_all_grows_across_pages_from_pipe(void)
{
    size_t sizes[] = {1, 4063, 4064, 4065, 100000, 1 << 20};
    for (size_t i = 0; i < sizeof sizes / sizeof sizes[0]; i++) {
        size_t n = sizes[i];
        unsigned char *data = malloc(n);
        CU_ASSERT_PTR_NOT_NULL_FATAL(data);
        for (size_t j = 0; j < n; j++)
            data[j] = (unsigned char)(j * 131 + (j >> 8));
        int p[2];
        CU_ASSERT_FATAL(pipe(p) == 0);
        struct feeder f = {p[1], data, n};
        pthread_t t;
        CU_ASSERT_FATAL(pthread_create(&t, NULL, feed, &f) == 0);
        mg_buffer *b = mg_buffer_from_fd_all(p[0]);
        pthread_join(t, NULL);
        close(p[0]);
        CU_ASSERT_PTR_NOT_NULL_FATAL(b);
        CU_ASSERT_EQUAL(mg_buffer_size(b), n);
        CU_ASSERT_TRUE(mg_buffer_equal(b, data, n));
        CU_ASSERT_FALSE(mg_buffer_is_mutable(b));
        mg_buffer_destroy(b);
        free(data);
    }
    /* Growth leaves no intermediate buffer behind. */
    CU_ASSERT_EQUAL(mg_get_stats().live_buffers, 0);
}

static void test_all_on_empty_input_is_enodata(void)
{
    int fd = open("/dev/null", O_RDONLY);
    CU_ASSERT_FATAL(fd >= 0);
    CU_ASSERT_PTR_NULL(mg_buffer_from_fd_all(fd));
    CU_ASSERT_EQUAL(mg_last_error(), MG_ENODATA);
    close(fd);
    CU_ASSERT_EQUAL(mg_get_stats().live_buffers, 0);
}

static CU_TestInfo fd_tests[] = {
    {"from_fd reads exactly size bytes", test_from_fd_reads_exactly_size},
    {"from_fd short input is ENODATA, bad fd clean", test_from_fd_short_input_is_enodata},
    {"until on a file seeks back after the delimiter", test_until_on_file_seeks_back_after_delimiter},
    {"until on a pipe consumes nothing past the delimiter", test_until_on_pipe_consumes_nothing_past_delimiter},
    {"until without delimiter reads to EOF", test_until_without_delimiter_reads_to_eof},
    {"all grows across pages from a pipe", test_all_grows_across_pages_from_pipe},
    {"all on empty input is ENODATA", test_all_on_empty_input_is_enodata},
    CU_TEST_INFO_NULL,
};

int main(void)
{
    CU_SuiteInfo suites[] = {
        {"fd", NULL, NULL, NULL, NULL, fd_tests},
        CU_SUITE_INFO_NULL,
    };
    return mgt_main(suites);
}
