/* The Hugging Face mapping on memory: tokenizer.model's protobuf, config.json keys, tensor names
 * and permutation, the tokenizer rules (pre-tokenizer, special ids, added tokens, merges, chat
 * templates), llama3 rope factors (bit-exact with convert's torch code), unknown architectures,
 * and malformed inputs. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <errno.h>

#include "../../loader/hf_internal.h"
#include "mfs_ggml.h"
#include "test_util.h"

static struct mfs_hf_blob blob(const char *name, const char *s)
{
    return (struct mfs_hf_blob){name, s, s ? strlen(s) : 0};
}
#define BLOB blob

static const char k_llama_config[] =
    "{\"architectures\": [\"LlamaForCausalLM\"], \"hidden_size\": 16, \"intermediate_size\": 32,"
    " \"num_hidden_layers\": 2, \"num_attention_heads\": 4, \"num_key_value_heads\": 2,"
    " \"max_position_embeddings\": 128, \"rms_norm_eps\": 1e-06, \"rope_theta\": 500000.0,"
    " \"vocab_size\": 8, \"bos_token_id\": 1, \"eos_token_id\": 2 %s}";

/* A 2-block llama with dim 16, 4 heads (kv 2), vocab 8, untied: HF names in sorted order. */
static struct mfs_hf_tensor k_tensors[] = {
    {.name = "lm_head.weight", .dtype = MFS_ST_BF16, .n_dims = 2, .shape = {8, 16}},
    {.name = "model.embed_tokens.weight", .dtype = MFS_ST_BF16, .n_dims = 2, .shape = {8, 16}},
    {.name = "model.layers.0.input_layernorm.weight", .dtype = MFS_ST_BF16, .n_dims = 1, .shape = {16}},
    {.name = "model.layers.0.self_attn.k_proj.weight", .dtype = MFS_ST_BF16, .n_dims = 2, .shape = {8, 16}},
    {.name = "model.layers.0.self_attn.q_proj.weight", .dtype = MFS_ST_BF16, .n_dims = 2, .shape = {16, 16}},
    {.name = "model.layers.0.self_attn.rotary_emb.inv_freq", .dtype = MFS_ST_F32, .n_dims = 1, .shape = {2}},
    {.name = "model.layers.1.mlp.down_proj.weight", .dtype = MFS_ST_BF16, .n_dims = 2, .shape = {16, 32}},
    {.name = "model.layers.1.self_attn.q_proj.bias", .dtype = MFS_ST_BF16, .n_dims = 1, .shape = {16}},
    {.name = "model.layers.2.mlp.up_proj.weight", .dtype = MFS_ST_BF16, .n_dims = 2, .shape = {32, 16}},
    {.name = "model.norm.weight", .dtype = MFS_ST_BF16, .n_dims = 1, .shape = {16}},
};

struct fixture {
    char config[4096];
    struct mfs_hf_input in;
    struct mfs_hf_map map;
    mfs_err err;
};

static void fixture(struct fixture *f, const char *config_extra, const char *tokenizer_json, const char *tokenizer_config)
{
    memset(f, 0, sizeof *f);
    snprintf(f->config, sizeof f->config, k_llama_config, config_extra ? config_extra : "");
    f->in.dir = "dir";
    f->in.base = "tiny-llama-v1.2";
    f->in.config = BLOB("config.json", f->config);
    f->in.tokenizer_json = BLOB("tokenizer.json", tokenizer_json);
    f->in.tokenizer_config = BLOB("tokenizer_config.json", tokenizer_config);
    f->in.tensors = k_tensors;
    f->in.n_tensors = sizeof k_tensors / sizeof k_tensors[0];
}

static const char *str_key(const mfs_gguf *g, const char *key)
{
    struct mfs_str s;
    return mfs_gguf_get_str(g, key, &s) == 0 ? s.p : NULL;
}

static uint64_t uint_key(const mfs_gguf *g, const char *key)
{
    uint64_t v = UINT64_MAX;
    mfs_gguf_get_uint(g, key, &v);
    return v;
}

static bool has_note(const struct mfs_hf_map *map, const char *part)
{
    for (size_t i = 0; i < map->n_notes; i++)
        if (strstr(map->notes[i], part))
            return true;
    return false;
}

/* ---- tokenizer.model */

