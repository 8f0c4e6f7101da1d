"""No host synchronisation in a training step (issue 23). The forward pass and every loss term of the retrain
step (SAM `pos_neg` included) trace as one graph under `torch.compile(fullgraph=True)`: a host read
(`bool(t)`, `.tolist()`, boolean-mask indexing, ...) would break the graph and fail the compile. And they give
the same losses and gradients as main's code before the rewrite (`frozen_main.py`) on a fixed batch. (The
search step's two passes: tests/trials/test_compiled_steps.py.) On CUDA, the steps run under
`torch.cuda.set_sync_debug_mode("error")`.

The aot_eager backend traces the forward and the backward as inductor does, without generating code."""

import copy

import pytest
import torch
from torch.utils._python_dispatch import TorchDispatchMode

import spaces
from tests.trials import frozen_main
from trials.config import make_config
from trials.losses import batch_hard_triplet
from trials.retrain import retrain_step, retrain_terms
from trials.runtime.device import allocate_grads
from trials.runtime.divergence import DivergenceWatch, NonFiniteLossError
from trials.search import search_step, side_loss

CPU = torch.device("cpu")
PIDS = torch.tensor([3, 0, 1, 3, 0, 2, 1, 2])  # a PK batch (4 ids x 2) in shuffled order


def _close(a, b):
    assert torch.allclose(a, b, rtol=1e-5, atol=1e-6), (a - b).abs().max()


@pytest.mark.slow
def test_retrain_forward_and_every_loss_trace_as_one_graph_and_equal_main():
    cfg = make_config("retrain", {"scale": "smoke", "sam_mode": "pos_neg", "compile": True,
                                  "compile_backend": "aot_eager"})
    torch.manual_seed(0)
    model = spaces.build_msinet("msmt", 4, sam_mode="pos_neg").train()
    reference = copy.deepcopy(model)
    inputs = torch.randn(8, 3, 64, 32)

    terms = retrain_terms(model, cfg, CPU)(inputs, PIDS)  # fullgraph: a graph break raises here
    sum(terms.values()).backward()
    expected = frozen_main.retrain_losses(reference(inputs), PIDS, cfg)
    sum(expected.values()).backward()

    assert set(terms) == set(expected) == {"ce_global", "triplet_global", "ce_part", "triplet_part", "sam"}
    for name in terms:
        _close(terms[name], expected[name])
    for (name, p), q in zip(model.named_parameters(), reference.parameters(), strict=True):
        assert (p.grad is None) == (q.grad is None), name
        if p.grad is not None:
            _close(p.grad, q.grad)


@pytest.mark.parametrize("pids", [torch.tensor([0, 0, 1, 1]), torch.tensor([5, 5, 5, 5])])
def test_triplet_masked_mean_equals_main_also_without_negatives(pids):
    features = torch.randn(4, 16, requires_grad=True)
    reference = features.detach().clone().requires_grad_(True)
    loss, expected = batch_hard_triplet(features, pids), frozen_main.batch_hard_triplet(reference, pids)
    (loss + features.sum() * 0).backward()
    (expected + reference.sum() * 0).backward()
    _close(loss, expected)
    _close(features.grad, reference.grad)


@pytest.mark.cuda
def test_the_steps_make_no_host_synchronisation_on_cuda():
    """Three steady-state iterations of each step under set_sync_debug_mode("error"): a sync raises."""
    cuda = torch.device("cuda")
    cfg = make_config("retrain", {"scale": "smoke", "sam_mode": "pos_neg"})
    torch.manual_seed(0)
    model = spaces.build_msinet("msmt", 4, sam_mode="pos_neg").to(cuda).train()
    optimizer = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)
    terms, watch = retrain_terms(model, cfg, cuda), DivergenceWatch(model.parameters(), 1)
    batch = (torch.randn(8, 3, 64, 32, device=cuda), PIDS.to(cuda))
    allocate_grads(optimizer)
    search_cfg = make_config("search", {"scale": "smoke"})
    net = spaces.Supernet().to(cuda)
    memories = [spaces.PrototypeMemory(n, images_per_id=2).to(cuda) for n in (4, 4)]
    weights = torch.optim.SGD(net.weight_parameters(), lr=0.01, momentum=0.9)
    architect = spaces.Architect(net, memories[1], loss=side_loss(net, memories[1], search_cfg, cuda))
    train_loss, search_watch = side_loss(net, memories[0], search_cfg, cuda), DivergenceWatch(net.parameters(), 1)
    allocate_grads(weights)
    for i in range(5):
        if i == 2:
            torch.cuda.set_sync_debug_mode("error")
        try:
            watch.record(retrain_step(terms, optimizer, *batch, cfg, cuda))
            search_watch.record(search_step(train_loss, architect, weights, batch, batch, i > 0, search_cfg, cuda))
        finally:
            torch.cuda.set_sync_debug_mode("default")
    watch.read()
    search_watch.read()


