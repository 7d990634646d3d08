"""From an image in [0, 1] to model input: the evaluation and training transforms.

Both follow the R2Gen recipe scaled to the model's image size S. Evaluation: resize to
S x S (bilinear, antialiased). Training: resize the shorter side to S * 256 / 224 and
take a random S x S crop; no horizontal flip unless asked for (left and right matter in
a chest radiograph). Both end with `normalize`, the config's per-channel mean and std.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from cknet.config import CKNetConfig


def normalize(images: torch.Tensor, config: CKNetConfig) -> torch.Tensor:
    """Subtract the config's per-channel mean and divide by its std.

    Args:
        images: ``(..., 3, H, W)`` in [0, 1].
        config: ``image_mean`` and ``image_std``.

    Returns:
        Float32, the same shape.
    """
    mean = torch.tensor(config.image_mean, dtype=torch.float32)[:, None, None]
    std = torch.tensor(config.image_std, dtype=torch.float32)[:, None, None]
    return (images.float() - mean) / std


def evaluation_transform(image: torch.Tensor, config: CKNetConfig) -> torch.Tensor:
    """Resize an image to the model's size and normalise it.

    Args:
        image: ``(3, H, W)`` in [0, 1].
        config: the image size and normalisation.

    Returns:
        ``(3, image_size, image_size)`` float32.
    """
    size = config.image_size
    resized = F.interpolate(
        image.unsqueeze(0), size=(size, size), mode="bilinear", align_corners=False, antialias=True
    )[0]
    return normalize(resized, config)



def training_transform(image: torch.Tensor, config: CKNetConfig, flip: bool = False) -> torch.Tensor:
    """Resize the shorter side to ``S * 256 / 224``, random ``S x S`` crop, normalise.

    Args:
        image: ``(3, H, W)`` in [0, 1].
        config: the image size S and normalisation.
        flip: also flip horizontally with probability 1/2 (off by default).

    Returns:
        ``(3, S, S)`` float32.
    """
    size = config.image_size
    short = round(size * 256 / 224)
    height, width = image.shape[1:]
    scale = short / min(height, width)
    new_h, new_w = max(size, round(height * scale)), max(size, round(width * scale))
    resized = F.interpolate(image[None], size=(new_h, new_w), mode="bilinear",
                            align_corners=False, antialias=True)[0]
    top = int(torch.randint(0, new_h - size + 1, ()))
    left = int(torch.randint(0, new_w - size + 1, ()))
    crop = resized[:, top:top + size, left:left + size]
    if flip and bool(torch.rand(()) < 0.5):
        crop = crop.flip(-1)
    return normalize(crop, config)
