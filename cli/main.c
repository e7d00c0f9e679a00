/* moeserve command line: dispatches to one subcommand per file (cmd_*.c). */
#include <stdio.h>
#include <string.h>

#include "cli/cli.h"

static const struct {
    const char *name;
    int (*run)(int argc, char **argv);
    const char *help;
} commands[] = {
    {"serve", cmd_serve, "serve the model over an OpenAI-compatible HTTP API"},
    {"generate", cmd_generate, "generate a continuation of a prompt"},
    {"forward", cmd_forward, "dump the logits of every prompt position (testing)"},
    {"tokenize", cmd_tokenize, "encode/decode JSON lines with the model's tokenizer"},
    {"template", cmd_template, "render the chat template for a JSON request on stdin"},
    {"quantize", cmd_quantize, "convert a Hugging Face checkpoint or a GGUF into a GGUF (q4_k_m, q8_0, ...)"},
};

static void usage(FILE *out)
{
    fprintf(out, "usage: moeserve COMMAND [OPTIONS]\n\ncommands:\n");
    for (size_t i = 0; i < sizeof commands / sizeof commands[0]; i++)
        fprintf(out, "  %-10s %s\n", commands[i].name, commands[i].help);
    fprintf(out, "\n'moeserve COMMAND --help' explains each command's options.\n");
}

int main(int argc, char **argv)
{
    if (argc < 2 || !strcmp(argv[1], "--help") || !strcmp(argv[1], "-h")) {
        usage(argc < 2 ? stderr : stdout);
        return argc < 2 ? 2 : 0;
    }
    for (size_t i = 0; i < sizeof commands / sizeof commands[0]; i++)
        if (!strcmp(argv[1], commands[i].name)) return commands[i].run(argc - 1, argv + 1);
    fprintf(stderr, "moeserve: unknown command '%s' (see moeserve --help)\n", argv[1]);
    return 2;
}