class HostReads(TorchDispatchMode):
    """Fails on the ops through which a tensor's value reaches the host: `.item()`, `bool(t)`, `float(t)`
    (`_local_scalar_dense`) and data-dependent shapes (`nonzero`, boolean-mask indexing)."""

    READS = {torch.ops.aten._local_scalar_dense.default, torch.ops.aten.nonzero.default,
             torch.ops.aten.masked_select.default}

    def __init__(self, host_counters=()):
        super().__init__()
        self.host_counters = {id(t) for t in host_counters}  # kept on the host on CUDA too: reading is no sync

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        assert func not in self.READS or id(args[0]) in self.host_counters, f"host read: {func}"
        if func is torch.ops.aten.index.Tensor:
            assert not any(i is not None and i.dtype == torch.bool for i in args[1]), "boolean-mask indexing"
        return func(*args, **(kwargs or {}))


def test_an_eager_retrain_iteration_reads_nothing_on_the_host():
    """The step, the SGD step, the divergence watch and the epoch's sums of one `train_epoch` iteration (the
    CPU stand-in for the GPU check under set_sync_debug_mode; the epoch's end reads the host once)."""
    cfg = make_config("retrain", {"scale": "smoke", "sam_mode": "pos_neg"})
    torch.manual_seed(0)
    model = spaces.build_msinet("msmt", 4, sam_mode="pos_neg").train()
    optimizer = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9, weight_decay=5e-4)
    watch, terms_of = DivergenceWatch([*model.parameters(), *model.buffers()], 1, 0.01), retrain_terms(model, cfg, CPU)
    allocate_grads(optimizer)
    sums = {}
    with HostReads():
        for _ in range(2):
            terms = retrain_step(terms_of, optimizer, torch.randn(8, 3, 64, 32), PIDS, cfg, CPU)
            watch.record(terms)
            sums = {name: sums.get(name, 0.0) + value.detach() for name, value in terms.items()}
    watch.read()
    assert len(sums) == 5


def test_the_divergence_watch_reads_the_host_once_per_read_and_names_the_first_bad_iteration():
    weights = [torch.ones(3), torch.ones(2, 2), torch.tensor([1, 2])]  # the integer tensor is left out
    watch = DivergenceWatch(weights, epoch=4, lr=0.05, names=("architecture", "weight"), every=0)
    steps = [{"weight": torch.tensor(1.0)}, {"architecture": torch.tensor(2.0), "weight": torch.tensor(3.0)},
             {"architecture": torch.tensor(float("nan")), "weight": torch.tensor(3.0)},
             {"architecture": torch.tensor(2.0), "weight": torch.tensor(float("inf"))}]
    with HostReads():
        for terms in steps:
            watch.record(terms)
    with pytest.raises(NonFiniteLossError, match=r"^loss 'architecture' is nan at epoch 4, iteration 3 \(lr 0.05\); "
                                                 r"the trial stops here"):
        watch.read()


def test_the_watch_reads_every_n_steps_and_names_diverged_weights_with_the_losses_of_that_step():
    weights = [torch.ones(3)]
    watch = DivergenceWatch(weights, epoch=1, names=("architecture", "weight"), every=2)
    watch.record({"weight": torch.tensor(1.0)})
    weights[0][1] = float("inf")
    with pytest.raises(NonFiniteLossError, match=r"^the weights became inf after the step at epoch 1, iteration 2; "
                                                 r"the losses were weight 0.5;"):
        watch.record({"weight": torch.tensor(0.5)})  # the second record reads: `every` steps


def test_an_eager_search_iteration_reads_nothing_on_the_host():
    """Both passes of a search iteration (the architecture step with the valid memory, the weight step with the
    train memory, each moving its prototypes in the backward) and the divergence watch. Adam reads its step
    counter, which torch keeps on the host (not capturable): no device sync."""
    cfg = make_config("search", {"scale": "smoke"})
    torch.manual_seed(0)
    net = spaces.Supernet().train()
    memories = [spaces.PrototypeMemory(4, images_per_id=2) for _ in range(2)]
    weights = torch.optim.SGD(net.weight_parameters(), lr=0.01, momentum=0.9)
    architect = spaces.Architect(net, memories[1], loss=side_loss(net, memories[1], cfg, CPU))
    train_loss, watch = side_loss(net, memories[0], cfg, CPU), DivergenceWatch(net.parameters(), 1, every=0)
    allocate_grads(weights)
    batch = (torch.randn(8, 3, 32, 16), PIDS)
    watch.record(search_step(train_loss, architect, weights, batch, batch, True, cfg, CPU))  # creates Adam's state
    steps = [state["step"] for state in architect.optimizer.state.values()]  # a CPU counter, also on CUDA
    with HostReads(steps):
        watch.record(search_step(train_loss, architect, weights, batch, batch, True, cfg, CPU))
    watch.read()
    assert all(bool(m.prototypes.any()) for m in memories)
