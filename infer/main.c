/* modelfs-run: generate text from a GGUF by mapping it. */
#include <errno.h>
#include <getopt.h>
#include <stdarg.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "mfs_infer.h"
#include "mfs_tokenizer.h"

#define PROG "modelfs-run"

static double now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec * 1e3 + ts.tv_nsec / 1e6;
}

static void usage(FILE *f)
{
    fprintf(f,
            "Usage: " PROG " -m MODEL.gguf [-p PROMPT] [-n N] [--temp T] [--seed S] [-t THREADS]\n"
            "Generate text with a Llama-family model (llama, qwen2) by mapping its GGUF file.\n"
            "\n"
            "  -m, --model FILE     GGUF model (F32 F16 BF16 Q8_0 Q4_0 Q4_K Q6_K matrices)\n"
            "  -p, --prompt TEXT    prompt (default: empty, generation starts after BOS)\n"
            "  -n, --n-predict N    tokens to generate (default 128)\n"
            "      --temp T         temperature; 0 is greedy (default 0.8)\n"
            "      --top-k K        keep the K most likely tokens; 0 disables (default 40)\n"
            "      --top-p P        keep the smallest set with probability >= P; 1 disables (default 0.95)\n"
            "      --min-p P        drop tokens below P x the best one's probability; 0 disables (default 0.05)\n"
            "      --seed S         random seed (default: from the clock)\n"
            "  -t, --threads N      threads (default: online CPUs)\n"
            "  -c, --ctx-size N     context positions (default: the model's, at most 4096)\n"
            "  -h, --help           this help\n"
            "      --version        print the version\n"
            "\n"
            "Tokens go to stdout as they are generated; load time and speeds go to stderr.\n"
            "Exit status: 0 success, 1 bad input (the model file), 2 bad usage.\n");
}

__attribute__((format(printf, 1, 2))) static int bad_usage(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    fprintf(stderr, PROG ": ");
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fprintf(stderr, "\nTry '" PROG " --help'.\n");
    return 2;
}

static int parse_long(const char *s, long lo, long hi, long *out)
{
    char *end;
    errno = 0;
    long v = strtol(s, &end, 10);
    if (errno || end == s || *end || v < lo || v > hi)
        return -1;
    *out = v;
    return 0;
}

static int parse_float(const char *s, float *out)
{
    char *end;
    errno = 0;
    float v = strtof(s, &end);
    if (errno || end == s || *end || v != v)
        return -1;
    *out = v;
    return 0;
}

/* "1,2,3" -> ids */
static int parse_tokens(const char *s, int32_t **ids, size_t *n)
{
    size_t cap = 1;
    for (const char *p = s; *p; p++)
        cap += *p == ',';
    int32_t *v = malloc(cap * sizeof *v);
    if (!v)
        return -1;
    size_t k = 0;
    const char *p = s;
    while (*p) {
        char *end;
        errno = 0;
        long x = strtol(p, &end, 10);
        if (errno || end == p || x < 0 || x > INT32_MAX || (*end && *end != ',')) {
            free(v);
            return -1;
        }
        v[k++] = (int32_t)x;
        p = *end ? end + 1 : end;
    }
    if (k == 0) {
        free(v);
        return -1;
    }
    *ids = v;
    *n = k;
    return 0;
}

static void print_piece(const mfs_tokenizer *tok, int32_t id)
{
    char buf[256];
    int n = mfs_tokenizer_piece(tok, id, false, buf, sizeof buf);
    if (n > (int)sizeof buf) {
        char *big = malloc((size_t)n);
        if (big) {
            mfs_tokenizer_piece(tok, id, false, big, (size_t)n);
            fwrite(big, 1, (size_t)n, stdout);
            free(big);
        }
    } else if (n > 0) {
        fwrite(buf, 1, (size_t)n, stdout);
    }
}

