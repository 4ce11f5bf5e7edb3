/*
 * tm_test.h - the few macros a unit test program needs. Each test program
 * is its own ctest process; a failed check prints where and exits 1.
 */
#ifndef TM_TEST_H
#define TM_TEST_H

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int tm_test_checks;

#define CHECK(cond)                                                                                \
    do {                                                                                           \
        tm_test_checks++;                                                                          \
        if (!(cond)) {                                                                             \
            fprintf(stderr, "%s:%d: CHECK failed: %s\n", __FILE__, __LINE__, #cond);               \
            exit(1);                                                                               \
        }                                                                                          \
    } while (0)

#define CHECK_EQ_INT(a, b)                                                                         \
    do {                                                                                           \
        long long _a = (long long)(a), _b = (long long)(b);                                        \
        tm_test_checks++;                                                                          \
        if (_a != _b) {                                                                            \
            fprintf(stderr, "%s:%d: %s == %s failed: %lld != %lld\n", __FILE__, __LINE__, #a, #b,  \
                    _a, _b);                                                                       \
            exit(1);                                                                               \
        }                                                                                          \
    } while (0)

#define CHECK_STR(a, b)                                                                            \
    do {                                                                                           \
        const char *_a = (a), *_b = (b);                                                           \
        tm_test_checks++;                                                                          \
        if (!_a || !_b || strcmp(_a, _b) != 0) {                                                   \
            fprintf(stderr, "%s:%d: \"%s\" != \"%s\"\n", __FILE__, __LINE__, _a ? _a : "(null)",   \
                    _b ? _b : "(null)");                                                           \
            exit(1);                                                                               \
        }                                                                                          \
    } while (0)

#define RUN(fn)                                                                                    \
    do {                                                                                           \
        fn();                                                                                      \
        printf("ok %s\n", #fn);                                                                    \
    } while (0)

#define TEST_DONE()                                                                                \
    do {                                                                                           \
        printf("%d checks passed\n", tm_test_checks);                                              \
        return 0;                                                                                  \
    } while (0)

#endif
