"""`compile: true` changes how the training forward runs, not what it computes: losses and gradients equal
the eager ones. (Checked with the aot_eager backend, which traces and functionalises the graph as inductor
does but runs it without code generation, so it takes seconds on a CPU.)"""

import copy

import torch

import spaces
from trials.config import make_config
from trials.retrain import retrain_losses
from trials.runtime.device import compiled

CPU = torch.device("cpu")


def _grads(model, loss):
    return [p.grad.clone() if p.grad is not None else torch.zeros_like(p) for p in model.parameters()]


def test_compiled_retrain_step_equals_eager():
    torch.manual_seed(0)
    cfg = make_config("retrain", {"scale": "smoke", "compile": True, "compile_backend": "aot_eager"})
    eager = spaces.build_msinet("msmt", 4)
    twin = copy.deepcopy(eager)
    step = compiled(twin, cfg.compile, cfg.compile_backend, CPU)
    inputs, pids = torch.randn(8, 3, 64, 32), torch.tensor([0, 0, 1, 1, 2, 2, 3, 3])
    results = []
    for model, forward in ((eager, eager), (twin, step)):
        model.train()
        terms = retrain_losses(forward(inputs), pids, cfg)
        sum(terms.values()).backward()
        results.append((terms, _grads(model, None)))
    (terms_e, grads_e), (terms_c, grads_c) = results
    for name in terms_e:
        assert torch.allclose(terms_e[name], terms_c[name], rtol=1e-5, atol=1e-6), name
    for a, b in zip(grads_e, grads_c, strict=True):
        assert torch.allclose(a, b, rtol=1e-4, atol=1e-6)


def test_compiled_supernet_keeps_the_architecture_parameters():
    net = spaces.Supernet()
    step = compiled(net, True, "aot_eager", CPU)
    assert list(step.arch_parameters()) == list(net.arch_parameters())
    assert compiled(net, False, "inductor", CPU) is net
