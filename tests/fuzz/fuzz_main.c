/*
 * fuzz_main.c - a stand-in for libFuzzer's driver, so that any fuzz target
 * (LLVMFuzzerTestOneInput) also runs under gcc in the normal ctest suite.
 *
 *   fuzz_x_smoke [-runs=N] [-seed=S] [FILE|DIR]...
 *
 * Each seed (file, or every regular file of a directory) is run as is, then N
 * inputs are made by mutating seeds (bit flips, byte edits, inserts, deletes,
 * splices, truncation) with a deterministic PRNG, so a failure reproduces from
 * the seed number. Not coverage-guided: it is a smoke test that the parser
 * survives garbage, not a replacement for a real fuzzing run.
 */
#include <dirent.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define FUZZ_MAX_INPUT 12000
#define MAX_SEEDS 1024

struct seed {
    uint8_t *data;
    size_t len;
};

static struct seed seeds[MAX_SEEDS];
static size_t nseeds;
static uint64_t rng_state;

static uint64_t rnd(void)
{
    /* xorshift64*: tiny, deterministic, good enough to pick mutations. */
    rng_state ^= rng_state >> 12;
    rng_state ^= rng_state << 25;
    rng_state ^= rng_state >> 27;
    return rng_state * 0x2545F4914F6CDD1DULL;
}

static size_t rnd_below(size_t n)
{
    return n ? (size_t)(rnd() % n) : 0;
}

static void add_seed(const uint8_t *data, size_t len)
{
    if (nseeds >= MAX_SEEDS || len > FUZZ_MAX_INPUT)
        return;
    uint8_t *copy = malloc(len ? len : 1);
    if (!copy)
        return;
    memcpy(copy, data, len);
    seeds[nseeds++] = (struct seed){copy, len};
}

static void load_file(const char *path)
{
    FILE *f = fopen(path, "rb");
    if (!f)
        return;
    static uint8_t buf[FUZZ_MAX_INPUT + 1];
    size_t n = fread(buf, 1, sizeof buf, f);
    fclose(f);
    if (n <= FUZZ_MAX_INPUT)
        add_seed(buf, n);
}

static void load_path(const char *path)
{
    struct stat st;
    if (stat(path, &st) != 0) {
        fprintf(stderr, "fuzz: cannot stat %s\n", path);
        exit(2);
    }
    if (!S_ISDIR(st.st_mode)) {
        load_file(path);
        return;
    }
    DIR *d = opendir(path);
    if (!d)
        return;
    struct dirent *e;
    while ((e = readdir(d)) != NULL) {
        if (e->d_name[0] == '.')
            continue;
        char full[4096];
        snprintf(full, sizeof full, "%s/%s", path, e->d_name);
        if (stat(full, &st) == 0 && S_ISREG(st.st_mode))
            load_file(full);
    }
    closedir(d);
}

static const uint8_t interesting[] = {'.', '"', '{', '}', ':', ',',  '[',  ']', '\\', '-',
                                      '_', '=', '0', 'A', 0,   0xff, 0x80, ' ', 'e',  'u'};

/* Mutates buf (len bytes, capacity FUZZ_MAX_INPUT) in place; returns the new length. */
static size_t mutate(uint8_t *buf, size_t len)
{
    int steps = 1 + (int)rnd_below(4);
    for (int s = 0; s < steps; s++) {
        switch (rnd_below(8)) {
        case 0: /* flip a bit */
            if (len)
                buf[rnd_below(len)] ^= (uint8_t)(1u << rnd_below(8));
            break;
        case 1: /* set a random byte */
            if (len)
                buf[rnd_below(len)] = (uint8_t)rnd();
            break;
        case 2: /* set an interesting byte */
            if (len)
                buf[rnd_below(len)] = interesting[rnd_below(sizeof interesting)];
            break;
        case 3: /* insert a byte */
            if (len < FUZZ_MAX_INPUT) {
                size_t at = rnd_below(len + 1);
                memmove(buf + at + 1, buf + at, len - at);
                buf[at] =
                    rnd_below(2) ? (uint8_t)rnd() : interesting[rnd_below(sizeof interesting)];
                len++;
            }
            break;
        case 4: /* delete a run */
            if (len) {
                size_t at = rnd_below(len), n = 1 + rnd_below(len - at < 16 ? len - at : 16);
                memmove(buf + at, buf + at + n, len - at - n);
                len -= n;
            }
            break;
        case 5: /* truncate */
            len = rnd_below(len + 1);
            break;
        case 6: /* duplicate a chunk (grows toward the size limits) */
            if (len) {
                size_t at = rnd_below(len), n = 1 + rnd_below(len - at);
                if (len + n <= FUZZ_MAX_INPUT) {
                    memmove(buf + at + n, buf + at, len - at);
                    len += n;
                }
            }
            break;
        default: /* splice in part of another seed */
            if (nseeds) {
                const struct seed *o = &seeds[rnd_below(nseeds)];
                size_t at = rnd_below(len + 1), from = rnd_below(o->len + 1);
                size_t n = rnd_below(o->len - from + 1);
                if (at + n <= FUZZ_MAX_INPUT) {
                    memcpy(buf + at, o->data + from, n);
                    if (at + n > len)
                        len = at + n;
                }
            }
            break;
        }
    }
    return len;
}

int main(int argc, char **argv)
{
    long runs = 10000;
    unsigned long long seed = 1;
    for (int i = 1; i < argc; i++) {
        if (strncmp(argv[i], "-runs=", 6) == 0)
            runs = strtol(argv[i] + 6, NULL, 10);
        else if (strncmp(argv[i], "-seed=", 6) == 0)
            seed = strtoull(argv[i] + 6, NULL, 10);
        else if (argv[i][0] == '-')
            fprintf(stderr, "fuzz: ignoring %s\n", argv[i]);
        else
            load_path(argv[i]);
    }
    rng_state = seed ? seed : 1;
    if (nseeds == 0)
        add_seed((const uint8_t *)"", 0);

    for (size_t i = 0; i < nseeds; i++)
        LLVMFuzzerTestOneInput(seeds[i].data, seeds[i].len);

    uint8_t *buf = malloc(FUZZ_MAX_INPUT);
    if (!buf)
        return 1;
    for (long r = 0; r < runs; r++) {
        const struct seed *s = &seeds[rnd_below(nseeds)];
        memcpy(buf, s->data, s->len);
        size_t len = mutate(buf, s->len);
        /* An exact-size heap copy, so ASan sees any read past the end. */
        uint8_t *in = malloc(len ? len : 1);
        if (!in)
            return 1;
        memcpy(in, buf, len);
        LLVMFuzzerTestOneInput(in, len);
        free(in);
    }
    free(buf);
    for (size_t i = 0; i < nseeds; i++)
        free(seeds[i].data);
    printf("fuzz: %zu seeds, %ld mutated runs, seed %llu: ok\n", nseeds, runs, seed);
    return 0;
}
