"""Published GLM serving runs the performance model is checked against but never fitted to.

No constant of `controlplane.capacity.perf_constants` was chosen with these figures, except
where a case says `sets` (the GLM-4.5V runs give the SGLang prefill stall; they are listed
beside the held-out ones so the reader sees how well the term's own source is met, but they
are not counted as held out). Each figure is pinned to its page and commit.

The SGLang cookbook runs use `sglang.bench_serving --dataset-name random` without
`--random-range-ratio`, whose default (0.0 in SGLang 0.5.6) draws every input and output length
uniformly from [1, L]: the pages' own totals show it (249,831 input tokens for 500 prompts of
"1000" is a mean of 500). They are replayed as that closed loop (`capacity.replay.replay`), with the
pages' --num-prompts. TPOT is the page's median TPOT, throughput its output token throughput.

The vLLM recipe's GLM-4.5V run sends its 16 prompts at once (`--request-rate 10000`,
`--ignore-eos`, fixed lengths: 128,000 input tokens for 16 prompts of 8000), which is the closed
loop at 16 clients with 16 prompts. Published runs considered and not used are listed in
`NOT_USED`, with why.
"""

from __future__ import annotations

from controlplane.spec.models import EngineKind
from ops.calibration.perf_cases import CalibrationCase

COOKBOOK_GLM46 = (
    "https://github.com/sgl-project/sgl-cookbook/blob/2c360cae923d627bc5b89e8d312f02ec597260b7"
    "/docs/autoregressive/GLM/GLM-4.6.md"
)
COOKBOOK_GLM45V = (
    "https://github.com/sgl-project/sgl-cookbook/blob/922573be5caaa0a85ba7792ea0df8113b61edc03"
    "/docs/autoregressive/GLM/GLM-4.5V.md"
)
GLM45_ISSUE_113 = "https://github.com/zai-org/GLM-4.5/issues/113"
VLLM_RECIPE_GLM45V = (
    "https://github.com/vllm-project/recipes/blob/39672fb505f1b0718653186320fd2130174d000b"
    "/GLM/GLM-4.5V.md"
)
COOKBOOK_GLM5 = (
    "https://github.com/sgl-project/sgl-cookbook/blob/b7feb18b39d292e0c4528606260d1092a31f0659"
    "/docs/autoregressive/GLM/GLM-5.md"
)
VLLM_RECIPE_GLM5 = (
    "https://github.com/vllm-project/recipes/blob/ced8444788526ff3fe875ecacd60ec7eb456d8c8"
    "/GLM/GLM5.md"
)
VLLM_RECIPE_GLMV = (
    "https://github.com/vllm-project/recipes/blob/5cc86ffa74d76cba488e440ce439b365cf5563b8"
    "/GLM/GLM-V.md"
)

_GLM46_NOTE = (
    "SGLang cookbook, GLM-4.6 BF16 on 8 x B200, `sglang.launch_server --tp 8`, SGLang"
    " 0.5.6.post1, `sglang.bench_serving --dataset-name random` with --num-prompts 10 / 80 /"
    " 500 (or 320) at 1 / 16 / 100 (or 64) clients. High confidence in the numbers (full"
    " benchmark output pasted); held out: no constant was read from it."
)
_GLM45V_NOTE = (
    "SGLang cookbook, GLM-4.5V BF16 (text-only prompts) on B200, `--tp 4`, SGLang 0.5.6.post2;"
    " replayed with GLM-4.5-Air, its language model (glm4v_moe's text half: 46 layers, 128"
    " experts). Sets the SGLang prefill stall (P95 against median inter-token latency at 100"
    " clients), so it is not held out."
)