enum { OPT_TEMP = 256, OPT_SEED, OPT_TOPK, OPT_TOPP, OPT_MINP, OPT_VERSION, OPT_TOKENS, OPT_DUMP_LOGITS,
       OPT_DUMP_TOKENS, OPT_IGNORE_EOS, OPT_POPULATE };

int main(int argc, char **argv)
{
    double t_start = now_ms();
    const char *model_path = NULL, *prompt = NULL, *tokens_arg = NULL, *dump_logits = NULL, *dump_tokens = NULL;
    long n_predict = 128, n_threads = sysconf(_SC_NPROCESSORS_ONLN), n_ctx = 0, lv;
    bool seed_given = false, ignore_eos = false, populate = false;
    struct mfs_sampler_params sp = {.temp = 0.8f, .top_k = 40, .top_p = 0.95f, .min_p = 0.05f};
    if (n_threads < 1)
        n_threads = 1;
    if (n_threads > 64)
        n_threads = 64;

    static const struct option opts[] = {
        {"model", required_argument, NULL, 'm'},
        {"prompt", required_argument, NULL, 'p'},
        {"n-predict", required_argument, NULL, 'n'},
        {"threads", required_argument, NULL, 't'},
        {"ctx-size", required_argument, NULL, 'c'},
        {"temp", required_argument, NULL, OPT_TEMP},
        {"seed", required_argument, NULL, OPT_SEED},
        {"top-k", required_argument, NULL, OPT_TOPK},
        {"top-p", required_argument, NULL, OPT_TOPP},
        {"min-p", required_argument, NULL, OPT_MINP},
        {"help", no_argument, NULL, 'h'},
        {"version", no_argument, NULL, OPT_VERSION},
        /* hidden, for tests and benchmarks */
        {"tokens", required_argument, NULL, OPT_TOKENS},           /* prompt as token ids: 1,2,3 */
        {"dump-logits", required_argument, NULL, OPT_DUMP_LOGITS}, /* f32 logits of every position */
        {"dump-tokens", required_argument, NULL, OPT_DUMP_TOKENS}, /* every token id, one per line */
        {"ignore-eos", no_argument, NULL, OPT_IGNORE_EOS},         /* generate exactly N tokens */
        {"populate", no_argument, NULL, OPT_POPULATE},             /* MAP_POPULATE the model */
        {NULL, 0, NULL, 0},
    };
    opterr = 0;
    int ch;
    while ((ch = getopt_long(argc, argv, ":m:p:n:t:c:h", opts, NULL)) != -1) {
        switch (ch) {
        case 'm': model_path = optarg; break;
        case 'p': prompt = optarg; break;
        case 'n':
            if (parse_long(optarg, 0, 1 << 20, &n_predict))
                return bad_usage("-n: '%s' is not a token count", optarg);
            break;
        case 't':
            if (parse_long(optarg, 1, 256, &n_threads))
                return bad_usage("-t: '%s' is not a thread count (1-256)", optarg);
            break;
        case 'c':
            if (parse_long(optarg, 1, 1 << 20, &n_ctx))
                return bad_usage("-c: '%s' is not a context size", optarg);
            break;
        case OPT_TEMP:
            if (parse_float(optarg, &sp.temp))
                return bad_usage("--temp: '%s' is not a number", optarg);
            break;
        case OPT_SEED: {
            char *end;
            errno = 0;
            unsigned long long v = strtoull(optarg, &end, 10);
            if (errno || end == optarg || *end || optarg[0] == '-')
                return bad_usage("--seed: '%s' is not a non-negative integer", optarg);
            sp.seed = v;
            seed_given = true;
            break;
        }
        case OPT_TOPK:
            if (parse_long(optarg, 0, INT32_MAX, &lv))
                return bad_usage("--top-k: '%s' is not a count", optarg);
            sp.top_k = (int)lv;
            break;
        case OPT_TOPP:
            if (parse_float(optarg, &sp.top_p) || sp.top_p < 0 || sp.top_p > 1)
                return bad_usage("--top-p: '%s' is not a probability", optarg);
            break;
        case OPT_MINP:
            if (parse_float(optarg, &sp.min_p) || sp.min_p < 0 || sp.min_p > 1)
                return bad_usage("--min-p: '%s' is not a probability", optarg);
            break;
        case 'h': usage(stdout); return 0;
        case OPT_VERSION: printf(PROG " " MFS_VERSION "\n"); return 0;
        case OPT_TOKENS: tokens_arg = optarg; break;
        case OPT_DUMP_LOGITS: dump_logits = optarg; break;
        case OPT_DUMP_TOKENS: dump_tokens = optarg; break;
        case OPT_IGNORE_EOS: ignore_eos = true; break;
        case OPT_POPULATE: populate = true; break;
        case ':': return bad_usage("option '%s' needs a value", argv[optind - 1]);
        default: return bad_usage("unknown option '%s'", argv[optind - 1]);
        }
    }
    if (optind < argc)
        return bad_usage("unexpected argument '%s'", argv[optind]);
    if (!model_path)
        return bad_usage("%s", "no model: give -m MODEL.gguf");
    if (prompt && tokens_arg)
        return bad_usage("%s", "-p and --tokens are exclusive");
    if (!seed_given)
        sp.seed = (uint64_t)time(NULL) ^ ((uint64_t)getpid() << 32);

    int rc = 1;
    mfs_err err = {{0}};
    mfs_llm *model = NULL;
    mfs_tokenizer *tok = NULL;
    mfs_llm_ctx *ctx = NULL;
    mfs_sampler *smp = NULL;
    int32_t *ids = NULL;
    size_t n_ids = 0;
    FILE *flog = NULL, *ftok = NULL;

    if (mfs_llm_load(model_path, populate ? MFS_MAP_POPULATE : 0, &model, &err) ||
        mfs_tokenizer_create(mfs_map_gguf(mfs_llm_map(model)), model_path, &tok, &err))
        goto fail_msg;
    const struct mfs_llm_info *info = mfs_llm_info(model);
    if (tokens_arg) {
        if (parse_tokens(tokens_arg, &ids, &n_ids)) {
            rc = bad_usage("--tokens: '%s' is not a list of token ids", tokens_arg);
            goto out;
        }
    } else {
        const char *p = prompt ? prompt : "";
        if (mfs_tokenizer_encode(tok, p, strlen(p), true, true, &ids, &n_ids)) {
            mfs_err_set(&err, "%s: out of memory encoding the prompt", model_path);
            goto fail_msg;
        }
        if (n_ids == 0) {
            mfs_err_set(&err, "%s: empty prompt and the model has no BOS token to start from", model_path);
            goto fail_msg;
        }
    }
    for (size_t i = 0; i < n_ids; i++)
        if (ids[i] >= info->n_vocab) {
            mfs_err_set(&err, "%s: token id %d is out of range (vocabulary of %d)", model_path, ids[i], info->n_vocab);
            goto fail_msg;
        }
    if (n_ctx == 0) {
        n_ctx = info->n_ctx_train < 4096 ? info->n_ctx_train : 4096;
        if ((long)n_ids + n_predict > n_ctx)
            n_ctx = (long)n_ids + n_predict;
    }
    if (mfs_llm_ctx_create(model, (int)n_ctx, (int)n_threads, &ctx, &err))
        goto fail_msg;
    smp = mfs_sampler_create(&sp, info->n_vocab);
    if (!smp) {
        mfs_err_set(&err, "%s: out of memory", model_path);
        goto fail_msg;
    }
    if ((long)n_ids + n_predict > n_ctx) {
        mfs_err_set(&err, "%s: %zu prompt tokens + %ld to generate exceed the context of %ld (use -c)", model_path,
                    n_ids, n_predict, n_ctx);
        goto fail_msg;
    }
    if (dump_logits && !(flog = fopen(dump_logits, "wb"))) {
        rc = bad_usage("--dump-logits: cannot write '%s'", dump_logits);
        goto out;
    }
    if (dump_tokens && !(ftok = fopen(dump_tokens, "w"))) {
        rc = bad_usage("--dump-tokens: cannot write '%s'", dump_tokens);
        goto out;
    }
    double t_ready = now_ms();
    fprintf(stderr, PROG ": model %s: %s, %d layers, %d embd, %d heads (%d kv), vocab %d, %s, %.2f GiB streamed per token\n",
            model_path, info->arch, info->n_layer, info->n_embd, info->n_head, info->n_head_kv, info->n_vocab,
            mfs_llm_kernels(model), info->weight_bytes / 1073741824.0);
    fprintf(stderr, PROG ": load time = %.2f ms\n", t_ready - t_start);

    for (size_t i = 0; i < n_ids; i++) {
        if (!tokens_arg)
            print_piece(tok, ids[i]);
        if (ftok)
            fprintf(ftok, "%d\n", ids[i]);
    }
    if (prompt)
        fflush(stdout);

    double t0 = now_ms();
    if (mfs_llm_ctx_eval(ctx, ids, (int)n_ids, flog != NULL, &err))
        goto fail_msg;
    double t_prompt = now_ms() - t0, t_first = 0, t_gen = 0;
    if (flog)
        for (size_t i = 0; i < n_ids; i++)
            fwrite(mfs_llm_ctx_logits(ctx, (int)i), sizeof(float), (size_t)info->n_vocab, flog);
    long n_gen = 0, n_evals = 0;
    for (; n_gen < n_predict; n_gen++) {
        int32_t next = mfs_sampler_sample(smp, mfs_llm_ctx_logits(ctx, -1));
        if (n_gen == 0)
            t_first = now_ms();
        if (!ignore_eos && mfs_tokenizer_is_eog(tok, next))
            break;
        print_piece(tok, next);
        fflush(stdout);
        if (ftok)
            fprintf(ftok, "%d\n", next);
        if (n_gen + 1 == n_predict)
            break;
        double t1 = now_ms();
        if (mfs_llm_ctx_eval(ctx, &next, 1, false, &err))
            goto fail_msg;
        t_gen += now_ms() - t1;
        n_evals++;
        if (flog)
            fwrite(mfs_llm_ctx_logits(ctx, -1), sizeof(float), (size_t)info->n_vocab, flog);
    }
    if (n_gen < n_predict)
        n_gen++;
    printf("\n");
    fflush(stdout);
    fprintf(stderr, PROG ": prompt eval time = %.2f ms / %zu tokens (%.2f ms per token, %.2f tokens per second)\n",
            t_prompt, n_ids, t_prompt / (double)n_ids, n_ids * 1e3 / t_prompt);
    if (n_evals > 0)
        fprintf(stderr, PROG ": eval time = %.2f ms / %ld runs (%.2f ms per token, %.2f tokens per second)\n", t_gen,
                n_evals, t_gen / (double)n_evals, n_evals * 1e3 / t_gen);
    if (n_predict > 0)
        fprintf(stderr, PROG ": first token time = %.2f ms (from start; prompt eval %.2f ms)\n", t_first - t_start,
                t_prompt);
    rc = 0;
    goto out;

fail_msg:
    fprintf(stderr, PROG ": %s\n", err.msg);
    rc = 1;
out:
    if (flog && fclose(flog) != 0 && rc == 0) {
        fprintf(stderr, PROG ": %s: write failed\n", dump_logits);
        rc = 1;
    }
    if (ftok)
        fclose(ftok);
    free(ids);
    mfs_sampler_free(smp);
    mfs_llm_ctx_free(ctx);
    mfs_tokenizer_free(tok);
    mfs_llm_free(model);
    return rc;
}
