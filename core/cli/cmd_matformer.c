/*
 * cmd_matformer.c - MatFormer commands:
 *   gemma3n extract --submodel S SRC OUT_DIR|OUT.gguf [--weights FMT]
 *   gemma3n submodels [-m PATH]
 */
#include "cli.h"

#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static const char extract_usage[] =
    "usage: gemma3n extract --submodel S SRC_DIR OUT_DIR [--weights FMT]\n"
    "       gemma3n extract --submodel S SRC_DIR OUT.gguf [--weights FMT]\n"
    "\n"
    "Writes MatFormer submodel S of the checkpoint in SRC_DIR as a standard\n"
    "Hugging Face directory (config.json with per-layer intermediate_size, kept\n"
    "layers renumbered, FFN prefixes, safetensors in the stored dtype, tokenizer\n"
    "files) that other tools can load, or - when OUT ends in .gguf - as a GGUF\n"
    "file (converted with --weights, default: the stored dtypes).\n"
    "\n"
    "  --submodel S       E2B, E4B, a row name of `gemma3n submodels`, or a .json\n"
    "                     spec {\"layers_to_skip\": [...], \"ffn_hidden_dims\": [...]}\n"
    "  -w, --weights FMT  GGUF output only: stored, f32, f16, bf16, q8_0, q4_0\n";

static bool ends_with_gguf(const char *path) {
    size_t n = strlen(path);
    return n > 5 && strcmp(path + n - 5, ".gguf") == 0;
}

/* Extracts to a temporary directory beside `out`, converts it, removes it. */
static int extract_gguf(const char *cmd, gm_model *m, const gm_submodel_spec *spec, const char *out,
                        gm_weight_format format) {
    gm_buf tmp = {0};
    gm_error err;
    if (!gm_buf_printf(&tmp, "%s.extract-%ld", out, (long)getpid())) return cli_fail(cmd, "out of memory");
    int rc = CLI_EXIT_OK;
    if (gm_model_extract_submodel(m, spec, tmp.data, &err) != GM_OK ||
        gm_convert_to_gguf(tmp.data, out, format, NULL, NULL, &err) != GM_OK)
        rc = cli_fail_err(cmd, &err);
    const char *files[] = {"config.json", "model.safetensors", "tokenizer.json", "tokenizer_config.json",
                           "special_tokens_map.json", "generation_config.json", "preprocessor_config.json"};
    for (size_t i = 0; i < GM_ARRAY_LEN(files); i++) {
        gm_buf f = {0};
        if (gm_buf_printf(&f, "%s/%s", tmp.data, files[i])) unlink(f.data);
        gm_buf_free(&f);
    }
    rmdir(tmp.data);
    gm_buf_free(&tmp);
    return rc;
}

int cmd_extract(int argc, char **argv) {
    const char *cmd = argv[0], *submodel = NULL, *weights = "stored", *pos[2];
    const cli_opt opts[] = {
        {"--submodel", NULL, CLI_STR, &submodel, 0, 0},
        {"--weights", "-w", CLI_STR, &weights, 0, 0},
        {NULL, NULL, CLI_FLAG, NULL, 0, 0},
    };
    int n_pos;
    int rc = cli_parse(argc, argv, opts, extract_usage, pos, 2, &n_pos);
    if (rc != CLI_CONTINUE) return rc;
    if (n_pos != 2) return cli_usage_error(cmd, "expected SRC_DIR and OUT_DIR (or OUT.gguf)");
    if (!submodel) return cli_usage_error(cmd, "--submodel is required (e.g. --submodel E2B)");
    gm_error err;
    gm_weight_format format;
    if (gm_weight_format_parse(weights, &format, &err) != GM_OK) return cli_usage_error(cmd, "%s", err.message);
    if (!ends_with_gguf(pos[1]) && format != GM_WEIGHTS_AS_STORED)
        return cli_usage_error(cmd, "--weights applies to .gguf output; a directory keeps the stored dtypes");
    gm_submodel_spec spec;
    if (gm_submodel_resolve(submodel, &spec, &err) != GM_OK) return cli_usage_error(cmd, "--submodel: %s", err.message);
    gm_model_params mp = gm_model_default_params();
    mp.load_tokenizer = 0; /* copied as a file, not needed to slice */
    gm_model *m = NULL;
    if (gm_model_open(pos[0], &mp, &m, &err) != GM_OK) return cli_fail_err(cmd, &err);
    if (ends_with_gguf(pos[1])) rc = extract_gguf(cmd, m, &spec, pos[1], format);
    else if (gm_model_extract_submodel(m, &spec, pos[1], &err) != GM_OK) rc = cli_fail_err(cmd, &err);
    else rc = CLI_EXIT_OK;
    gm_model_free(m);
    if (rc == CLI_EXIT_OK) fprintf(stderr, "gemma3n %s: wrote submodel %s of %s to %s\n", cmd, submodel, pos[0], pos[1]);
    return rc;
}

static const char submodels_usage[] =
    "usage: gemma3n submodels [-m PATH]\n"
    "\n"
    "Lists Google's official MatFormer slicing table (embedded). With -m, each\n"
    "row is checked against the model and its effective parameter count (the\n"
    "text decoder without the two embedding tables) is computed from the\n"
    "model's actual tensor shapes.\n"
    "\n"
    "  -m, --model PATH   a model directory or .gguf file (E4B for the whole table)\n";

int cmd_submodels(int argc, char **argv) {
    const char *cmd = argv[0], *model = NULL;
    const cli_opt opts[] = {{"--model", "-m", CLI_STR, &model, 0, 0}, {NULL, NULL, CLI_FLAG, NULL, 0, 0}};
    int n_pos;
    int rc = cli_parse(argc, argv, opts, submodels_usage, NULL, 0, &n_pos);
    if (rc != CLI_CONTINUE) return rc;
    gm_model *m = NULL;
    if (model && (rc = cli_open_model(cmd, model, 1, NULL, NULL, &m)) != CLI_CONTINUE) return rc;
    printf("%-14s %-36s %6s %8s %7s%s\n", "alias", "name", "layers", "table B", "MMLU", m ? "  this model" : "");
    for (size_t i = 0; i < gm_submodel_count(); i++) {
        gm_submodel_entry e;
        gm_submodel_spec spec;
        gm_submodel_get(i, &e, &spec, NULL);
        printf("%-14s %-36s %6d %8.2f %7s", e.alias, e.name, e.num_layers, e.effective_params_b, e.mmlu);
        if (m) {
            int64_t params;
            gm_error err;
            if (gm_model_check_submodel(m, &spec, &params, &err) == GM_OK) printf("  %.3f B", params / 1e9);
            else printf("  not valid here: %s", err.message);
        }
        printf("\n");
    }
    gm_model_free(m);
    return CLI_EXIT_OK;
}
