/* Byte-level BPE tokenizer for Qwen2/Qwen3 tokenizer.json files, exact against Hugging Face's
 * `tokenizers` library (encode with add_special_tokens=false, decode with
 * skip_special_tokens=false).
 *
 * Pipeline (as in HF): added tokens are matched first on the raw text (leftmost-longest, honouring
 * each token's lstrip/rstrip/single_word/normalized flags); the text between them is NFC
 * normalized, split by the Qwen2 pre-tokenizer regex (implemented by hand, no regex engine),
 * mapped to byte-level symbols and merged by BPE rank.
 *
 * Thread-safety: a loaded tokenizer is immutable; every function taking a `const struct tokenizer *`
 * may be called from any number of threads at once. A stream decoder (struct tok_stream) belongs
 * to one thread at a time.
 *
 * Errors: functions returning int return 0 or a negative MS_ERR_* and fill `err` (may be NULL).
 */
#ifndef MS_TOKENIZER_H
#define MS_TOKENIZER_H

#include <stddef.h>
#include <stdint.h>

#include "common/ms_common.h"

struct tokenizer;

/* Loads MODEL_DIR/tokenizer.json. Unknown or malformed fields, and pipeline components this
 * implementation does not support, fail with MS_ERR_INVALID / MS_ERR_UNSUPPORTED and a message
 * naming the field. Returns NULL on failure. */
struct tokenizer *tok_load(const char *model_dir, struct ms_err *err);

/* Same, from the path of a tokenizer.json file. */
struct tokenizer *tok_load_file(const char *json_path, struct ms_err *err);

/* A GGUF's tokenizer, as plain arrays (the caller owns them; nothing is kept after the call).
 * GGUF strings are not NUL-terminated, so every string is a pointer and a length. */
struct tok_str {
    const char *p;
    uint64_t len;
};

/* Token types of tokenizer.ggml.token_type (llama.cpp's llama_token_type). */
enum {
    TOK_TYPE_NORMAL = 1,
    TOK_TYPE_UNKNOWN = 2,
    TOK_TYPE_CONTROL = 3,
    TOK_TYPE_USER_DEFINED = 4,
    TOK_TYPE_UNUSED = 5,
    TOK_TYPE_BYTE = 6
};

struct tok_vocab {
    struct tok_str model;         /* tokenizer.ggml.model: must be "gpt2" (byte-level BPE) */
    struct tok_str pre;           /* tokenizer.ggml.pre: must be "qwen2" */
    uint64_t n_tokens;            /* tokenizer.ggml.tokens, the token of each id */
    const struct tok_str *tokens;
    uint64_t n_token_type;        /* tokenizer.ggml.token_type (required), one per token: int32 */
    const void *token_type;       /* values in host order, need not be aligned (read in place) */
    uint64_t n_merges;            /* tokenizer.ggml.merges, "left right", by rank */
    const struct tok_str *merges;
    int64_t bos_id, eos_id, pad_id; /* tokenizer.ggml.{bos,eos,padding}_token_id; -1 if absent */
    int add_bos, add_eos;         /* tokenizer.ggml.add_{bos,eos}_token: 0, 1, or -1 if absent */
};

/* Builds the tokenizer a GGUF describes, behaving exactly as tok_load does on the tokenizer.json
 * the GGUF was made from (tools/make_gguf.py; llama.cpp's convert_hf_to_gguf.py writes the same
 * arrays, see below). What "qwen2" stands for in Hugging Face's file (NFC normalizer, Qwen2's Split
 * regex, ByteLevel without prefix space, BPE without ignore_merges) is implied. Token types map
 * back as:
 *   NORMAL        a vocabulary entry (byte-level form), reached through BPE
 *   CONTROL       an added token with special=true (<|im_start|>, <|endoftext|>, ...)
 *   USER_DEFINED  an added token with special=false (<think>, <tool_call>, ...)
 *   UNUSED        no token (the converters' "[PAD<id>]" fillers up to the model's vocab_size)
 * Added tokens get lstrip/rstrip/single_word/normalized false (a GGUF does not carry them; all of
 * Qwen3's are false). llama.cpp's converter also writes CONTROL for non-special added tokens that
 * look special ("<|...|>": Qwen3's <|fim_prefix|> ... <|file_sep|>); from such a file those become
 * special here too, which only matters for allow_special = 0 and tok_is_special.
 * Refused, with the key named: model not gpt2, pre not qwen2, a missing token_type or one whose
 * length is not n_tokens, types UNKNOWN and BYTE or unknown values, an empty added token, a merge not "left right" or naming a piece that
 * is no NORMAL token, bos/eos/pad ids out of range or UNUSED, add_bos_token/add_eos_token true (this
 * tokenizer adds no tokens), and sizes past the limits (2^20 - 1 ids, 2^24 merges, 60000 added
 * tokens, 65536 bytes per string). NULL on failure with err set. */