# (input len, output len, clients, prompts, median TPOT ms, output tok/s, mean TTFT ms,
#  median ITL ms: the decode step, a diagnostic only; None where the page is not re-read here)
_GLM46_RUNS = [
    (1000, 1000, 1, 10, 14.80, 65.97, 155.57, 14.82),
    (1000, 1000, 16, 80, 24.55, 565.14, 196.08, 21.40),
    (1000, 1000, 100, 500, 52.20, 1820.61, 337.77, 35.05),
    (1000, 8000, 1, 10, 14.94, 66.68, 160.21, 14.96),
    (1000, 8000, 16, 80, 22.14, 632.28, 228.54, 21.80),
    (1000, 8000, 64, 320, 34.02, 1684.24, 232.45, 32.63),
    (8000, 1000, 1, 10, 15.03, 64.66, 189.48, 15.03),
    (8000, 1000, 16, 80, 25.73, 544.15, 339.88, 21.68),
    (8000, 1000, 64, 320, 49.04, 1245.44, 355.82, 32.46),
]
_GLM45V_RUNS = [
    (1000, 1000, 1, 10, 7.34, 132.99, 78.10, None),
    (1000, 1000, 16, 80, 13.59, 1030.85, 122.50, None),
    (1000, 1000, 100, 500, 28.84, 3309.62, 178.94, 18.35),
    (1000, 8000, 1, 10, 7.41, 134.16, 111.25, None),
    (1000, 8000, 16, 80, 12.27, 1153.58, 97.61, None),
    (1000, 8000, 64, 320, 19.60, 2950.15, 195.87, None),
]


# Held-out figures the model misses by more than 10%, with what the data say about why. They
# stay in every table with their error; they are left out of the 10% assertion only.
GAPS = {
    ("glm-4.6", 1000, 1000, 100): {
        "tpot": "at ~90 running streams the page's median inter-token latency (pure decode"
        " steps) is 35.1 ms where the model's decode step is 30.0 ms (-14%), while at 16 streams"
        " both agree (21.4 vs 21.7 ms): the BF16 MoE decode at large batch on B200 costs more"
        " than the HBM roofline says, and no term explains it yet (GLM-4.5V on TP 4 does not"
        " show it: 18.35 vs 17.3 ms)",
        "output_tps": "the same decode-step gap as TPOT",
    },
    ("glm-4.5-air-fp8", 8000, 1000, 16): {
        "tpot": "the page's median inter-token latency (the decode step, 16 streams at 8-9k"
        " tokens of context) is 19.2 ms where the model's is 15.6 ms (-19%): the model is too"
        " fast on the decode step itself, not on the workload; GLM-4.5V-FP8 on 4 x H100 at one"
        " stream (vLLM recipe, VisionArena, TP 4 with EP) is within 6%, so the missing cost"
        " grows with the batch or the context (the B200 gap at 100 streams points the same"
        " way)",
        "output_tps": "the same decode-step gap as TPOT, and the model's mean TTFT is 1.2 s"
        " where the page's is 2.9 s (16 prefills of 8000 tokens queued at once)",
    },
    ("glm-5-fp8", 1000, 1000, 1): {
        "tpot": "one step (a verify forward over 4 tokens and 3 EAGLE draft passes) is 17.4 ms in"
        " the model and 26.2 ms on the page (its mean TPOT x accept length 3.48): the model is"
        " too fast on GLM-5's layer itself at batch 1, where the layer floor fitted on GLM-4.x"
        " (GQA) dominates; GLM-5's DSA adds an indexer (its own projections, FP8 logits and a"
        " top-k) to each of its 78 layers, which that floor does not count. One run: not"
        " enough to size a term",
        "output_tps": "the same step, and the page's mean TTFT (291 ms for ~610-token prompts)"
        " is 3x the model's",
    },
    ("glm-5-fp8", 1000, 1000, 100): {
        "tpot": "the page's TPOT x accept length 3.50 gives a 128 ms step at ~46 running"
        " requests (Little's law on its 2.43 requests/s; SGLang runs at most 48 under EAGLE),"
        " 2.9x the model's 44 ms; at one client the ratio is 1.5x (above): the gap grows with"
        " the batch, as on the GLM-4.6 B200 run, but three times as large. Not identified",
        "output_tps": "the same step: the page serves 1,215 tokens/s, the model 2,350",
    },
    ("glm-5-fp8", 8000, 1024, 32): {
        "output_tps": "the decode step agrees (median ITL 41.9 ms on the page, one step of 1.64"
        " tokens; 46.7 ms in the model: +12%) and TPOT is within 10%, but the page's mean TTFT"
        " is 13.4 s where the model's is 4.1 s: 32 prompts of 8,000 tokens prefill at ~11k"
        " tokens/s on the page (p99 TTFT 23 s), a third of the model's prefill rate (vLLM"
        " 0.18's GLM-5 prefill: DSA indexer and FP8 MoE; the prefill efficiency is fitted on"
        " GLM-4.x runs only)",
    },
}


