"""Compute kernels: the top-k knowledge query of equations (5), (6) and (8).

- `reference`: the PyTorch path and the weights of equation (6);
- `triton_kernel`: the fused Triton kernel and its autograd function;
- `dispatch`: `knowledge_query`, which picks one of the two.
"""

from cknet.kernels.dispatch import BACKENDS, knowledge_query, triton_available
from cknet.kernels.reference import WEIGHTINGS, knowledge_weights

__all__ = ["BACKENDS", "WEIGHTINGS", "knowledge_query", "knowledge_weights", "triton_available"]
