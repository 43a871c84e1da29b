/*
 * main.c - `gemma3n`, the command-line tool: dispatches to a subcommand.
 * See cli.h for how the files divide the work.
 */
#include "cli.h"

#include <string.h>

typedef struct command {
    const char *name;
    int (*run)(int argc, char **argv); /* argv[0] is the command name */
    const char *summary;
} command;

static const command commands[] = {
    {"generate", cmd_generate, "complete a prompt, streaming the text (or --json)"},
    {"chat", cmd_chat, "interactive multi-turn chat on stdin/stdout"},
    {"tokenize", cmd_tokenize, "text -> token ids as JSON (one text, or --jsonl lines)"},
    {"logits", cmd_logits, "token ids -> .npy with the logits of every position"},
    {"info", cmd_info, "describe a model directory or .gguf file"},
    {"convert", gm_cli_convert, "Hugging Face directory -> .gguf (optionally q8_0 / q4_0)"},
    {"extract", cmd_extract, "write a MatFormer submodel as its own HF directory (or .gguf)"},
    {"submodels", cmd_submodels, "list the official MatFormer submodels (with -m: their sizes)"},
    {"bench", cmd_bench, "prompt / generation speed, load time, peak RSS (like llama-bench)"},
};

static void usage(FILE *f) {
    fputs("usage: gemma3n COMMAND [options]     (gemma3n COMMAND --help for its options)\n"
          "\n"
          "Gemma 3n inference on the CPU, from a Hugging Face model directory\n"
          "(config.json + *.safetensors + tokenizer.json, e.g. google/gemma-3n-E2B-it)\n"
          "or a .gguf file.\n"
          "\n"
          "commands:\n", f);
    for (size_t i = 0; i < GM_ARRAY_LEN(commands); i++)
        fprintf(f, "  %-10s %s\n", commands[i].name, commands[i].summary);
    fputs("\n"
          "  --help     this text\n"
          "  --version  print the version\n"
          "\n"
          "example:\n"
          "  gemma3n generate -m gemma-3n-E2B-it --chat -p \"Why is the sky blue?\" -n 128\n"
          "\n"
          "Exit status: 0 success, 1 runtime error, 2 usage error.\n", f);
}

static const command *find_command(const char *name) {
    for (size_t i = 0; i < GM_ARRAY_LEN(commands); i++)
        if (strcmp(commands[i].name, name) == 0) return &commands[i];
    return NULL;
}

/* `gemma3n help [COMMAND]` */
static int help(int argc, char **argv) {
    const command *c = argc > 1 ? find_command(argv[1]) : NULL;
    if (argc > 1 && !c) return cli_usage_error(NULL, "unknown command '%s'", argv[1]);
    if (!c) {
        usage(stdout);
        return CLI_EXIT_OK;
    }
    static char help_flag[] = "--help";
    char *args[] = {argv[1], help_flag, NULL};
    return c->run(2, args);
}

int main(int argc, char **argv) {
    if (argc < 2) {
        usage(stderr);
        return CLI_EXIT_USAGE;
    }
    const char *name = argv[1];
    if (strcmp(name, "--help") == 0 || strcmp(name, "-h") == 0) {
        usage(stdout);
        return CLI_EXIT_OK;
    }
    if (strcmp(name, "--version") == 0 || strcmp(name, "version") == 0) {
        printf("gemma3n %s\n", GEMMA3N_VERSION_STRING);
        return CLI_EXIT_OK;
    }
    if (strcmp(name, "help") == 0) return help(argc - 1, argv + 1);
    const command *c = find_command(name);
    if (!c) {
        if (name[0] == '-') return cli_usage_error(NULL, "unknown option '%s' (options go after the command)", name);
        return cli_usage_error(NULL, "unknown command '%s'", name);
    }
    return c->run(argc - 1, argv + 1);
}