Run = tuple[int, int, int, int, float, float, float, float | None]


def _cookbook(prefix: str, model: str, tp: int, run: Run) -> CalibrationCase:
    isl, osl, clients, prompts, tpot, tps, ttft, itl = run
    glm46 = model == "glm-4.6"
    return CalibrationCase(
        name=f"{prefix}-{isl // 1000}k{osl // 1000}k-c{clients}",
        source=COOKBOOK_GLM46 if glm46 else COOKBOOK_GLM45V,
        engine="SGLang 0.5.6.post1" if glm46 else "SGLang 0.5.6.post2",
        replay_engine=EngineKind.SGLANG,
        model=model,
        precision="bf16",
        gpu="B200",
        gpus=tp,
        tensor=tp,
        expert=1,
        isl=isl,
        osl=osl,
        concurrency=clients,
        tpot_ms=tpot,
        ttft_ms=ttft,
        output_tps=tps,
        confidence=_GLM46_NOTE if glm46 else _GLM45V_NOTE,
        num_prompts=prompts,
        uniform_lengths=True,
        median_tpot=True,
        median_itl_ms=itl,
        unreachable=GAPS.get((model, isl, osl, clients), {}),
    )


def _glm5_cookbook(
    clients: int,
    prompts: int,
    figures: tuple[float, float, float],
    accept: float,
    max_running: int | None,
    lengths: str,
) -> CalibrationCase:
    """A run of the SGLang cookbook's GLM-5-FP8 page (8 x H200, EAGLE 3 / 1 / 4, 1k / 1k)."""
    tpot, ttft, tps = figures
    return CalibrationCase(
        name=f"sglang-cookbook-h200-glm5-fp8-tp8-eagle-c{clients}",
        source=COOKBOOK_GLM5,
        engine="SGLang commit 947927bdb (Feb 2026)",
        replay_engine=EngineKind.SGLANG,
        model="glm-5-fp8",
        precision="fp8",
        gpu="H200",
        gpus=8,
        tensor=8,
        expert=1,
        isl=1000,
        osl=1000,
        concurrency=clients,
        tpot_ms=tpot,
        ttft_ms=ttft,
        output_tps=tps,
        confidence="SGLang cookbook, GLM-5-FP8 on 8 x H200, `sglang serve --tp 8"
        " --speculative-algorithm EAGLE --speculative-num-steps 3 --speculative-eagle-topk 1"
        " --speculative-num-draft-tokens 4`, `sglang.bench_serving --dataset-name random"
        " --random-input-len 1000 --random-output-len 1000 --num-prompts"
        f" {prompts} --max-concurrency {clients}` {lengths}; the page's accept length"
        f" {accept:.2f} is given to the model (GLM-4.x's per-position MTP acceptance does not"
        " carry over). Full benchmark output pasted. Held out: no constant was read from it.",
        speculative={
            "algorithm": "eagle",
            "num_steps": 3,
            "eagle_topk": 1,
            "num_draft_tokens": 4,
            "acceptance_length": accept,
        },
        num_prompts=prompts,
        uniform_lengths=True,
        median_tpot=True,
        max_running=max_running,
        unreachable=GAPS[("glm-5-fp8", 1000, 1000, clients)],
    )


SETS_PREFILL_STALL = "prefill_stall_s"

