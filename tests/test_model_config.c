/* config.json / generation_config.json parsing: defaults, layer kinds, yarn, eos forms, refusals. */
#include <math.h>
#include <string.h>

#include "config/model_config.h"
#include "tests/testhelp.h"

#define MOE_BASE                                                                                  \
    "\"model_type\":\"qwen3_moe\",\"vocab_size\":1000,\"hidden_size\":64,\"num_hidden_layers\":4," \
    "\"num_attention_heads\":4,\"num_key_value_heads\":2,\"head_dim\":16,\"moe_intermediate_size\":32," \
    "\"num_experts\":8,\"num_experts_per_tok\":2,\"intermediate_size\":128"

static int parse(struct model_config *c, const char *json, struct ms_err *err)
{
    return model_config_parse(c, json, "config.json", err);
}

static void test_defaults_and_layers(void)
{
    struct model_config c;
    struct ms_err err = {{0}};
    test_cond("moe config parses", parse(&c, "{" MOE_BASE "}", &err) == MS_OK);
    test_cond("rope_theta default 10000 (HF default)", c.rope_theta == 10000.0);
    test_cond("rms_norm_eps default 1e-6", c.rms_norm_eps == 1e-6);
    test_cond("norm_topk_prob default false", !c.norm_topk_prob);
    test_cond("every layer sparse by default", c.layer_is_sparse[0] && c.layer_is_sparse[3]);

    test_cond("sparse step 2 + mlp_only_layers parse",
              parse(&c, "{" MOE_BASE ",\"decoder_sparse_step\":2,\"mlp_only_layers\":[3]}", &err) == MS_OK);
    /* HF: sparse iff idx not in mlp_only_layers and (idx + 1) % step == 0 */
    test_cond("layer 0 dense with step 2", !c.layer_is_sparse[0]);
    test_cond("layer 1 sparse with step 2", c.layer_is_sparse[1]);
    test_cond("layer 2 dense with step 2", !c.layer_is_sparse[2]);
    test_cond("layer 3 dense: mlp_only", !c.layer_is_sparse[3]);

    test_cond("dense family parses",
              parse(&c, "{\"model_type\":\"qwen3\",\"vocab_size\":10,\"hidden_size\":8,\"num_hidden_layers\":2,"
                        "\"num_attention_heads\":2,\"intermediate_size\":16}", &err) == MS_OK);
    test_cond("dense: no experts, no sparse layers", c.num_experts == 0 && !c.layer_is_sparse[0]);
    test_cond("head_dim defaults to hidden/heads", c.head_dim == 4);
    test_cond("kv heads default to heads", c.num_kv_heads == 2);
}

static void test_yarn(void)
{
    struct model_config c;
    struct ms_err err = {{0}};
    int rc = parse(&c, "{" MOE_BASE ",\"max_position_embeddings\":131072,\"rope_scaling\":{\"rope_type\":\"yarn\","
                       "\"factor\":4.0,\"original_max_position_embeddings\":32768}}", &err);
    test_cond("yarn parses", rc == MS_OK);
    test_cond("yarn type", c.rope_scaling.type == ROPE_SCALING_YARN);
    test_cond("yarn factor", c.rope_scaling.factor == 4.0);
    test_cond("yarn original", c.rope_scaling.original_max_position_embeddings == 32768);
    test_cond("yarn betas default 32/1", c.rope_scaling.beta_fast == 32 && c.rope_scaling.beta_slow == 1);
    test_cond("yarn attention factor 0.1 ln 4 + 1", fabs(c.rope_scaling.attention_factor - (0.1 * log(4.0) + 1)) < 1e-12);
    rc = parse(&c, "{" MOE_BASE ",\"rope_scaling\":{\"type\":\"yarn\",\"factor\":2.0}}", &err);
    test_cond("legacy 'type' key accepted", rc == MS_OK && c.rope_scaling.type == ROPE_SCALING_YARN);
    rc = parse(&c, "{" MOE_BASE ",\"rope_scaling\":{\"rope_type\":\"dynamic\",\"factor\":2.0}}", &err);
    test_cond("dynamic rope refused by name", rc != MS_OK && strstr(err.msg, "dynamic") && strstr(err.msg, "rope_scaling"));
    rc = parse(&c, "{" MOE_BASE ",\"rope_scaling\":{\"rope_type\":\"yarn\"}}", &err);
    test_cond("yarn without factor refused", rc != MS_OK && strstr(err.msg, "factor"));
}

