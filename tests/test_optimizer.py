"""`cknet.training.optimizer.adam`: torch's fused Adam where it runs, the same update."""

import math

import pytest
import torch

from cknet.training.optimizer import adam


def adam_reference(values, gradients, lr, betas, eps, weight_decay):
    """Kingma & Ba's Adam (with L2 weight decay added to the gradient, as torch's Adam
    does) in float64 on Python lists: the parameters after one step per gradient."""
    values = [float(v) for v in values]
    m = [0.0] * len(values)
    v = [0.0] * len(values)
    for step, grads in enumerate(gradients, start=1):
        for i, g in enumerate(grads):
            g = float(g) + weight_decay * values[i]
            m[i] = betas[0] * m[i] + (1 - betas[0]) * g
            v[i] = betas[1] * v[i] + (1 - betas[1]) * g * g
            m_hat = m[i] / (1 - betas[0] ** step)
            v_hat = v[i] / (1 - betas[1] ** step)
            values[i] -= lr * m_hat / (math.sqrt(v_hat) + eps)
    return values


@pytest.mark.parametrize("weight_decay", [0.0, 5e-5])
def test_fused_adam_steps_like_the_reference(weight_decay):
    generator = torch.Generator().manual_seed(0)
    start = torch.randn(2, 5, generator=generator)
    gradients = [torch.randn(2, 5, generator=generator) for _ in range(4)]
    weight = torch.nn.Parameter(start.clone())
    bias = torch.nn.Parameter(start[0].clone())
    optimizer = adam([{"params": [weight], "lr": 1e-2}, {"params": [bias], "lr": 3e-3}],
                     weight_decay=weight_decay)
    assert optimizer.defaults["fused"] is True  # CPU float tensors have torch's fused kernel
    for grad in gradients:
        weight.grad, bias.grad = grad.clone(), grad[0].clone()
        optimizer.step()
    expected_weight = adam_reference(start.flatten().tolist(), [g.flatten().tolist() for g in gradients],
                                     1e-2, (0.9, 0.999), 1e-8, weight_decay)
    expected_bias = adam_reference(start[0].tolist(), [g[0].tolist() for g in gradients],
                                   3e-3, (0.9, 0.999), 1e-8, weight_decay)
    assert weight.detach().flatten().tolist() == pytest.approx(expected_weight, abs=1e-6)
    assert bias.detach().tolist() == pytest.approx(expected_bias, abs=1e-6)


def test_falls_back_where_the_fused_kernel_does_not_run():
    # torch's fused Adam takes real floating-point tensors only
    parameter = torch.nn.Parameter(torch.zeros(3, dtype=torch.complex64))
    optimizer = adam([parameter], lr=1e-2)
    assert not optimizer.defaults["fused"]
    parameter.grad = torch.ones(3, dtype=torch.complex64)
    optimizer.step()
    assert parameter.detach().real.tolist() == pytest.approx([-1e-2] * 3, abs=1e-6)
