/*
 * fuzz_rec_reader.c - libFuzzer target for the encrypted-recording reader
 * (server/rec_crypt.c), which parses a file from disk that an attacker with
 * write access to the recordings could have shaped: the header, every chunk's
 * length word, torn and final chunks, then authenticated decryption on
 * random access, and the offline decrypt-recording path over the same bytes.
 *
 * The input is the file. It lives in a memfd, opened by its /proc path as
 * the server opens a recording. The corpus holds real files written by
 * tm_rec_writer with FUZZ_KEY, so mutations start from valid structure.
 */
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include <glib.h>

#include "telemed/rec_crypt.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* The key the corpus files were written with (tests/fuzz/README.md). */
static const uint8_t FUZZ_KEY[32] = {
    0x00, 0x01, 0x02, 0x03, 0x04, 0x05, 0x06, 0x07, 0x08, 0x09, 0x0a, 0x0b, 0x0c, 0x0d, 0x0e, 0x0f,
    0x10, 0x11, 0x12, 0x13, 0x14, 0x15, 0x16, 0x17, 0x18, 0x19, 0x1a, 0x1b, 0x1c, 0x1d, 0x1e, 0x1f};

static int in_fd = -1;
static char in_path[64], out_path[256];

static void setup(void)
{
    in_fd = memfd_create("fuzz-rec-in", MFD_CLOEXEC);
    if (in_fd < 0)
        abort();
    snprintf(in_path, sizeof(in_path), "/proc/self/fd/%d", in_fd);
    snprintf(out_path, sizeof(out_path), "%s/fuzz-rec-out-%d.mkv", g_get_tmp_dir(), (int)getpid());
}

static void read_all(tm_rec_reader *r, uint64_t salt)
{
    uint64_t size = tm_rec_reader_size(r);
    tm_rec_reader_complete(r);
    static uint8_t buf[70000];
    for (uint64_t pos = 0; pos < size;) {
        int64_t n = tm_rec_reader_pread(r, buf, sizeof(buf), pos);
        if (n <= 0)
            break;
        if ((uint64_t)n > sizeof(buf))
            abort();
        pos += (uint64_t)n;
    }
    /* and a few reads at odd places, across chunk borders and past the end */
    uint64_t at[] = {size / 2, size ? size - 1 : 0, size + 1, salt % (size + 7)};
    for (size_t i = 0; i < sizeof(at) / sizeof(at[0]); i++)
        if (tm_rec_reader_pread(r, buf, 1 + (size_t)(salt % 1000), at[i]) > 1000)
            abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (in_fd < 0)
        setup();
    if (ftruncate(in_fd, 0) < 0 || pwrite(in_fd, data, size, 0) != (ssize_t)size)
        abort();
    char *err = NULL;
    tm_rec_reader *r = tm_rec_reader_open(in_path, FUZZ_KEY, &err);
    g_free(err);
    err = NULL;
    if (r) {
        uint64_t salt = 0;
        memcpy(&salt, data, size < sizeof(salt) ? size : sizeof(salt));
        read_all(r, salt);
        tm_rec_reader_free(r);
    }
    int rc = tm_rec_decrypt_file(in_path, out_path, FUZZ_KEY, &err);
    if (rc != 0 && rc != 1 && !err)
        abort(); /* every failure says why */
    g_free(err);
    unlink(out_path);
    return 0;
}