static void test_spm_shared_model(void **state)
{
    (void)state;
    char path[4096];
    snprintf(path, sizeof path, "%s/llama-tokenizer.model", test_shared_data());
    size_t len;
    uint8_t *data = test_read_file(path, &len);
    assert_non_null(data);
    struct mfs_spm_piece *p;
    size_t n;
    mfs_err err = {{0}};
    assert_int_equal(mfs_spm_parse(data, len, "tokenizer.model", &p, &n, &err), 0);
    assert_int_equal(n, 32000);
    /* the same pieces, scores and types as the vocab GGUF convert made from it */
    snprintf(path, sizeof path, "%s/ggml-vocab-llama-spm.gguf", test_shared_data());
    size_t glen;
    uint8_t *gdata = test_read_file(path, &glen);
    mfs_gguf *g;
    assert_int_equal(mfs_gguf_parse_memory(gdata, glen, "vocab", &g, &err), 0);
    const struct mfs_gguf_value *tok, *sc, *ty;
    assert_int_equal(mfs_gguf_get_arr(g, "tokenizer.ggml.tokens", MFS_GGUF_STR, &tok), 0);
    assert_int_equal(mfs_gguf_get_arr(g, "tokenizer.ggml.scores", MFS_GGUF_F32, &sc), 0);
    assert_int_equal(mfs_gguf_get_arr(g, "tokenizer.ggml.token_type", MFS_GGUF_I32, &ty), 0);
    for (size_t i = 0; i < n; i++) {
        const struct mfs_str *s = (const struct mfs_str *)tok->arr.data + i;
        assert_int_equal(s->len, p[i].len);
        assert_memory_equal(s->p, p[i].piece, s->len);
        float want;
        int32_t type;
        memcpy(&want, (const uint8_t *)sc->arr.data + 4 * i, 4);
        memcpy(&type, (const uint8_t *)ty->arr.data + 4 * i, 4);
        assert_memory_equal(&want, &p[i].score, 4);
        assert_int_equal(type, p[i].type == 4 ? 1 : (int32_t)p[i].type);
    }
    free(p);
    /* every truncation fails cleanly or parses fewer pieces */
    for (size_t cut = 0; cut < 2000; cut += 7) {
        if (mfs_spm_parse(data, cut, "cut", &p, &n, &err) == 0)
            free(p);
        else
            assert_null(p);
    }
    mfs_gguf_free(g);
    free(gdata);
    free(data);
}

