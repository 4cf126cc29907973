"""Writer of the tiny GLM-4.5 checkpoint: tokenizer, chat template, random bf16 weights.

Runs as a script in an interpreter that has numpy and `tokenizers` (the vLLM engine venv,
not glmctl's own): `python -I tiny_writer.py --out DIR < config.json`. It imports nothing
outside the standard library at the top, and nothing from glmctl at all, for that reason.
`controlplane/engines/tiny_model.py` builds the config and caches the result.

Layout, as zai-org's GLM-4.5 checkpoints have it: routed experts saved one by one
(`mlp.experts.{e}.gate_proj/up_proj/down_proj`, not the fused 3-D layout recent transformers
writes), a shared expert, the router's `e_score_correction_bias` (float32), one MTP layer
after the last decoder layer (`enorm`, `hnorm`, `eh_proj`, `shared_head.norm`; it reuses the
main embedding and lm_head), and a byte-level BPE tokenizer with GLM's special tokens.
"""

from __future__ import annotations

import argparse
import json
import struct
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import numpy as np

SEED = 20250728  # GLM-4.5's release date; any fixed seed works
INIT_STD = 0.02  # transformers Glm4MoeConfig.initializer_range

# GLM-4.5 tokenizer_config.json: control tokens (special, stripped when decoding) ...
CONTROL_TOKENS = (
    "<|endoftext|>",
    "[MASK]",
    "[gMASK]",
    "[sMASK]",
    "<sop>",
    "<eop>",
    "<|system|>",
    "<|user|>",
    "<|assistant|>",
    "<|observation|>",
    "<|begin_of_image|>",
    "<|end_of_image|>",
    "<|begin_of_video|>",
    "<|end_of_video|>",
)
# ... and tags the tool and reasoning parsers read from the text (not special: kept).
TAG_TOKENS = (
    "<think>",
    "</think>",
    "<tool_call>",
    "</tool_call>",
    "<tool_response>",
    "</tool_response>",
    "<arg_key>",
    "</arg_key>",
    "<arg_value>",
    "</arg_value>",
    "/nothink",
)
# generation_config.json of GLM-4.5: generation stops at any of these.
EOS_TOKENS = ("<|endoftext|>", "<|user|>", "<|observation|>")

# A GLM-4.5-style chat template, written for this model (same roles, tool block and tags).
CHAT_TEMPLATE = """[gMASK]<sop>
{%- if tools -%}
<|system|>
# Tools

You may call one or more functions to assist with the user query.

You are provided with function signatures within <tools></tools> XML tags:
<tools>
{% for tool in tools %}{{ tool | tojson }}
{% endfor %}</tools>

For each function call, output the function name and arguments within the following XML format:
<tool_call>{function-name}
<arg_key>{arg-key-1}</arg_key>
<arg_value>{arg-value-1}</arg_value>
...
</tool_call>
{%- endif -%}
{%- macro text(content) -%}
{%- if content is string -%}{{ content }}
{%- elif content -%}{%- for part in content if part.type == 'text' -%}{{ part.text }}{%- endfor -%}
{%- endif -%}
{%- endmacro -%}
{%- for m in messages -%}
{%- if m.role == 'system' -%}
<|system|>
{{ text(m.content) }}
{%- elif m.role == 'user' -%}
<|user|>
{{ text(m.content) }}
{%- elif m.role == 'assistant' -%}
<|assistant|>
<think>{{ m.reasoning_content or '' }}</think>
{{ text(m.content) }}
{%- for call in m.tool_calls or [] -%}
{%- set fn = call.function if call.function is defined else call -%}
<tool_call>{{ fn.name }}
{% if fn.arguments is mapping -%}
{% for key, value in fn.arguments.items() -%}
<arg_key>{{ key }}</arg_key>
<arg_value>{{ value if value is string else value | tojson }}</arg_value>
{% endfor -%}
{% else -%}
{{ fn.arguments }}
{% endif -%}
</tool_call>
{%- endfor -%}
{%- elif m.role == 'tool' -%}
<|observation|>
<tool_response>
{{ text(m.content) }}
</tool_response>
{%- endif -%}
{%- endfor -%}
{%- if add_generation_prompt -%}
<|assistant|>
{%- if enable_thinking is defined and not enable_thinking %}
<think></think>
{%- endif -%}
{%- endif -%}"""

