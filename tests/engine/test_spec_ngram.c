/* spec_ngram_draft against hand-worked token strings: the longest n-gram wins, the latest match
 * wins, a close match repeats periodically, and the limits (no match, max_draft, min n-gram). */
#include <string.h>

#include "engine/spec_ngram.h"
#include "tests/testhelp.h"

static int draft(const int32_t *t, int n, int lo, int hi, int max, int32_t *out)
{
    memset(out, 0xff, 16 * sizeof *out);
    return spec_ngram_draft(t, n, lo, hi, max, out);
}

static int same(const int32_t *a, const int32_t *b, int n)
{
    return !memcmp(a, b, (size_t)n * sizeof *a);
}

int main(void)
{
    int32_t out[16];
    /* 1 2 3 9 | 7 2 3 5 | 1 2 3: "1 2 3" (3-gram) matched at 0 -> 9 7 2; the 2-gram "2 3" would
     * have matched later, at 5 (-> 5 1 2) */
    const int32_t a[] = {1, 2, 3, 9, 7, 2, 3, 5, 1, 2, 3};
    test_cond("longest n-gram first", draft(a, 11, 2, 3, 3, out) == 3 && same(out, (int32_t[]){9, 7, 2}, 3));
    test_cond("with max 2: the latest 2-gram", draft(a, 11, 2, 2, 3, out) == 3 && same(out, (int32_t[]){5, 1, 2}, 3));
    test_cond("max_draft caps", draft(a, 11, 2, 3, 2, out) == 2 && same(out, (int32_t[]){9, 7}, 2) && out[2] == -1);
    /* 4 5 6 4 5: "4 5" matched 3 back: period 3 -> 6 4 5 6 4 */
    const int32_t b[] = {4, 5, 6, 4, 5};
    test_cond("periodic continuation", draft(b, 5, 2, 4, 5, out) == 5 && same(out, (int32_t[]){6, 4, 5, 6, 4}, 5));
    const int32_t c[] = {8, 8, 8};
    test_cond("a run repeats", draft(c, 3, 1, 2, 4, out) == 4 && same(out, (int32_t[]){8, 8, 8, 8}, 4));
    const int32_t d[] = {1, 2, 3, 4, 5, 3};
    test_cond("no 2-gram match", draft(d, 6, 2, 4, 4, out) == 0);
    test_cond("a 1-gram match when allowed", draft(d, 6, 1, 4, 4, out) == 4 && same(out, (int32_t[]){4, 5, 3, 4}, 4));
    test_cond("max_draft 0", draft(a, 11, 2, 3, 0, out) == 0);
    test_cond("too short for the n-gram", draft(c, 1, 1, 2, 4, out) == 0 && draft(b, 2, 2, 2, 4, out) == 0);
    test_report();
}