static void test_generation(void)
{
    struct model_config c;
    struct ms_err err = {{0}};
    parse(&c, "{" MOE_BASE ",\"eos_token_id\":5}", &err);
    test_cond("config eos used when no generation config", c.num_eos_token_ids == 1 && model_config_is_eos(&c, 5));
    test_cond("int eos", model_config_parse_generation(&c, "{\"eos_token_id\":7}", "g", &err) == MS_OK &&
                             c.num_eos_token_ids == 1 && c.eos_token_ids[0] == 7);
    test_cond("list eos", model_config_parse_generation(&c, "{\"eos_token_id\":[7,9],\"temperature\":0.6,"
                                                             "\"top_p\":0.95,\"top_k\":20}", "g", &err) == MS_OK);
    test_cond("list eos values", c.num_eos_token_ids == 2 && model_config_is_eos(&c, 9) && !model_config_is_eos(&c, 5));
    test_cond("sampling defaults", c.default_temperature == 0.6 && c.default_top_p == 0.95 && c.default_top_k == 20);
    test_cond("eos out of vocab refused",
              model_config_parse_generation(&c, "{\"eos_token_id\":[7,100000]}", "g", &err) != MS_OK);
}

/* Fields that MOE_BASE already sets are overridden by putting the bad value first: cJSON finds
 * the first of duplicate keys. */
static void test_refusals(void)
{
    static const struct {
        const char *json, *must_name;
    } cases[] = {
        {"{" MOE_BASE ",\"hidden_act\":\"gelu\"}", "hidden_act"},
        {"{" MOE_BASE ",\"attention_bias\":true}", "attention_bias"},
        {"{" MOE_BASE ",\"partial_rotary_factor\":0.5}", "partial_rotary_factor"},
        {"{\"num_experts_per_tok\":0," MOE_BASE "}", "num_experts_per_tok"},
        {"{\"head_dim\":15," MOE_BASE "}", "head_dim"},
        {"{" MOE_BASE ",\"mlp_only_layers\":[9]}", "mlp_only_layers"},
        {"{\"vocab_size\":-3," MOE_BASE "}", "vocab_size"},
        {"{\"hidden_size\":64.5," MOE_BASE "}", "hidden_size"},
        {"{" MOE_BASE ",\"norm_topk_prob\":\"yes\"}", "norm_topk_prob"},
        {"{\"model_type\":\"mixtral\"}", "mixtral"},
        {"[1,2]", "not a JSON object"},
        {"{", "not valid JSON"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        struct model_config c;
        struct ms_err err = {{0}};
        int rc = parse(&c, cases[i].json, &err);
        test_cond(cases[i].must_name, rc != MS_OK && strstr(err.msg, cases[i].must_name) &&
                                          strstr(err.msg, "config.json"));
    }
}

/* A struct filled by another source (a GGUF) goes through the same checks, named its way. */
static void test_validate_filled(void)
{
    struct model_config c;
    struct ms_err err = {{0}};
    test_cond("base parses", parse(&c, "{" MOE_BASE "}", &err) == MS_OK);
    struct model_config_names n = model_config_hf_names;
    n.num_heads = "x.attention.head_count";
    n.num_kv_heads = "x.attention.head_count_kv";
    n.num_experts_per_tok = "x.expert_used_count";
    test_cond("filled struct validates", model_config_validate(&c, &n, "m.gguf", &err) == MS_OK);
    struct model_config bad = c;
    bad.num_kv_heads = 3;
    test_cond("heads refusal names the source's keys",
              model_config_validate(&bad, &n, "m.gguf", &err) != MS_OK && strstr(err.msg, "m.gguf") &&
                  strstr(err.msg, "x.attention.head_count_kv 3"));
    bad = c;
    bad.num_experts_per_tok = 9;
    test_cond("top-k refusal", model_config_validate(&bad, &n, "m.gguf", &err) != MS_OK &&
                                   strstr(err.msg, "x.expert_used_count 9"));
    bad = c;
    bad.eos_token_ids[0] = 1000;
    bad.num_eos_token_ids = 1;
    test_cond("eos outside the vocabulary refused", model_config_validate(&bad, &n, "m.gguf", &err) != MS_OK &&
                                                        strstr(err.msg, "eos_token_id"));
    bad = c;
    bad.layer_is_sparse[1] = false;
    bad.intermediate_size = 0;
    test_cond("dense layer without intermediate size refused",
              model_config_validate(&bad, &n, "m.gguf", &err) != MS_OK && strstr(err.msg, "intermediate_size"));
    bad = c;
    bad.rope_scaling.type = ROPE_SCALING_YARN;
    bad.rope_scaling.factor = 0.5;
    bad.rope_scaling.original_max_position_embeddings = 4096;
    test_cond("yarn factor below 1 refused", model_config_validate(&bad, &n, "m.gguf", &err) != MS_OK &&
                                                 strstr(err.msg, "factor"));
}

int main(void)
{
    test_validate_filled();
    test_defaults_and_layers();
    test_yarn();
    test_generation();
    test_refusals();
    test_report();
}