static void test_spm_malformed(void **state)
{
    (void)state;
    static const struct {
        const char *bytes;
        size_t len;
        const char *msg;
    } cases[] = {
        {"\x0a\x05\x0a\x01" "a", 5, "m: malformed protobuf at byte 0: length runs past the end"},
        {"\x0a\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff", 11, "m: malformed protobuf at byte 0: truncated or overlong length"},
        {"\x0b", 1, "m: malformed protobuf at byte 0: unsupported wire type"},
        {"\x08\x01", 2, "m: piece at byte 0 is not a message"},
        {"\x0a\x02\x15\x00", 4, "m: malformed piece 0 at byte 2: fixed-size value runs past the end"},
        {"\x0a\x02\x0a\x05", 4, "m: malformed piece 0 at byte 2: length runs past the end"},
        {"\x0a\x02\x10\x01", 4, "m: piece 0: field 2 has wire type 0"},
        {"\x12\x00", 2, "m: no pieces: not a SentencePiece model"},
        {"", 0, "m: no pieces: not a SentencePiece model"},
        {"\x00", 1, "m: malformed protobuf at byte 0: field number out of range"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        struct mfs_spm_piece *p;
        size_t n;
        mfs_err err = {{0}};
        assert_int_equal(mfs_spm_parse((const uint8_t *)cases[i].bytes, cases[i].len, "m", &p, &n, &err), -EINVAL);
        assert_string_equal(err.msg, cases[i].msg);
    }
    /* a piece with every field and an unknown one, then an unknown top-level field: both skipped */
    static const uint8_t ok[] = {0x0a, 0x0d, 0x0a, 0x02, 'h', 'i', 0x15, 0x00, 0x00, 0x80, 0xbf, 0x18, 0x03, 0x20,
                                 0x01, 0x12, 0x00};
    struct mfs_spm_piece *p;
    size_t n;
    mfs_err err = {{0}};
    assert_int_equal(mfs_spm_parse(ok, sizeof ok - 3, "m", &p, &n, &err), -EINVAL); /* cut inside piece 0 */
    assert_int_equal(mfs_spm_parse(ok, sizeof ok, "m", &p, &n, &err), 0);
    assert_int_equal(n, 1);
    assert_int_equal(p[0].len, 2);
    assert_memory_equal(p[0].piece, "hi", 2);
    assert_true(p[0].score == -1.0f);
    assert_int_equal(p[0].type, 3);
    free(p);
}

/* ---- config and tensors */

static void test_llama_mapping(void **state)
{
    (void)state;
    struct fixture f;
    fixture(&f, ", \"rope_scaling\": {\"type\": \"linear\", \"factor\": 2.0}, \"_name_or_path\": \"meta-llama/tiny-llama-v1.2\"",
            NULL, NULL);
    assert_int_equal(mfs_hf_map(&f.in, &f.map, &f.err), 0);
    const mfs_gguf *g = f.map.g;
    assert_int_equal(f.map.arch, MFS_HF_LLAMA);
    assert_string_equal(str_key(g, "general.architecture"), "llama");
    assert_string_equal(str_key(g, "general.name"), "Tiny Llama v1.2");
    assert_string_equal(str_key(g, "general.organization"), "Meta Llama");
    assert_int_equal(uint_key(g, "llama.block_count"), 2);
    assert_int_equal(uint_key(g, "llama.attention.head_count_kv"), 2);
    assert_int_equal(uint_key(g, "llama.rope.dimension_count"), 4);
    assert_int_equal(uint_key(g, "general.file_type"), 32); /* BF16 */
    assert_string_equal(str_key(g, "llama.rope.scaling.type"), "linear");
    double d;
    assert_int_equal(mfs_gguf_get_float(g, "llama.rope.freq_base", &d), 0);
    assert_true(d == 500000.0);
    assert_int_equal(mfs_gguf_get_float(g, "llama.attention.layer_norm_rms_epsilon", &d), 0);
    assert_true((float)d == 1e-06f);
    /* names, types, permutation; inv_freq dropped; layer 2 has no llama.cpp name (2 blocks) */
    static const struct {
        const char *name;
        uint32_t type;
        uint64_t n_head;
    } want[] = {
        {"output.weight", MFS_GGML_BF16, 0},
        {"token_embd.weight", MFS_GGML_BF16, 0},
        {"blk.0.attn_norm.weight", MFS_GGML_F32, 0},
        {"blk.0.attn_k.weight", MFS_GGML_BF16, 2},
        {"blk.0.attn_q.weight", MFS_GGML_BF16, 4},
        {"blk.1.ffn_down.weight", MFS_GGML_BF16, 0},
        {"blk.1.attn_q.bias", MFS_GGML_F32, 4},
        {"model.layers.2.mlp.up_proj.weight", MFS_GGML_BF16, 0},
        {"output_norm.weight", MFS_GGML_F32, 0},
    };
    assert_int_equal(mfs_gguf_n_tensors(g), sizeof want / sizeof want[0]);
    for (size_t i = 0; i < sizeof want / sizeof want[0]; i++) {
        const struct mfs_gguf_tensor *t = mfs_gguf_tensor(g, i);
        assert_string_equal(t->name.p, want[i].name);
        assert_int_equal(t->type, want[i].type);
        assert_int_equal(f.map.out[i].n_head, want[i].n_head);
    }
    assert_int_equal(mfs_gguf_tensor(g, 0)->ne[0], 16);
    assert_int_equal(mfs_gguf_tensor(g, 0)->ne[1], 8);
    assert_true(has_note(&f.map, "model.layers.2.mlp.up_proj.weight' has no llama.cpp name"));
    assert_true(has_note(&f.map, "no tokenizer.model or tokenizer.json"));
    mfs_hf_map_free(&f.map);
}

static void test_llama3_rope_factors(void **state)
{
    (void)state;
    /* Llama 3.1 8B's rope: head size 128, theta 500000, factor 8, low 1, high 4, old context 8192 */
    static char config[] =
        "{\"architectures\": [\"LlamaForCausalLM\"], \"hidden_size\": 4096, \"num_hidden_layers\": 0,"
        " \"num_attention_heads\": 32, \"vocab_size\": 8, \"rope_theta\": 500000.0, \"rope_scaling\": {\"factor\": 8.0,"
        " \"low_freq_factor\": 1.0, \"high_freq_factor\": 4.0, \"original_max_position_embeddings\": 8192,"
        " \"rope_type\": \"llama3\"}}";
    struct fixture f;
    fixture(&f, NULL, NULL, NULL);
    f.in.config = BLOB("config.json", config);
    f.in.n_tensors = 0;
    assert_int_equal(mfs_hf_map(&f.in, &f.map, &f.err), 0);
    const struct mfs_gguf_tensor *t = mfs_gguf_tensor(f.map.g, 0);
    assert_string_equal(t->name.p, "rope_freqs.weight");
    assert_int_equal(t->ne[0], 64);
    /* computed with convert_hf_to_gguf.py's code under torch 1.13 */
    static const uint32_t smooth[6] = {0x3f9a8ed5, 0x3fc6d64a, 0x4001af1d, 0x402c732e, 0x406bcace, 0x40a83c06};
    const uint8_t *b = f.map.out[0].bytes;
    for (int i = 0; i < 64; i++) {
        uint32_t v;
        memcpy(&v, b + 4 * i, 4);
        uint32_t want = i < 29 ? 0x3f800000 : i < 35 ? smooth[i - 29] : 0x41000000;
        if (v != want)
            fail_msg("rope factor %d: %08x, expected %08x", i, v, want);
    }
    mfs_hf_map_free(&f.map);
}

static void test_qwen2_and_unknown(void **state)
{
    (void)state;
    static char qwen[] = "{\"architectures\": [\"Qwen2ForCausalLM\"], \"num_hidden_layers\": 2, \"hidden_size\": 16,"
                         " \"num_attention_heads\": 4, \"head_dim\": 4, \"rope_scaling\": {\"type\": \"yarn\","
                         " \"factor\": 4.0, \"original_max_position_embeddings\": 32768}}";
    struct fixture f;
    fixture(&f, NULL, NULL, NULL);
    f.in.config = BLOB("config.json", qwen);
    assert_int_equal(mfs_hf_map(&f.in, &f.map, &f.err), 0);
    const mfs_gguf *g = f.map.g;
    assert_string_equal(str_key(g, "general.architecture"), "qwen2");
    assert_string_equal(str_key(g, "qwen2.rope.scaling.type"), "yarn");
    assert_int_equal(uint_key(g, "qwen2.rope.scaling.original_context_length"), 32768);
    assert_int_equal(uint_key(g, "qwen2.attention.key_length"), 4);
    assert_int_equal(uint_key(g, "qwen2.attention.value_length"), 4);
    for (uint64_t i = 0; i < mfs_gguf_n_tensors(g); i++)
        assert_int_equal(f.map.out[i].n_head, 0); /* qwen2: no permutation */
    mfs_hf_map_free(&f.map);

    static char unknown[] = "{\"architectures\": [\"GPTBigCodeForCausalLM\"], \"model_type\": \"gpt_bigcode\", \"n_layer\": 3,"
                            " \"n_embd\": 2.5, \"vocab_size\": 8}";
    fixture(&f, NULL, NULL, NULL);
    f.in.config = BLOB("config.json", unknown);
    assert_int_equal(mfs_hf_map(&f.in, &f.map, &f.err), 0);
    g = f.map.g;
    assert_int_equal(f.map.arch, MFS_HF_UNKNOWN);
    assert_string_equal(str_key(g, "general.architecture"), "gpt_bigcode");
    assert_int_equal(uint_key(g, "gpt_bigcode.block_count"), 3);
    assert_int_equal(mfs_gguf_find_key(g, "gpt_bigcode.embedding_length"), -1); /* 2.5: left out */
    assert_true(has_note(&f.map, "n_embd = 2.5 is not an integer"));
    assert_true(has_note(&f.map, "architecture GPTBigCodeForCausalLM is not converted"));
    /* every tensor under its own name and stored type, inv_freq included */
    assert_int_equal(mfs_gguf_n_tensors(g), f.in.n_tensors);
    for (uint64_t i = 0; i < mfs_gguf_n_tensors(g); i++) {
        assert_string_equal(mfs_gguf_tensor(g, i)->name.p, k_tensors[i].name);
        assert_int_equal(mfs_gguf_tensor(g, i)->type, (uint32_t)mfs_st_ggml_type(k_tensors[i].dtype));
    }
    mfs_hf_map_free(&f.map);
}

static void test_config_errors(void **state)
{
    (void)state;
    static const struct {
        const char *config;
        const char *msg;
    } cases[] = {
        {"{\"architectures\": [\"LlamaForCausalLM\"],\n \"hidden_size\": 8,,}",
         "dir: config.json: JSON syntax error at line 2, column 19: quoted object property name expected"},
        {"[1, 2]", "dir: config.json: not a JSON object"},
        {"{\"architectures\": [\"LlamaForCausalLM\"]", "dir: config.json: JSON ends early (line 1)"},
        {"{} x", "dir: config.json: JSON syntax error at line 1, column 4: unexpected character"},
        {"{\"architectures\": [\"LlamaForCausalLM\"], \"num_hidden_layers\": 2}",
         "dir: config.json: num_attention_heads is missing or not a positive integer"},
        {"{\"architectures\": [\"LlamaForCausalLM\"], \"num_hidden_layers\": -1, \"num_attention_heads\": 4}",
         "dir: config.json: no valid block count (num_hidden_layers)"},
        {"{\"architectures\": [\"LlamaForCausalLM\"], \"num_hidden_layers\": 2, \"num_attention_heads\": 3, "
         "\"vocab_size\": 8}",
         "dir: tensor 'model.layers.0.self_attn.k_proj.weight': 8 rows cannot be permuted for 3 attention heads"},
        {"{\"architectures\": [\"LlamaForCausalLM\"], \"num_hidden_layers\": 2, \"num_attention_heads\": 4, "
         "\"hidden_size\": 1e400}",
         "dir: config.json: hidden_size = 1e400 is not an integer from 0 to 4294967295"},
        {"{\"architectures\": [\"LlamaForCausalLM\"], \"num_hidden_layers\": 2, \"num_attention_heads\": 4, "
         "\"max_position_embeddings\": 4294967296}",
         "dir: config.json: max_position_embeddings = 4294967296 is not an integer from 0 to 4294967295"},
        {"{\"architectures\": [\"LlamaForCausalLM\"], \"num_hidden_layers\": 2, \"num_attention_heads\": 4}",
         "dir: config.json: no vocab_size"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        struct fixture f;
        fixture(&f, NULL, NULL, NULL);
        f.in.config = BLOB("config.json", cases[i].config);
        int rc = mfs_hf_map(&f.in, &f.map, &f.err);
        if (rc == 0)
            fail_msg("case %zu mapped, expected: %s", i, cases[i].msg);
        if (strcmp(f.err.msg, cases[i].msg) != 0)
            fail_msg("case %zu:\n  expected: %s\n  got:      %s", i, cases[i].msg, f.err.msg);
        mfs_hf_map_free(&f.map);
    }
}

/* ---- tokenizer.json */

static char *bpe_json(const char *pre_tokenizer, const char *model_extra, const char *merges)
{
    char *s;
    int n = asprintf(&s,
                     "{\"version\": \"1.0\", \"added_tokens\": [{\"id\": 6, \"content\": \"<|end|>\", \"special\": true},"
                     " {\"id\": 7, \"content\": \"\\u2581user tok\", \"special\": false}],"
                     " \"normalizer\": null, \"pre_tokenizer\": %s,"
                     " \"decoder\": {\"type\": \"ByteLevel\"},"
                     " \"model\": {\"type\": \"BPE\", \"byte_fallback\": false %s, \"vocab\": {\"a\": 0, \"b\": 1,"
                     " \"ab\": 2, \"\\u0120a\": 3, \"<|end|>\": 4}, \"merges\": %s}}",
                     pre_tokenizer, model_extra, merges);
    assert_true(n > 0);
    return s;
}

#define SPLIT(re) "{\"type\": \"Sequence\", \"pretokenizers\": [{\"type\": \"Split\", \"pattern\": {\"Regex\": \"" re \
                  "\"}, \"behavior\": \"Isolated\", \"invert\": false}, {\"type\": \"ByteLevel\", \"add_prefix_space\": false," \
                  " \"trim_offsets\": true, \"use_regex\": false}]}"
#define RE_LLAMA3 "(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\\\\r\\\\n\\\\p{L}\\\\p{N}]?\\\\p{L}+|\\\\p{N}{1,3}| ?[^\\\\s\\\\p{L}\\\\p{N}]+[\\\\r\\\\n]*|\\\\s*[\\\\r\\\\n]+|\\\\s+(?!\\\\S)|\\\\s+"
#define RE_QWEN2 "(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\\\\r\\\\n\\\\p{L}\\\\p{N}]?\\\\p{L}+|\\\\p{N}| ?[^\\\\s\\\\p{L}\\\\p{N}]+[\\\\r\\\\n]*|\\\\s*[\\\\r\\\\n]+|\\\\s+(?!\\\\S)|\\\\s+"

static void test_bpe_pre(void **state)
{
    (void)state;
    static const struct {
        const char *pt, *model_extra, *pre;
    } cases[] = {
        {"{\"type\": \"ByteLevel\", \"add_prefix_space\": false, \"use_regex\": true}", "", "gpt-2"},
        {"{\"type\": \"ByteLevel\"}", "", "gpt-2"},
        {"{\"type\": \"Sequence\", \"pretokenizers\": [{\"type\": \"ByteLevel\"}]}", "", "gpt-2"},
        {SPLIT(RE_LLAMA3), ", \"ignore_merges\": true", "llama-bpe"},
        {SPLIT(RE_LLAMA3), "", "smaug-bpe"},
        {SPLIT(RE_QWEN2), "", "qwen2"},
        {"{\"type\": \"Sequence\", \"pretokenizers\": [{\"type\": \"Digits\", \"individual_digits\": true},"
         " {\"type\": \"ByteLevel\", \"use_regex\": true}]}", "", "starcoder"},
        {SPLIT("\\\\p{N}"), "", NULL},
        {"{\"type\": \"Metaspace\"}", "", NULL},
        {"null", "", NULL},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        char *tj = bpe_json(cases[i].pt, cases[i].model_extra, "[\"a b\"]");
        struct fixture f;
        fixture(&f, NULL, tj, NULL);
        assert_int_equal(mfs_hf_map(&f.in, &f.map, &f.err), 0);
        const char *pre = str_key(f.map.g, "tokenizer.ggml.pre");
        if (cases[i].pre == NULL ? pre != NULL : !pre || strcmp(pre, cases[i].pre) != 0)
            fail_msg("case %zu: pre '%s', expected '%s'", i, pre ? pre : "(none)", cases[i].pre ? cases[i].pre : "(none)");
        if (!cases[i].pre)
            assert_true(has_note(&f.map, "pre-tokenizer not recognized"));
        mfs_hf_map_free(&f.map);
        free(tj);
    }
}

static void test_bpe_vocab(void **state)
{
    (void)state;
    char *tj = bpe_json("{\"type\": \"ByteLevel\"}", "", "[[\"a\", \"b\"], [\"\\u0120\", \"a b\"]]");
    static const char tc[] =
        "{\"add_bos_token\": true, \"add_eos_token\": false, \"bos_token\": {\"content\": \"<|end|>\"},"
        " \"eos_token\": \"<|end|>\", \"pad_token\": \"<|missing|>\", \"cls_token\": \"<|end|>\","
        " \"chat_template\": [{\"name\": \"default\", \"template\": \"{{ default }}\"},"
        " {\"name\": \"tool use!\", \"template\": \"{{ tools }}\"}, {\"name\": \"\", \"template\": \"x\"}]}";
    struct fixture f;
    fixture(&f, ", \"unk_token_id\": 5, \"pad_token_id\": [1]", tj, tc);
    assert_int_equal(mfs_hf_map(&f.in, &f.map, &f.err), 0);
    const mfs_gguf *g = f.map.g;
    assert_string_equal(str_key(g, "tokenizer.ggml.model"), "gpt2");
    const struct mfs_gguf_value *tok, *ty, *mg;
    assert_int_equal(mfs_gguf_get_arr(g, "tokenizer.ggml.tokens", MFS_GGUF_STR, &tok), 0);
    assert_int_equal(mfs_gguf_get_arr(g, "tokenizer.ggml.token_type", MFS_GGUF_I32, &ty), 0);
    assert_int_equal(tok->arr.n, 8); /* config.json vocab_size */
    static const char *const want_tok[8] = {"a", "b", "ab", "\xC4\xA0" "a", "<|end|>", "[PAD5]", "<|end|>", " user tok"};
    static const int32_t want_type[8] = {1, 1, 1, 1, 3, 5, 3, 4};
    for (int i = 0; i < 8; i++) {
        const struct mfs_str *s = (const struct mfs_str *)tok->arr.data + i;
        int32_t t;
        memcpy(&t, (const uint8_t *)ty->arr.data + 4 * i, 4);
        if (s->len != strlen(want_tok[i]) || memcmp(s->p, want_tok[i], s->len) != 0 || t != want_type[i])
            fail_msg("token %d: '%.*s' type %d, expected '%s' type %d", i, (int)s->len, s->p, t, want_tok[i],
                     want_type[i]);
    }
    assert_int_equal(mfs_gguf_get_arr(g, "tokenizer.ggml.merges", MFS_GGUF_STR, &mg), 0);
    assert_int_equal(mg->arr.n, 2);
    assert_string_equal(((const struct mfs_str *)mg->arr.data)[1].p, "\xC4\xA0 a\xC4\xA0" "b");
    /* bos/eos by content in added_tokens (first match: id 6), unk from config.json; cls has no key */
    assert_int_equal(uint_key(g, "tokenizer.ggml.bos_token_id"), 6);
    assert_int_equal(uint_key(g, "tokenizer.ggml.eos_token_id"), 6);
    assert_int_equal(uint_key(g, "tokenizer.ggml.unknown_token_id"), 5);
    assert_int_equal(mfs_gguf_find_key(g, "tokenizer.ggml.padding_token_id"), -1);
    bool b;
    assert_int_equal(mfs_gguf_get_bool(g, "tokenizer.ggml.add_bos_token", &b), 0);
    assert_true(b);
    assert_string_equal(str_key(g, "tokenizer.chat_template"), "{{ default }}");
    assert_string_equal(str_key(g, "tokenizer.chat_template.tool_use_"), "{{ tools }}");
    const struct mfs_gguf_value *names;
    assert_int_equal(mfs_gguf_get_arr(g, "tokenizer.chat_templates", MFS_GGUF_STR, &names), 0);
    assert_int_equal(names->arr.n, 1);
    /* the key order convert writes: ids in the order found, then add_*, then the template */
    assert_true(mfs_gguf_find_key(g, "tokenizer.ggml.merges") < mfs_gguf_find_key(g, "tokenizer.ggml.bos_token_id"));
    assert_true(mfs_gguf_find_key(g, "tokenizer.ggml.eos_token_id") < mfs_gguf_find_key(g, "tokenizer.ggml.unknown_token_id"));
    assert_true(mfs_gguf_find_key(g, "tokenizer.ggml.add_bos_token") < mfs_gguf_find_key(g, "tokenizer.chat_template"));
    mfs_hf_map_free(&f.map);
    free(tj);
}

static void test_tokenizer_errors(void **state)
{
    (void)state;
    static const struct {
        const char *tj, *msg;
    } cases[] = {
        {"{\"model\": {\"type\": \"BPE\", \"vocab\": {\"a\": 9}}}",
         "dir: tokenizer.json: token id of 'a' is not from 0 to vocab_size 8 - 1"},
        {"{\"model\": {\"type\": \"Unigram\", \"vocab\": []}}",
         "dir: tokenizer.json: not a BPE tokenizer with a vocab (model.type BPE)"},
        {"{\"model\": {\"type\": \"BPE\", \"vocab\": {}, \"merges\": [1]}}",
         "dir: tokenizer.json: merge 0 is neither a string nor a pair of strings"},
        {"{\"added_tokens\": [{\"id\": 99, \"content\": \"x\"}], \"model\": {\"type\": \"BPE\", \"vocab\": {}}}",
         "dir: tokenizer.json: added token 0: no string content, or its id is not below vocab_size 8"},
        {"{\"model\": [}", "dir: tokenizer.json: JSON syntax error at line 1, column 12: unexpected character"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        struct fixture f;
        fixture(&f, NULL, cases[i].tj, NULL);
        assert_int_equal(mfs_hf_map(&f.in, &f.map, &f.err), -EINVAL);
        if (strcmp(f.err.msg, cases[i].msg) != 0)
            fail_msg("case %zu:\n  expected: %s\n  got:      %s", i, cases[i].msg, f.err.msg);
        mfs_hf_map_free(&f.map);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_spm_shared_model), cmocka_unit_test(test_spm_malformed),
        cmocka_unit_test(test_llama_mapping),    cmocka_unit_test(test_llama3_rope_factors),
        cmocka_unit_test(test_qwen2_and_unknown), cmocka_unit_test(test_config_errors),
        cmocka_unit_test(test_bpe_pre),          cmocka_unit_test(test_bpe_vocab),
        cmocka_unit_test(test_tokenizer_errors),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
