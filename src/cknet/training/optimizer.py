"""`adam`: the paper's optimizer (Section IV.C), with torch's fused kernel where it runs.

torch's fused Adam updates every parameter of a group in one kernel instead of a dozen
operations per tensor. The update is the same Adam step (the results agree to float
rounding, ~1e-7); on a 2-core AMD EPYC, in one run, a step took 1.4 ms instead of 7.1 ms for the demo's
report model and 12.5 ms instead of 51.9 ms for the graph stage's ResNet-18
(``python benchmarks/optimizer.py``, ``docs/performance.md``). It is
used when every parameter is a floating-point tensor on a device torch has the kernel
for (tried once per device and dtype); otherwise the plain implementation is.
"""

from __future__ import annotations

import functools
from collections.abc import Iterable
from typing import Any

import torch


def adam(params: Iterable[torch.Tensor] | Iterable[dict[str, Any]], **options: Any) -> torch.optim.Adam:
    """``torch.optim.Adam(params, **options)``, fused where torch supports it.

    Args:
        params: parameters or parameter groups, as for `torch.optim.Adam`.
        **options: `torch.optim.Adam`'s options (``lr``, ``weight_decay``, ``amsgrad``, ...).

    Returns:
        The optimizer; ``optimizer.defaults["fused"]`` says which implementation it uses.
    """
    params = list(params)
    groups = params if params and isinstance(params[0], dict) else [{"params": params}]
    kinds = {(p.device, p.dtype) for group in groups for p in group["params"]}
    fused = bool(kinds) and all(_has_fused_adam(device, dtype) for device, dtype in kinds)
    return torch.optim.Adam(params, fused=fused or None, **options)


@functools.cache
def _has_fused_adam(device: torch.device, dtype: torch.dtype) -> bool:
    """Whether torch's fused Adam steps a tensor of this device and dtype: torch checks
    only at the first step, so a one-element tensor takes one."""
    probe = torch.zeros(1, device=device, dtype=dtype, requires_grad=True)
    probe.grad = torch.zeros_like(probe)
    try:
        torch.optim.Adam([probe], fused=True).step()
    except RuntimeError:
        return False
    return True


def parameter_groups(model: Any, config: Any) -> list[dict[str, Any]]:
    """The optimizer's groups of a CKNet: the visual extractor at ``config.lr_visual``, a
    fine-tuned pretrained text encoder at ``config.lr_text_encoder``, the rest at
    ``config.lr_rest`` (frozen parameters left out).

    Args:
        model: the `CKNet`.
        config: its `TrainingConfig`.
    """
    from cknet.modules.language_model import PretrainedTextEncoder

    visual = [p for p in model.visual_extractor.parameters() if p.requires_grad]
    language = []
    if isinstance(model.text_encoder, PretrainedTextEncoder):  # fine-tuned at its own rate
        language = [p for p in model.text_encoder.language_model.parameters() if p.requires_grad]
    grouped = {id(p) for p in visual + language}
    rest = [p for p in model.parameters() if p.requires_grad and id(p) not in grouped]
    groups = [{"params": visual, "lr": config.lr_visual}, {"params": rest, "lr": config.lr_rest}]
    if language:  # a pretrained text encoder being fine-tuned
        groups.append({"params": language, "lr": config.lr_text_encoder})
    return groups