struct tokenizer *tok_load_vocab(const struct tok_vocab *v, struct ms_err *err);

/* Frees a tokenizer (NULL allowed). */
void tok_free(struct tokenizer *tok);

/* Encodes `len` bytes of UTF-8 `text` (need not be NUL-terminated). On success *ids_out is a
 * malloc'd array of *n_out ids owned by the caller (free() it; it is NULL when *n_out is 0).
 * allow_special = 1: every added token in the text is matched (HF default).
 * allow_special = 0: added tokens marked "special" (<|im_start|>, <|endoftext|>, ...) are encoded
 *   as plain text, like HF's split_special_tokens=True; non-special added tokens (<think>,
 *   <tool_call>, ...) are still matched.
 * Invalid UTF-8 input fails with MS_ERR_INVALID. */
int tok_encode(const struct tokenizer *tok, const char *text, size_t len, int allow_special,
               int32_t **ids_out, size_t *n_out, struct ms_err *err);

/* As tok_encode with allow_special = 1, except that a special added token covering any byte i with
 * no_special[i] != 0 (no_special has len entries) is encoded as plain text, as with
 * allow_special = 0. The server marks the bytes of special tokens that a request's strings spelled
 * out, so that only the chat template's own special tokens become control tokens. */
int tok_encode_masked(const struct tokenizer *tok, const char *text, size_t len, const uint8_t *no_special,
                      int32_t **ids_out, size_t *n_out, struct ms_err *err);

/* Length of the longest added token marked special that s[0..n) starts with; 0 if none. */
size_t tok_special_len(const struct tokenizer *tok, const char *s, size_t n);

/* Decodes ids to text like HF's decode(ids, skip_special_tokens=false): byte-level tokens are
 * mapped back to bytes, added tokens give their content, unknown ids are skipped, and invalid UTF-8
 * is replaced by U+FFFD (one per maximal invalid subsequence, as Rust's from_utf8_lossy does).
 * Returns a malloc'd NUL-terminated string (caller frees), *len_out (may be NULL) gets its length;
 * NULL on allocation failure. */
char *tok_decode(const struct tokenizer *tok, const int32_t *ids, size_t n, size_t *len_out);

/* Number of ids: one more than the largest id of the vocabulary or the added tokens. */
size_t tok_vocab_size(const struct tokenizer *tok);

/* Id of a token given its text: added tokens by content ("<think>", "<|im_end|>", ...), then
 * vocabulary entries by their byte-level form ("Ġthe"). -1 if absent. */
int32_t tok_token_id(const struct tokenizer *tok, const char *token_text);

/* The token's text as stored in tokenizer.json (byte-level form for vocabulary entries, content
 * for added tokens), NUL-terminated and owned by the tokenizer; NULL for an unknown id. */
const char *tok_id_to_piece(const struct tokenizer *tok, int32_t id);

/* The raw bytes the token decodes to (not necessarily valid UTF-8 on its own), owned by the
 * tokenizer; *len gets their count. NULL for an unknown id. */
const char *tok_id_to_bytes(const struct tokenizer *tok, int32_t id, size_t *len);

/* 1 if id is an added token marked special in tokenizer.json, else 0. */
int tok_is_special(const struct tokenizer *tok, int32_t id);

/* Streaming decoder: feeds ids one at a time and returns the text they complete, holding back the
 * bytes of a UTF-8 character until its last byte arrives. Invalid bytes become U+FFFD exactly as in
 * tok_decode, so the concatenation of every push and the finish equals tok_decode of all ids. */
struct tok_stream;

/* Creates a stream decoder over `tok` (which must outlive it); NULL on allocation failure. */
struct tok_stream *tok_stream_create(const struct tokenizer *tok);

/* Adds one id. On success returns 0, *text points at the newly completed text (NUL-terminated,
 * *len bytes, possibly empty) owned by the stream and valid until the next call on it. */
int tok_stream_push(struct tok_stream *s, int32_t id, const char **text, size_t *len,
                    struct ms_err *err);

/* Flushes held-back bytes (an incomplete character becomes U+FFFD) and resets the stream for
 * reuse. Output as for tok_stream_push. */
int tok_stream_finish(struct tok_stream *s, const char **text, size_t *len, struct ms_err *err);

/* Frees a stream decoder (NULL allowed). */
void tok_stream_destroy(struct tok_stream *s);

#endif
