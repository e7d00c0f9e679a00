/* Engine options shared by every command that runs the engine (generate, serve): one parser,
 * one help text, one environment variable per flag. */
#ifndef MS_CLI_ENGINE_OPTS_H
#define MS_CLI_ENGINE_OPTS_H

#include <stdio.h>

#include "engine/engine.h"

/* If `flag` is an engine option, parses `value` into cfg and returns 1 (or -1 with a message on
 * stderr for a bad value); returns 0 for any other flag. */
int engine_opts_parse(struct engine_config *cfg, const char *flag, const char *value);

/* Applies MOESERVE_* environment variables (flags given later override them). -1 on a bad value. */
int engine_opts_from_env(struct engine_config *cfg);

void engine_opts_help(FILE *out);

/* Parses "4GiB", "512MiB", "1e9", "2G" into bytes; -1 on failure. */
int engine_opts_parse_bytes(const char *text, size_t *out);

#endif