HELD_OUT: tuple[CalibrationCase, ...] = (
    *(_cookbook("sglang-cookbook-b200-glm46-bf16-tp8", "glm-4.6", 8, r) for r in _GLM46_RUNS),
    CalibrationCase(
        name="vllm-recipe-h100-glm45v-fp8-tp4-8k1k-c16",
        source=VLLM_RECIPE_GLM45V,
        engine="vLLM (Aug 2025; version not stated, 0.10.x by date)",
        replay_engine=EngineKind.VLLM,
        model="glm-4.5-air-fp8",
        precision="fp8",
        gpu="H100",
        gpus=4,
        tensor=4,
        expert=1,
        isl=8000,
        osl=1000,
        concurrency=16,
        tpot_ms=21.74,
        ttft_ms=2906.26,
        output_tps=646.09,
        confidence="vLLM recipe, GLM-4.5V-FP8 on 4 x H100, `vllm serve --tensor-parallel-size 4`,"
        " `vllm bench serve --dataset-name random --random-input-len 8000 --random-output-len"
        " 1000 --request-rate 10000 --num-prompts 16 --ignore-eos` (text-only prompts; replayed"
        " with GLM-4.5-Air-FP8, its language model). Full benchmark output pasted; the vLLM"
        " version is not stated. Held out: no constant was read from it.",
        num_prompts=16,
        median_tpot=True,
        median_itl_ms=19.22,
        unreachable=GAPS[("glm-4.5-air-fp8", 8000, 1000, 16)],
    ),
    CalibrationCase(
        name="vllm-recipe-h100-glm45v-fp8-tp4ep4-visionarena-c1",
        source=VLLM_RECIPE_GLMV,
        engine="vLLM >= 0.12 (Dec 2025)",
        replay_engine=EngineKind.VLLM,
        model="glm-4.5-air-fp8",
        precision="fp8",
        gpu="H100",
        gpus=4,
        tensor=4,
        expert=4,
        isl=1000,
        osl=127,
        concurrency=1,
        tpot_ms=8.47,
        ttft_ms=None,
        output_tps=None,
        confidence="vLLM recipe, GLM-4.5V-FP8 on 4 x H100, `--tensor-parallel-size 4"
        " --enable-expert-parallel`, `vllm bench serve --dataset-name hf --dataset-path"
        " lmarena-ai/VisionArena-Chat --num-prompts 1000 --max-concurrency 1`: median TPOT only"
        " (127 output tokens on average; the prompts carry images, so the context is assumed"
        " 1k tokens and the output tokens/s, which includes image encoding, is not compared).",
    ),
    CalibrationCase(
        name="sglang-h100-fp8-tp8-c1-glm45-issue113",
        source=GLM45_ISSUE_113,
        engine="SGLang 0.5.6",
        replay_engine=EngineKind.SGLANG,
        model="glm-4.6-fp8",
        precision="fp8",
        gpu="H100",
        gpus=8,
        tensor=8,
        expert=1,
        isl=1000,
        osl=1000,
        concurrency=1,
        tpot_ms=None,
        ttft_ms=None,
        output_tps=70.0,
        confidence="A user's single-request decode speed ('about 70 tokens/s') of GLM-4.6-FP8 on"
        " 8 x H100 with SGLang 0.5.6; launch flags and lengths not given (TP 8 and 1k / 1k"
        " assumed). Low confidence: if the user ran the recommended EAGLE MTP, the figure is"
        " not comparable with a plain decode.",
        unreachable={
            "output_tps": "launch flags unknown (speculative decoding changes the figure by"
            " ~1.5x); reported, not held to 10%"
        },
    ),
    _glm5_cookbook(
        1,
        10,
        (6.97, 290.88, 117.96),
        3.48,
        None,
        "(lengths uniform: 6,101 input and 4,220 output tokens for 10 prompts)",
    ),
    _glm5_cookbook(
        100,
        1000,
        (36.52, 20613.80, 1214.97),
        3.50,
        48,
        "(502,493 input and 500,251 output tokens: uniform lengths). The server sets no"
        " --max-running-requests, so SGLang's EAGLE default of 48 applies (server_args.py:"
        " 'Max running requests is reset to 48 for speculative decoding'): the other ~52"
        " clients wait in its queue (mean TTFT 20.6 s), which the replay reproduces with"
        " that cap",
    ),
    CalibrationCase(
        name="vllm-recipe-h200-glm5-fp8-tp8-mtp3-8k1k-c32",
        source=VLLM_RECIPE_GLM5,
        engine="vLLM 0.18.0",
        replay_engine=EngineKind.VLLM,
        model="glm-5-fp8",
        precision="fp8",
        gpu="H200",
        gpus=8,
        tensor=8,
        expert=1,
        isl=8000,
        osl=1024,
        concurrency=32,
        tpot_ms=34.58,
        ttft_ms=13395.44,
        output_tps=526.57,
        confidence="vLLM recipe, GLM-5-FP8 on 8 x H200, `vllm serve --tensor-parallel-size 8"
        " --speculative-config.method mtp --speculative-config.num_speculative_tokens 3`, `vllm"
        " bench serve --dataset-name random --random-input 8000 --random-output 1024"
        " --request-rate 10 --num-prompts 32 --ignore-eos` (fixed lengths; 32 requests arrive"
        " within ~3 s, peak concurrency 32: replayed as 32 clients with 32 prompts); the page's"
        " acceptance length 1.64 is given to the model. Full benchmark output pasted. Held"
        " out: no constant was read from it.",
        speculative={
            "algorithm": "mtp",
            "num_steps": 3,
            "num_draft_tokens": 3,
            "acceptance_length": 1.64,
        },
        num_prompts=32,
        median_tpot=True,
        median_itl_ms=41.88,
        unreachable=GAPS[("glm-5-fp8", 8000, 1024, 32)],
    ),
)