# Training text for the byte-level BPE (English and code, so merges look like real ones).
CORPUS = (
    "GLM-4.5 is a mixture-of-experts language model with 355 billion parameters in all and"
    " 32 billion active per token. It serves chat, tool calls and long reasoning. The model"
    " thinks inside think tags before it answers, and calls tools with an XML format. A"
    " serving control plane places engine groups on nodes, starts the engines, waits until"
    " they are healthy, routes requests by load and prefix, and scales replicas up and down."
    " The router reads the number of running and waiting requests and the KV cache usage"
    " from each engine's metrics. def main(argv): return run(parse(argv)) if argv else 0"
    " for token in stream: yield token; print('hello, world'); x = [1, 2, 3]"
    " What is the weather in Beijing today? It is sunny, 23 degrees, with a light breeze."
    " Please write a function that adds two numbers and returns the sum of the two numbers."
)


def write_checkpoint(config: dict[str, Any], out: Path, seed: int = SEED) -> None:
    """Write config, tokenizer, chat template and random bf16 weights into `out`."""
    out.mkdir(parents=True, exist_ok=True)
    token_ids = write_tokenizer(out, config["vocab_size"])
    config = dict(config)
    config["eos_token_id"] = [token_ids[t] for t in EOS_TOKENS]
    config["pad_token_id"] = token_ids["<|endoftext|>"]
    (out / "config.json").write_text(json.dumps(config, indent=2) + "\n")
    generation = {"eos_token_id": config["eos_token_id"], "pad_token_id": config["pad_token_id"]}
    (out / "generation_config.json").write_text(json.dumps(generation, indent=2) + "\n")
    save_safetensors(out / "model.safetensors", random_weights(config, seed))


def write_tokenizer(out: Path, vocab_size: int) -> dict[str, int]:
    """Train a byte-level BPE on `CORPUS`, add GLM's tokens; returns their ids."""
    from tokenizers import AddedToken, Tokenizer, decoders, models, pre_tokenizers, trainers

    tokenizer = Tokenizer(models.BPE())
    tokenizer.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tokenizer.decoder = decoders.ByteLevel()
    added = len(CONTROL_TOKENS) + len(TAG_TOKENS)
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size - added,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tokenizer.train_from_iterator([CORPUS] * 4, trainer=trainer)
    tokenizer.add_special_tokens([AddedToken(t, special=True) for t in CONTROL_TOKENS])
    tokenizer.add_tokens([AddedToken(t, special=False, normalized=False) for t in TAG_TOKENS])
    if tokenizer.get_vocab_size() > vocab_size:
        raise ValueError(f"tokenizer has {tokenizer.get_vocab_size()} > {vocab_size} tokens")
    tokenizer.save(str(out / "tokenizer.json"))
    # Every token was just added, so token_to_id finds each (its stubs say int | None).
    ids = {t: int(tokenizer.token_to_id(t) or 0) for t in (*CONTROL_TOKENS, *TAG_TOKENS)}
    tokenizer_config = {
        "tokenizer_class": "PreTrainedTokenizerFast",
        "model_max_length": 1_000_000,
        "eos_token": "<|endoftext|>",
        "pad_token": "<|endoftext|>",
        "padding_side": "left",
        "clean_up_tokenization_spaces": False,
        "chat_template": CHAT_TEMPLATE,
        "additional_special_tokens": list(CONTROL_TOKENS[1:]),
    }
    (out / "tokenizer_config.json").write_text(json.dumps(tokenizer_config, indent=2) + "\n")
    (out / "chat_template.jinja").write_text(CHAT_TEMPLATE + "\n")
    return ids


def weight_shapes(config: dict[str, Any]) -> dict[str, tuple[int, ...]]:
    """Every tensor name and shape of the checkpoint, as GLM-4.5's safetensors index names them."""
    h, vocab = config["hidden_size"], config["vocab_size"]
    shapes: dict[str, tuple[int, ...]] = {
        "model.embed_tokens.weight": (vocab, h),
        "model.norm.weight": (h,),
        "lm_head.weight": (vocab, h),
    }
    main, nextn = config["num_hidden_layers"], config["num_nextn_predict_layers"]
    for layer in range(main + nextn):
        shapes.update(_layer_shapes(config, layer))
        if layer >= main:  # MTP: fuse embedding and hidden state; reuses embed and lm_head
            prefix = f"model.layers.{layer}"
            shapes[f"{prefix}.enorm.weight"] = (h,)
            shapes[f"{prefix}.hnorm.weight"] = (h,)
            shapes[f"{prefix}.eh_proj.weight"] = (h, 2 * h)
            shapes[f"{prefix}.shared_head.norm.weight"] = (h,)
    return shapes


