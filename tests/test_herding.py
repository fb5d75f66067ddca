"""Herding known answers on a toy 2-D Gaussian mixture."""
import torch

from ddlib.methods.coresets.herding import herd


def _mixture(seed=0, n=600):
    g = torch.Generator().manual_seed(seed)
    centres = torch.tensor([[-3.0, 0.0], [3.0, 1.0], [0.0, 4.0]])
    comp = torch.randint(3, (n,), generator=g)
    return centres[comp] + torch.randn(n, 2, generator=g) * torch.tensor([1.0, 0.5])


def _errors(x, order):
    mu = x.mean(0)
    run = torch.cumsum(x[order], 0) / torch.arange(1, len(order) + 1).unsqueeze(1)
    return (run - mu).norm(dim=1)  # err[k-1] after k picks


def test_running_mean_converges_to_class_mean():
    x = _mixture()
    order = herd(x, 40)
    err = _errors(x, order)
    assert err[19] < err[0] / 5  # much smaller at k=20 than at k=1 (the point nearest mu)
    # O(1/k): k * err_k stays bounded by the data's radius
    radius = float((x - x.mean(0)).norm(dim=1).max())
    ks = torch.arange(1, 41)
    assert bool(((ks * err) <= radius).all())
    # random picks are far worse at k = 20, averaged over seeds
    rand = []
    for seed in range(20):
        perm = torch.randperm(len(x), generator=torch.Generator().manual_seed(seed))[:20]
        rand.append(float(_errors(x, perm)[19]))
    assert float(err[19]) < sum(rand) / len(rand) / 3


def test_picks_are_unique_and_cover_everything():
    x = _mixture(1, n=50)
    order = herd(x, 50)
    assert order.dtype == torch.long and order.shape == (50,)
    assert sorted(order.tolist()) == list(range(50))
    assert len(set(herd(x, 17).tolist())) == 17


def test_first_pick_is_nearest_to_mean():
    x = _mixture(2)
    first = int(herd(x, 1)[0])
    assert first == int((x - x.mean(0)).norm(dim=1).argmin())


def test_greedy_step_known_answer():
    # points on a line, mean 0.  Step i targets (i+1)*mu - S_i = -S_i: first the point at 0,
    # then one of +-1 (target 0), then the opposite one (target -S_2), then +-3.
    x = torch.tensor([[0.0], [-1.0], [1.0], [-3.0], [3.0]])
    order = herd(x, 5).tolist()
    assert order[0] == 0
    assert set(order[1:3]) == {1, 2}  # after a -1 the target is +1 and vice versa
    assert set(order[3:]) == {3, 4}


def test_herding_is_deterministic():
    x = _mixture(3)
    assert torch.equal(herd(x, 30), herd(x.clone(), 30))
