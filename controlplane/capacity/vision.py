"""The vision encoder's memory beyond its weights: the activation of vLLM's profile run.

vLLM profiles the multimodal encoder before the language model (`profile_run` runs dummy
images of the processor's largest size, as many as the encoder budget of
max(max_num_batched_tokens, tokens of one largest image) language tokens holds) and keeps
the larger of the two peaks out of the KV budget. The encoder peak is estimated from the
tower's widths over all patches of those images: per patch the residual stream, the normed
input, fused QKV (3 h), the attention output (h), the gated MLP's two halves (2 x
out_hidden) and its output (h), in 16 bit; attention itself runs in fused kernels with no
patches x patches matrix. With `--mm-encoder-tp-mode data` (the GLM-V recipe) the tower is
not sharded, so the widths are whole. SGLang does not profile: the encoder runs inside the
memory its automatic fraction keeps back (`engine_rules`), so nothing is added for it.

This is an estimate: no GPU start-up log of GLM-4.5V was available to calibrate it.
"""

from __future__ import annotations

from controlplane.capacity import constants as c
from controlplane.capacity.layout import Layout
from controlplane.capacity.vllm_rules import VllmInputs, activation_peak_bytes
from controlplane.catalog.vision import VisionEncoder

ACTIVATION_BYTES = 2  # bf16


def encoder_widths(tower: VisionEncoder) -> int:
    """Values held per patch at the encoder's peak (see the module docstring)."""
    h = tower.hidden_size
    return 2 * h + 3 * h + h + 2 * tower.out_hidden_size + h


def profile_images(tower: VisionEncoder, batched_tokens: int) -> int:
    """Largest images vLLM's encoder profile runs at once (its encoder budget)."""
    budget = max(batched_tokens, tower.max_image_tokens)
    return max(1, budget // tower.max_image_tokens)


def encoder_peak_bytes(tower: VisionEncoder, batched_tokens: int) -> float:
    """Activation peak of the encoder's profile run over the largest images."""
    patches = (tower.max_image_tokens - 2) * tower.spatial_merge_size**2
    images = profile_images(tower, batched_tokens)
    return float(images * patches * encoder_widths(tower) * ACTIVATION_BYTES)


def vision_extra_bytes(layout: Layout) -> float:
    """Bytes per GPU the encoder's profile peak adds beyond the language model's, for an
    engine whose memory rule `profiles_vision_encoder` (vLLM); 0 for text models."""
    tower = layout.arch.vision
    if tower is None:
        return 0.0
    batched = layout.chunked_prefill or c.VLLM_DEFAULT_MAX_NUM_BATCHED_TOKENS
    language = activation_peak_bytes(VllmInputs.of(layout, layout.tp))
    return max(0.0, encoder_peak_bytes(tower, batched) - language)