def _layer_shapes(config: dict[str, Any], layer: int) -> dict[str, tuple[int, ...]]:
    h, head_dim = config["hidden_size"], config["head_dim"]
    q, kv = config["num_attention_heads"] * head_dim, config["num_key_value_heads"] * head_dim
    p = f"model.layers.{layer}"
    shapes: dict[str, tuple[int, ...]] = {
        f"{p}.input_layernorm.weight": (h,),
        f"{p}.post_attention_layernorm.weight": (h,),
        f"{p}.self_attn.q_proj.weight": (q, h),
        f"{p}.self_attn.k_proj.weight": (kv, h),
        f"{p}.self_attn.v_proj.weight": (kv, h),
        f"{p}.self_attn.o_proj.weight": (h, q),
    }
    if config["attention_bias"]:
        shapes.update(
            {f"{p}.self_attn.{n}_proj.bias": (w,) for n, w in zip("qkv", (q, kv, kv), strict=True)}
        )
    if layer < config["first_k_dense_replace"]:
        shapes.update(_mlp_shapes(f"{p}.mlp", h, config["intermediate_size"]))
        return shapes
    experts, width = config["n_routed_experts"], config["moe_intermediate_size"]
    shapes[f"{p}.mlp.gate.weight"] = (experts, h)
    shapes[f"{p}.mlp.gate.e_score_correction_bias"] = (experts,)
    for e in range(experts):
        shapes.update(_mlp_shapes(f"{p}.mlp.experts.{e}", h, width))
    shared = width * config["n_shared_experts"]
    shapes.update(_mlp_shapes(f"{p}.mlp.shared_experts", h, shared))
    return shapes


def _mlp_shapes(prefix: str, hidden: int, width: int) -> dict[str, tuple[int, ...]]:
    return {
        f"{prefix}.gate_proj.weight": (width, hidden),
        f"{prefix}.up_proj.weight": (width, hidden),
        f"{prefix}.down_proj.weight": (hidden, width),
    }


def random_weights(config: dict[str, Any], seed: int = SEED) -> dict[str, np.ndarray]:
    """Normal(0, 0.02) matrices, unit norms, zero biases; the router bias stays float32."""
    import numpy as np

    rng = np.random.default_rng(seed)
    tensors: dict[str, np.ndarray] = {}
    for name, shape in weight_shapes(config).items():
        if name.endswith("norm.weight"):
            tensors[name] = np.ones(shape, np.float32)
        elif name.endswith((".bias", "e_score_correction_bias")):
            tensors[name] = np.zeros(shape, np.float32)
        else:
            tensors[name] = rng.normal(0.0, INIT_STD, shape).astype(np.float32)
    return tensors


def save_safetensors(path: Path, tensors: dict[str, np.ndarray]) -> None:
    """Write a safetensors file: bf16 for weights, F32 for the router's correction bias.

    Format (huggingface/safetensors README): u64 little-endian header size, JSON header of
    {name: {dtype, shape, data_offsets}}, then the raw little-endian tensor bytes.
    """
    import numpy as np

    header: dict[str, Any] = {"__metadata__": {"format": "pt"}}
    blobs: list[bytes] = []
    offset = 0
    for name in sorted(tensors):
        array = np.ascontiguousarray(tensors[name], dtype=np.float32)
        if name.endswith("e_score_correction_bias"):
            dtype, blob = "F32", array.astype("<f4").tobytes()
        else:  # bf16 = the high 16 bits of float32, rounded to nearest even
            bits = array.view(np.uint32).astype(np.uint64)
            rounded = (bits + 0x7FFF + ((bits >> 16) & 1)) >> 16
            dtype, blob = "BF16", rounded.astype("<u2").tobytes()
        header[name] = {
            "dtype": dtype,
            "shape": list(array.shape),
            "data_offsets": [offset, offset + len(blob)],
        }
        blobs.append(blob)
        offset += len(blob)
    encoded = json.dumps(header, separators=(",", ":")).encode()
    encoded += b" " * (-len(encoded) % 8)
    with path.open("wb") as f:
        f.write(struct.pack("<Q", len(encoded)))
        f.write(encoded)
        for blob in blobs:
            f.write(blob)


def main(argv: list[str] | None = None) -> int:
    """Script entry: reads a config JSON on stdin, writes the checkpoint into --out."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--seed", type=int, default=SEED)
    args = parser.parse_args(argv)
    write_checkpoint(json.load(sys.stdin), args.out, args.seed)
    return 0


if __name__ == "__main__":
    sys.exit(main())