# Runs a stated constant was read from: listed with their errors, not counted as held out.
SETS: dict[str, tuple[CalibrationCase, ...]] = {
    SETS_PREFILL_STALL: tuple(
        _cookbook("sglang-cookbook-b200-glm45v-bf16-tp4", "glm-4.5-air", 4, r) for r in _GLM45V_RUNS
    ),
}


# Published runs looked at for the held-out set and left out, with why (the replay is a closed
# loop of C clients with fixed or uniform lengths and no KV-capacity queue).
NOT_USED: tuple[tuple[str, str], ...] = (
    (
        "https://github.com/gpustack/gpustack/blob/72aee9dd195ff5c9bf3a4886add80038ce79aef8"
        "/docs/performance-lab/glm-4.6/h200.md",
        "8 x H200, GLM-4.6 / -FP8, SGLang 0.5.3 and vLLM 0.11.0: every run sends all its"
        " prompts at once (1,000 ShareGPT, 500 x 4000/200, 100 x 32000/100; 'Peak concurrent"
        " requests' equals the prompt count), so the engine queues on KV capacity and its"
        " running-request limit, which the replay does not model; its saturated ShareGPT runs"
        " are in the fit set already",
    ),
    (
        "https://github.com/gpustack/gpustack/blob/a5c9fafc3022e81779c2c5ade32c5b703ce2248c"
        "/docs/performance-lab/glm-4.6/h100.md",
        "8 x H100, GLM-4.6-FP8: the same unbounded bursts (1,000 ShareGPT prompts at once)",
    ),
    (
        "https://github.com/gpustack/gpustack/blob/48d8b104d50ac4d41edb33b5cc0300177ead2427"
        "/docs/performance-lab/glm-4.5-air/h100.md",
        "H100, GLM-4.5-Air: the same unbounded bursts",
    ),
    (
        "https://github.com/sgl-project/sglang/pull/13873",
        "open-loop Poisson arrivals (request rate 4, max concurrency 128, mean 65), EAGLE"
        " speculative decoding (accept length 1.97), a 4.1k-token mean prompt from an unstated"
        " dataset; the GPU is not given with the benchmark output",
    ),
    (
        "https://github.com/vllm-project/recipes/blob/39672fb505f1b0718653186320fd2130174d000b"
        "/GLM/GLM-4.5.md",
        "GLM-4.5-FP8 `--tensor-parallel-size 8`, 16 prompts of 8000/1000 at once (median TPOT"
        " 22.39 ms, 651.58 tok/s), but the GPU is not named",
    ),
    (
        "https://github.com/vllm-project/recipes/blob/da8e84e035d9772ec866d6055e58cb1c913bb8cb"
        "/GLM/GLM5.md",
        "GLM-5-FP8 8 x H200 with one MTP token, the same 32-prompt burst as the held-out MTP-3"
        " run, but no acceptance figure is published and GLM-4.x's does not carry over",
    ),
    (
        "https://github.com/vllm-project/recipes/blob/5cc86ffa74d76cba488e440ce439b365cf5563b8"
        "/GLM/GLM-V.md",
        "its request-rate-20 run: open loop with no concurrency limit (up to 283 requests in"
        " flight) on image prompts (its one-client run is held out)",
    ),
)
