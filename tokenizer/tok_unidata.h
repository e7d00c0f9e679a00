/* Unicode tables for the tokenizer (generated into tok_unidata.c by tests/tokenizer/gen_unidata.py)
 * and the small helpers that read them. Internal to the tokenizer module. */
#ifndef MS_TOK_UNIDATA_H
#define MS_TOK_UNIDATA_H

#include <stddef.h>
#include <stdint.h>

/* Pre-tokenizer classes (low 2 bits of the class table). */
enum { TOK_C_OTHER = 0, TOK_C_LETTER = 1, TOK_C_NUMBER = 2, TOK_C_SPACE = 3 };
/* Bit set for characters that are not NFC boundaries (need the full NFC algorithm). */
#define TOK_C_NFC_UNSAFE 4
/* Bit set for word characters as Rust's regex \w defines them (added tokens' single_word). */
#define TOK_C_WORD 8

struct tok_ccc {
    uint32_t cp;
    uint8_t ccc;
};
struct tok_decomp {
    uint32_t cp;
    uint16_t off;
    uint8_t len;
};
struct tok_comp {
    uint64_t key; /* first << 21 | second */
    uint32_t cp;
};

extern const uint16_t tok_cls_stage1[];
extern const uint8_t tok_cls_stage2[];
extern const struct tok_ccc tok_ccc_table[];
extern const size_t tok_ccc_count;
extern const uint32_t tok_decomp_pool[];
extern const struct tok_decomp tok_decomp_table[];
extern const size_t tok_decomp_count;
extern const struct tok_comp tok_comp_table[];
extern const size_t tok_comp_count;

static inline unsigned tok_cls(uint32_t cp)
{
    return tok_cls_stage2[(size_t)tok_cls_stage1[cp >> 8] * 256 + (cp & 255)];
}

#endif
