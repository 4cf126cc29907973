"""Architectures of the catalogued checkpoints, as their `config.json` files give them.

Each `Architecture` names its sources; a number that comes from somewhere else than the
architecture's main source says so in a comment beside it. Parameter counts are never
typed in here: `Architecture.total_params` derives them.
"""

from __future__ import annotations

from dataclasses import replace

from controlplane.catalog.architecture import Architecture, MlpKind

_MB_GLM45 = "NVIDIA Megatron-Bridge GLM-4.5 model page; zai-org/GLM-4.5 config.json"
_HF_AIR = "transformers Glm4MoeConfig defaults (GLM-4.5-Air); zai-org/GLM-4.5-Air config.json"

GLM45 = Architecture(
    model_type="glm4_moe",
    hidden_size=5120,
    num_layers=92,
    num_attention_heads=96,
    num_kv_heads=8,  # num_key_value_heads
    head_dim=128,
    intermediate_size=12288,
    vocab_size=151552,
    max_context=131072,  # max_position_embeddings
    moe_intermediate_size=1536,
    num_routed_experts=160,  # n_routed_experts
    num_shared_experts=1,  # n_shared_experts
    experts_per_token=8,  # num_experts_per_tok
    first_dense_layers=3,  # first_k_dense_replace
    num_nextn_layers=1,  # num_nextn_predict_layers: the MTP draft layer
    tie_word_embeddings=False,
    attention_bias=True,  # config.json: q/k/v projections carry biases
    sources=(_MB_GLM45,),
)

GLM45_AIR = Architecture(
    model_type="glm4_moe",
    hidden_size=4096,
    num_layers=46,
    num_attention_heads=96,
    num_kv_heads=8,  # num_key_value_heads
    head_dim=128,
    intermediate_size=10944,
    vocab_size=151552,
    max_context=131072,  # max_position_embeddings
    moe_intermediate_size=1408,
    num_routed_experts=128,  # n_routed_experts
    num_shared_experts=1,  # n_shared_experts
    experts_per_token=8,  # num_experts_per_tok
    first_dense_layers=1,  # first_k_dense_replace
    num_nextn_layers=1,  # num_nextn_predict_layers: the MTP draft layer
    tie_word_embeddings=False,
    attention_bias=True,  # config.json (transformers' default is false)
    sources=(_HF_AIR,),
)

# GLM-4.6 keeps GLM-4.5's shape and extends the context to 200K (202,752 positions).
GLM46 = Architecture(
    **{
        **{k: getattr(GLM45, k) for k in GLM45.__dataclass_fields__ if k != "sources"},
        "max_context": 202752,
    },
    sources=(
        "zai-org/GLM-4.6 config.json (max_position_embeddings 202752); shape as GLM-4.5;"
        " huggingface/transformers Glm4MoeLiteConfig / GlmMoeDsaConfig carry the same"
        " 202752 default for the 200K GLM generations",
    ),
)

CHATGLM2_6B = Architecture(
    model_type="chatglm",
    hidden_size=4096,
    num_layers=28,
    num_attention_heads=32,
    num_kv_heads=2,  # multi_query_group_num
    head_dim=128,
    intermediate_size=13696,  # ffn_hidden_size, SwiGLU
    vocab_size=65024,  # padded_vocab_size
    max_context=32768,  # seq_length
    attention_bias=True,  # add_qkv_bias
    sources=("THUDM/chatglm2-6b config.json; reference/glm45-deployment.md (TensorRT-LLM)",),
)

# The 32K variant: the same shapes with RoPE base 160000 (rope_ratio 16); glmctl's numbers
# do not depend on the RoPE base, only the engines' support does (catalog/trtllm_matrix.py).
CHATGLM2_6B_32K = replace(
    CHATGLM2_6B,
    sources=(
        "THUDM/chatglm2-6b-32k config.json; TensorRT-LLM examples/chatglm/README.md model"
        " comparison (RoPE base=160000 rather than 10000 in chatglm2_6b)",
    ),
)

CHATGLM_6B = Architecture(
    model_type="chatglm",
    hidden_size=4096,
    num_layers=28,
    num_attention_heads=32,
    num_kv_heads=32,  # multi-head attention
    head_dim=128,
    intermediate_size=16384,  # 4 x hidden, GELU
    vocab_size=130528,  # after the 2023-04 tokenizer update (first release: 150528)
    max_context=2048,
    mlp=MlpKind.PLAIN,
    attention_bias=True,
    sources=("THUDM/chatglm-6b config.json and modeling_chatglm.py (lm_head 4096 x 130528)",),
)

GLM4_9B = Architecture(
    model_type="chatglm",
    hidden_size=4096,
    num_layers=40,
    num_attention_heads=32,
    num_kv_heads=2,  # multi_query_group_num
    head_dim=128,
    intermediate_size=13696,  # ffn_hidden_size, SwiGLU
    vocab_size=151552,  # padded_vocab_size
    max_context=131072,  # glm-4-9b-chat seq_length
    attention_bias=True,  # add_qkv_bias
    sources=("THUDM/glm-4-9b-chat config.json; transformers GlmConfig defaults",),
)

GLM_EDGE_1_5B = Architecture(
    model_type="glm",
    hidden_size=2048,
    num_layers=28,
    num_attention_heads=16,
    num_kv_heads=4,
    head_dim=128,
    intermediate_size=6144,
    vocab_size=59264,
    max_context=8192,
    tie_word_embeddings=True,
    sources=(
        "THUDM/glm-edge-1.5b-chat config.json (GlmForCausalLM, transformers 4.47.0.dev0):"
        " hidden 2048, 28 layers, 16 / 4 heads, head_dim 128, intermediate_size 6144,"
        " vocab 59264, 8192 positions, tied embeddings, no attention bias; as quoted"
        " verbatim in an MLX port's GLM-Edge config test, and the same text-decoder shape"
        " is transformers' GlmAsrConfig default (GLM-ASR-Nano). Derived: 1.47B parameters",
    ),
)

GLM_EDGE_4B = Architecture(
    model_type="glm",
    hidden_size=3072,
    num_layers=40,
    num_attention_heads=24,
    num_kv_heads=6,
    head_dim=128,
    intermediate_size=8192,
    vocab_size=59264,
    max_context=8192,
    sources=("THUDM/glm-edge-v-5b config.json (its GLM-Edge-4B language model; 4.3B params)",),
)

# A tiny random model of GLM-4.5's architecture for real engines on a CPU (tests, laptops):
# every GLM-4.5 feature (MoE with a shared expert, a first dense layer, one MTP layer,
# attention bias, partial rotary) at widths vLLM's CPU kernels accept (head_dim >= 32).
# Generated locally by controlplane/local/tiny_model.py; never downloaded.
GLM45_TINY = Architecture(
    model_type="glm4_moe",
    hidden_size=64,
    num_layers=2,
    num_attention_heads=4,
    num_kv_heads=2,
    head_dim=32,
    intermediate_size=128,
    vocab_size=1024,
    max_context=4096,
    moe_intermediate_size=32,
    num_routed_experts=4,
    num_shared_experts=1,
    experts_per_token=2,
    first_dense_layers=1,
    num_nextn_layers=1,
    tie_word_embeddings=False,
    attention_bias=True,
    sources=("shared/reference/real-engines-on-cpu.md (tiny GLM-4.5 shape vLLM CPU serves)",),
)
