/* A minimal test helper in the spirit of Redis's testhelp.h: count checks, report, exit code. */
#ifndef MS_TESTHELP_H
#define MS_TESTHELP_H

#include <stdio.h>

static int test_failed_count = 0, test_passed_count = 0;

#define test_cond(descr, cond)                                                                    \
    do {                                                                                          \
        if (cond) {                                                                               \
            test_passed_count++;                                                                  \
        } else {                                                                                  \
            test_failed_count++;                                                                  \
            fprintf(stderr, "FAIL %s:%d: %s\n", __FILE__, __LINE__, descr);                       \
        }                                                                                         \
    } while (0)

#define test_report()                                                                             \
    do {                                                                                          \
        printf("%d passed, %d failed\n", test_passed_count, test_failed_count);                   \
        return test_failed_count ? 1 : 0;                                                         \
    } while (0)

#endif
