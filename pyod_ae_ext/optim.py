"""Adam over one flat parameter buffer.

Every trainable parameter of the network becomes a view into one contiguous buffer,
and every gradient a view into a second one, so an optimiser step is a handful of
kernels on one tensor whatever the number of layers. For the small networks of
tabular anomaly detection the per-parameter, per-step overhead of ``torch.optim.Adam``
dominates training time; this removes it (and avoids the seconds-long import of
torch's compiler stack that constructing a ``torch.optim`` optimiser triggers).

The update is exactly Adam (Kingma & Ba 2015) with L2 weight decay added to the
gradient, as in ``torch.optim.Adam(weight_decay=...)``.
"""
from __future__ import annotations

import math

import torch


class FlatAdam:
    """Adam over trainable parameters re-seated as views of one buffer.

    Parameters
    ----------
    parameters : iterable of tensors, or of dicts ``{"params": [...], "weight_decay": w}``
        As for ``torch.optim.Adam``; groups may only differ in ``weight_decay``.
    """

    def __init__(self, parameters, lr=1e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=0.0):
        groups = list(parameters)
        if groups and not isinstance(groups[0], dict):
            groups = [{"params": groups}]
        decays = []
        self.params = []
        for group in groups:
            trainable = [p for p in group["params"] if p.requires_grad]
            self.params.extend(trainable)
            decays.extend([group.get("weight_decay", weight_decay)] * len(trainable))
        if not self.params:
            raise ValueError("no trainable parameters")
        self.lr, self.betas, self.eps = lr, betas, eps
        first = self.params[0]
        total = sum(p.numel() for p in self.params)
        self.flat = torch.empty(total, dtype=first.dtype, device=first.device)
        self.grad = torch.zeros_like(self.flat)
        self.weight_decay = torch.empty_like(self.flat) if len(set(decays)) > 1 else decays[0]
        offset = 0
        with torch.no_grad():
            for p, decay in zip(self.params, decays):
                size = p.numel()
                self.flat[offset:offset + size].copy_(p.reshape(-1))
                p.data = self.flat[offset:offset + size].view_as(p)
                p.grad = self.grad[offset:offset + size].view_as(p)
                if isinstance(self.weight_decay, torch.Tensor):
                    self.weight_decay[offset:offset + size] = decay
                offset += size
        self.exp_avg = torch.zeros_like(self.flat)
        self.exp_avg_sq = torch.zeros_like(self.flat)
        self.steps = 0

    def zero_grad(self, set_to_none: bool = False) -> None:
        # Gradients must stay views of the flat buffer, so they are zeroed, never dropped.
        self.grad.zero_()

    @torch.no_grad()
    def step(self) -> None:
        self.steps += 1
        beta1, beta2 = self.betas
        grad = self.grad
        if isinstance(self.weight_decay, torch.Tensor):
            grad = torch.addcmul(grad, self.flat, self.weight_decay)
        elif self.weight_decay:
            grad = grad.add(self.flat, alpha=self.weight_decay)
        self.exp_avg.lerp_(grad, 1 - beta1)
        self.exp_avg_sq.mul_(beta2).addcmul_(grad, grad, value=1 - beta2)
        bias_correction1 = 1 - beta1 ** self.steps
        bias_correction2 = 1 - beta2 ** self.steps
        denominator = (self.exp_avg_sq.sqrt() / math.sqrt(bias_correction2)).add_(self.eps)
        self.flat.addcdiv_(self.exp_avg, denominator, value=-self.lr / bias_correction1)

    def release(self) -> None:
        """Detach the gradient views so the buffers can be freed once training ends."""
        for p in self.params:
            p.grad = None
