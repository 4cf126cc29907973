"""The vision encoder of GLM's vision-language models (GLM-4.5V, GLM-4.6V) and its processor.

Shapes as transformers defines them (huggingface/transformers
src/transformers/models/glm4v/modeling_glm4v.py `Glm4vVisionModel`, used by `glm4v_moe`):
a 3-D patch embedding (in_channels x temporal_patch x patch x patch -> hidden), learned
position embeddings for image_size / patch positions, `depth` blocks of attention (fused
QKV, no bias) and a gated MLP whose width is `out_hidden_size` (`Glm4VisionMlp`:
`self.intermediate_size = config.out_hidden_size`), a 2 x 2 downsample convolution to
`out_hidden_size` and a patch merger (a projection plus a gated MLP of `intermediate_size`).

Image tokens: the processor resizes each image to multiples of patch x merge (28) pixels
within [min_pixels, max_pixels] of t x h x w with t = temporal_patch_size (an image is two
identical frames), then one language token per merge x merge patches
(huggingface/transformers src/transformers/models/glm4v/image_processing_glm4v.py at
052f526c0bf986965ad2144f49b6d5edfccf653f: `smart_resize`, size shortest_edge 112 x 112,
longest_edge 28 x 28 x 15000). Each image adds a begin and an end marker token.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

# Glm4vImageProcessor.size (transformers, pinned above).
GLM4V_MIN_PIXELS = 112 * 112
GLM4V_MAX_PIXELS = 28 * 28 * 15000
IMAGE_MARKER_TOKENS = 2  # <|begin_of_image|> and <|end_of_image|> around the image tokens


@dataclass(frozen=True)
class VisionEncoder:
    """A GLM-4V vision tower, as `vision_config` gives it."""

    depth: int
    hidden_size: int
    num_heads: int
    out_hidden_size: int  # the language model's hidden size
    intermediate_size: int  # the patch merger's MLP width
    patch_size: int = 14
    spatial_merge_size: int = 2
    temporal_patch_size: int = 2
    image_size: int = 336  # position-embedding grid: (image_size / patch)^2 positions
    in_channels: int = 3
    min_pixels: int = GLM4V_MIN_PIXELS
    max_pixels: int = GLM4V_MAX_PIXELS

    @property
    def factor(self) -> int:
        """Pixels per side of one language token (patch x merge)."""
        return self.patch_size * self.spatial_merge_size

    def params(self) -> int:
        """Parameters of the tower and its merger (norm weights included)."""
        h, out = self.hidden_size, self.out_hidden_size
        patch = self.in_channels * self.temporal_patch_size * self.patch_size**2 * h + h
        positions = (self.image_size // self.patch_size) ** 2 * h
        block = 3 * h * h + h * h + 3 * h * out + 2 * h  # qkv, proj, gated MLP, 2 norms
        downsample = h * self.spatial_merge_size**2 * out + out
        merger = out * out + 3 * out * self.intermediate_size + 2 * out  # proj, MLP, norm
        return patch + positions + self.depth * block + 2 * h + downsample + merger

    def resized(self, height: int, width: int) -> tuple[int, int]:
        """(height, width) the processor resizes an image to (`smart_resize`)."""
        f, t = self.factor, self.temporal_patch_size
        if height < f or width < f:
            scale = max(f / height, f / width)
            height, width = int(height * scale), int(width * scale)
        h_bar, w_bar = round(height / f) * f, round(width / f) * f
        if t * h_bar * w_bar > self.max_pixels:
            beta = math.sqrt(t * height * width / self.max_pixels)
            h_bar = max(f, math.floor(height / beta / f) * f)
            w_bar = max(f, math.floor(width / beta / f) * f)
        elif t * h_bar * w_bar < self.min_pixels:
            beta = math.sqrt(self.min_pixels / (t * height * width))
            h_bar, w_bar = math.ceil(height * beta / f) * f, math.ceil(width * beta / f) * f
        return h_bar, w_bar

    def patches(self, height: int, width: int) -> int:
        """Encoder patches (sequence length inside the tower) for one image."""
        h, w = self.resized(height, width)
        return (h // self.patch_size) * (w // self.patch_size)

    def image_tokens(self, height: int, width: int) -> int:
        """Language-model tokens one image of height x width pixels becomes (markers included)."""
        return self.patches(height, width) // self.spatial_merge_size**2 + IMAGE_MARKER_TOKENS

    @property
    def max_image_tokens(self) -> int:
        """Tokens of the largest image the processor emits (a square at max_pixels)."""
        side = math.isqrt(self.max_pixels // self.temporal_patch_size)
        return self.image_tokens(side, side)

    @property
    def min_image_tokens(self) -> int:
        return self.image_tokens(self.factor, self.factor)
