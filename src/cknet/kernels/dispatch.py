"""`knowledge_query`: the top-k knowledge query of equations (5), (6) and (8), with two
paths behind one function.

- ``"torch"``: the PyTorch reference (`cknet.kernels.reference`), on any device;
- ``"triton"``: the fused Triton kernel (`cknet.kernels.triton_kernel`), on CUDA, or on
  the CPU in Triton's interpreter under ``TRITON_INTERPRET=1``;
- ``"auto"``: Triton on CUDA when it imports, else PyTorch.

The environment variable ``CKNET_KERNEL`` overrides the choice; the path taken is
logged at debug level.
"""

from __future__ import annotations

import logging
import os

import torch

from cknet.kernels.reference import WEIGHTINGS, reference_query

logger = logging.getLogger(__name__)
BACKENDS = ("auto", "torch", "triton")


def knowledge_query(
    queries: torch.Tensor,
    keys: torch.Tensor,
    values: torch.Tensor,
    top_k: int,
    weighting: str = "softmax",
    backend: str = "auto",
) -> torch.Tensor:
    """Attend from each query to its ``top_k`` best-scoring knowledge vectors.

    Args:
        queries: ``(B, H, L, d)``.
        keys: ``(B, H, N, d)``, or ``(H, N, d)`` for a knowledge matrix shared by the batch.
        values: same shape as ``keys``.
        top_k: gamma, how many knowledge vectors each query keeps (1 <= top_k <= N).
        weighting: ``"softmax"`` or ``"sum"`` (see `cknet.kernels.reference`).
        backend: ``"torch"``, ``"triton"`` or ``"auto"`` (see the module docstring).

    Returns:
        ``(B, H, L, d)`` the preserved knowledge r of equation (8), per head.

    Raises:
        ValueError: for mismatched shapes, ``top_k`` outside ``[1, N]``, an unknown
            weighting or backend, or ``"triton"`` where Triton cannot run.
    """
    if queries.dim() != 4:
        raise ValueError(f"queries must have shape (B, H, L, d), got {tuple(queries.shape)}")
    if keys.dim() not in (3, 4) or keys.shape != values.shape:
        raise ValueError(
            f"keys and values must both have shape (B, H, N, d) or (H, N, d), "
            f"got {tuple(keys.shape)} and {tuple(values.shape)}"
        )
    if keys.shape[-3] != queries.shape[1] or keys.shape[-1] != queries.shape[-1] or (
        keys.dim() == 4 and keys.shape[0] != queries.shape[0]
    ):
        raise ValueError(
            f"keys {tuple(keys.shape)} do not match queries {tuple(queries.shape)} "
            f"(batch, heads and head size must agree)"
        )
    num_keys = keys.shape[-2]
    if not 1 <= top_k <= num_keys:
        raise ValueError(f"top_k must be in [1, {num_keys}] (the number of knowledge vectors), got {top_k}")
    if weighting not in WEIGHTINGS:
        raise ValueError(f"weighting must be 'softmax' or 'sum', got {weighting!r}")

    if _resolve_backend(backend, queries) == "triton":
        from cknet.kernels.triton_kernel import TritonKnowledgeQuery

        return TritonKnowledgeQuery.apply(queries, keys, values, top_k, weighting)  # eqs. (5), (6), (8)
    return reference_query(queries, keys, values, top_k, weighting)  # eqs. (5), (6), (8)


def triton_available(device: torch.device | None = None) -> bool:
    """Whether the Triton kernel can run for tensors on a device: on CUDA when Triton
    imports, or anywhere under ``TRITON_INTERPRET=1`` (its CPU interpreter).

    Args:
        device: the tensors' device.
    """
    try:
        import triton  # noqa: F401
    except ImportError:
        return False
    if os.environ.get("TRITON_INTERPRET") == "1":
        return True
    return device is not None and device.type == "cuda"


def _resolve_backend(backend: str, queries: torch.Tensor) -> str:
    requested = os.environ.get("CKNET_KERNEL", backend)
    if requested not in BACKENDS:
        source = "CKNET_KERNEL" if "CKNET_KERNEL" in os.environ else "backend"
        raise ValueError(f"{source} must be one of {BACKENDS}, got {requested!r}")
    usable = triton_available(queries.device)
    if requested == "triton" and not usable:
        raise ValueError(
            f"the Triton kernel cannot run on {queries.device}: it needs CUDA and the triton "
            f"package (or TRITON_INTERPRET=1 for the CPU interpreter); use backend='torch'"
        )
    chosen = "triton" if requested == "triton" or (requested == "auto" and usable
                                                   and queries.device.type == "cuda") else "torch"
    logger.debug("knowledge_query: %s path (requested %r) for queries %s on %s",
                 chosen, requested, tuple(queries.shape), queries.device)
    return chosen
