/*
 * test_cli_util.c - the CLI's helpers without a model: the option parser,
 * --tokens lists and JSON string escaping (control characters, invalid
 * UTF-8). Built together with core/cli/cli_util.c.
 */
#include "cli.h"
#include "json.h"
#include "test_util.h"

/* cli_json_string(s) as a NUL-terminated string. */
static const char *json_of(const char *s, size_t n) {
    static char buf[1024];
    FILE *f = tmpfile();
    cli_json_string(f, s, n);
    rewind(f);
    size_t k = fread(buf, 1, sizeof buf - 1, f);
    buf[k] = 0;
    fclose(f);
    return buf;
}

static void expect_json(const char *in, size_t n, const char *want) {
    const char *got = json_of(in, n);
    CHECK(strcmp(got, want) == 0, "json of %zu bytes: %s, want %s", n, got, want);
    gm_json doc;
    gm_error err;
    gm_status st = gm_json_parse(got, strlen(got), "escaped", &doc, &err); /* always valid JSON */
    CHECK(st == GM_OK, "%s", err.message);
    if (st == GM_OK) gm_json_free(&doc);
}

static void test_json_string(void) {
    expect_json("plain", 5, "\"plain\"");
    expect_json("a\"b\\c/", 6, "\"a\\\"b\\\\c/\"");
    expect_json("\n\r\t\x01\x1f\x7f", 6, "\"\\n\\r\\t\\u0001\\u001f\\u007f\"");
    expect_json("a\0b", 3, "\"a\\u0000b\"");
    expect_json("\xc3\xa9\xe2\x82\xac\xf0\x9f\x98\x80", 9, "\"\xc3\xa9\xe2\x82\xac\xf0\x9f\x98\x80\""); /* é€😀 */
    expect_json("\xff", 1, "\"\\ufffd\"");
    expect_json("x\xe2\x82", 3, "\"x\\ufffd\\ufffd\"");             /* cut short */
    expect_json("\xc0\x80", 2, "\"\\ufffd\\ufffd\"");                /* overlong */
    expect_json("\xed\xa0\x80", 3, "\"\\ufffd\\ufffd\\ufffd\"");     /* surrogate */
    expect_json("\xf4\x90\x80\x80", 4, "\"\\ufffd\\ufffd\\ufffd\\ufffd\""); /* > U+10FFFF */
    expect_json("", 0, "\"\"");
}

static void test_ids(void) {
    cli_ids ids = {0};
    CHECK(cli_parse_ids("t", " 2, 105 ,3 ", &ids) == CLI_CONTINUE && ids.n == 3 && ids.v[1] == 105, "list");
    CHECK(cli_parse_ids("t", "", &ids) == CLI_CONTINUE && ids.n == 0, "empty list");
    CHECK(cli_parse_ids("t", "-1", &ids) == CLI_CONTINUE && ids.n == 1 && ids.v[0] == -1, "negative: the core rejects it");
    const char *bad[] = {"abc", "1,,2", "1,", "1 2", "99999999999", "1;2", "0x10"};
    for (size_t i = 0; i < GM_ARRAY_LEN(bad); i++)
        CHECK(cli_parse_ids("t", bad[i], &ids) == CLI_EXIT_USAGE, "'%s' accepted", bad[i]);
    cli_ids_free(&ids);
}

typedef struct opts {
    const char *model;
    int32_t n;
    float temp;
    uint64_t seed;
    int flag;
    cli_strs stop;
} opts;

static int parse(opts *o, int argc, const char **argv, const char **pos, int *n_pos) {
    memset(o, 0, sizeof *o);
    const cli_opt table[] = {
        {"--model", "-m", CLI_STR, &o->model, 0, 0},
        {"--n", "-n", CLI_INT, &o->n, -1, 100},
        {"--temp", NULL, CLI_FLOAT, &o->temp, 0, 2},
        {"--seed", NULL, CLI_U64, &o->seed, 0, 0},
        {"--flag", NULL, CLI_FLAG, &o->flag, 0, 0},
        {"--stop", NULL, CLI_STRS, &o->stop, 0, 0},
        {NULL, NULL, CLI_FLAG, NULL, 0, 0},
    };
    char *args[24];
    memcpy(args, argv, (size_t)argc * sizeof *argv); /* cli_parse takes main's char ** */
    return cli_parse(argc, args, table, "usage: test\n", pos, 2, n_pos);
}

#define ARGS(...) (int)GM_ARRAY_LEN(((const char *[]){"cmd", __VA_ARGS__})), (const char *[]){"cmd", __VA_ARGS__}

static void test_parse(void) {
    opts o;
    const char *pos[2];
    int n_pos;
    int rc = parse(&o, ARGS("-m", "dir", "--n=-1", "--temp", "0.5", "--seed", "0xFF", "--flag", "x", "--stop", "a",
                            "--stop=b", "--", "-y"), pos, &n_pos);
    CHECK(rc == CLI_CONTINUE && !strcmp(o.model, "dir") && o.n == -1 && o.temp == 0.5f && o.seed == 255 && o.flag &&
              o.stop.n == 2 && !strcmp(o.stop.v[1], "b") && n_pos == 2 && !strcmp(pos[1], "-y"),
          "full parse rc %d", rc);
    CHECK(parse(&o, ARGS("--temp", "-0"), pos, &n_pos) == CLI_CONTINUE, "negative zero is a value, not an option");
    const char *usage_errors[][3] = {
        {"--bogus", NULL, NULL}, {"-m", NULL, NULL},      {"--n", "x", NULL},       {"--n", "101", NULL},
        {"--temp", "inf", NULL}, {"--temp", "3", NULL},   {"--seed", "-1", NULL},   {"--flag=1", NULL, NULL},
        {"a", "b", "c"},         {"--n", "1e3", NULL},    {"--seed", "1x", NULL},   {"--temp", "", NULL},
    };
    for (size_t i = 0; i < GM_ARRAY_LEN(usage_errors); i++) {
        const char *argv[4] = {"cmd", usage_errors[i][0], usage_errors[i][1], usage_errors[i][2]};
        int argc = 2 + (argv[2] != NULL) + (argv[3] != NULL);
        CHECK(parse(&o, argc, argv, pos, &n_pos) == CLI_EXIT_USAGE, "case %zu (%s) accepted", i, argv[1]);
    }
    CHECK(parse(&o, ARGS("--n", "5", "--help"), pos, &n_pos) == CLI_EXIT_OK, "--help exits 0");
    const char *nine[19] = {"cmd"};
    for (int i = 0; i < 9; i++) nine[1 + 2 * i] = "--stop", nine[2 + 2 * i] = "s";
    CHECK(parse(&o, 19, nine, pos, &n_pos) == CLI_EXIT_USAGE, "9 --stop accepted");
}

int main(void) {
    test_json_string();
    test_ids();
    test_parse();
    return gm_test_summary();
}
