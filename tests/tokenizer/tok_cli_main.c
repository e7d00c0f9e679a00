/* `moeserve tokenize` as a standalone test binary (cli/cmd_tokenize.c with this main), so the
 * tokenizer tests do not depend on the rest of the moeserve binary building:
 *     tok_cli tokenize --model DIR [--decode]   behaves exactly like moeserve tokenize. */
#include <stdio.h>
#include <string.h>

#include "cli/cli.h"

int main(int argc, char **argv)
{
    if (argc < 2 || strcmp(argv[1], "tokenize")) {
        fprintf(stderr, "usage: tok_cli tokenize [OPTIONS] (see tok_cli tokenize --help)\n");
        return 2;
    }
    return cmd_tokenize(argc - 1, argv + 1);
}
