/* Small helpers shared by the subcommands: argument values and id lists. */
#ifndef MS_CLI_UTIL_H
#define MS_CLI_UTIL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Parses "1,2,3" into a malloc'd array (*ids, caller frees). Returns 0, or -1 with a message on
 * stderr naming `flag`. */
int cli_parse_ids(const char *flag, const char *text, int32_t **ids, int *n);

/* Parses an integer flag value in [lo, hi]; -1 with a message on failure. */
int cli_parse_int(const char *flag, const char *text, long lo, long hi, long *out);

/* Parses a finite float flag value in [lo, hi]; -1 with a message on failure. */
int cli_parse_double(const char *flag, const char *text, double lo, double hi, double *out);

/* Default compute threads: the number of online cores. */
int cli_default_threads(void);



struct model;
/* Loads a model directory with progress on a terminal and one summary line on stderr; on
 * failure prints the one-line error and returns -1. */
int cli_load_model(const char *dir, struct model **out);

/* The same, converting the weights at load when `quantize` names a scheme (NULL: the environment
 * variable MOESERVE_QUANTIZE, else none; "none" or "" keeps the stored dtype), and keeping the
 * file mapping when `load_mode` is "mmap" (NULL: MOESERVE_LOAD_MODE, else "copy"). With
 * MOESERVE_BF16_ACTIVATIONS=1, BF16 matmuls take bf16-rounded inputs (model_load_opts). */
int cli_load_model_quant(const char *dir, const char *quantize, const char *load_mode, struct model **out);
#endif
