"""FlatAdam is exactly torch's Adam, on one flat buffer."""
import torch

from pyod_ae_ext.nets import mlp
from pyod_ae_ext.optim import FlatAdam


def _train(make_optimizer, steps=25):
    torch.manual_seed(0)
    net = mlp([6, 16, 8, 6], batch_norm=True)
    optimizer = make_optimizer(net)
    x = torch.randn(64, 6)
    for _ in range(steps):
        optimizer.zero_grad()
        loss = (net(x) - x).pow(2).mean()
        loss.backward()
        optimizer.step()
    return [p.detach().clone() for p in net.parameters()]


def test_matches_torch_adam_with_weight_decay():
    ours = _train(lambda net: FlatAdam(net.parameters(), lr=1e-2, weight_decay=1e-3))
    reference = _train(lambda net: torch.optim.Adam(net.parameters(), lr=1e-2, weight_decay=1e-3))
    for a, b in zip(ours, reference):
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-6)


def test_parameter_groups_with_their_own_weight_decay():
    def groups(net):
        params = list(net.parameters())
        return [{"params": params[:2], "weight_decay": 0.1}, {"params": params[2:], "weight_decay": 0.0}]

    ours = _train(lambda net: FlatAdam(groups(net), lr=1e-2))
    reference = _train(lambda net: torch.optim.Adam(groups(net), lr=1e-2))
    for a, b in zip(ours, reference):
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-6)


def test_parameters_become_views_of_one_buffer():
    net = mlp([3, 4, 3])
    optimizer = FlatAdam(net.parameters())
    for p in net.parameters():
        assert p.untyped_storage().data_ptr() == optimizer.flat.untyped_storage().data_ptr()
        assert p.grad.untyped_storage().data_ptr() == optimizer.grad.untyped_storage().data_ptr()
