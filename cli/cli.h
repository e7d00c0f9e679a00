/* Subcommands of the moeserve binary. Each takes argv starting at the command name and returns
 * the process exit code (0 ok, 1 runtime failure, 2 usage error). */
#ifndef MS_CLI_H
#define MS_CLI_H

int cmd_generate(int argc, char **argv);
int cmd_serve(int argc, char **argv);
int cmd_forward(int argc, char **argv);
int cmd_tokenize(int argc, char **argv);
int cmd_template(int argc, char **argv);
int cmd_quantize(int argc, char **argv);

#endif
