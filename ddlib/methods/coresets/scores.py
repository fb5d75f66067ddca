"""Per-sample difficulty scores from training dynamics, cached in the store.

Two scorers, both computed with the profile's student architecture
(``profile.model``) trained with hard labels (regime ``hl``) on the whole train
pool under the profile's protocol, without augmentation:

* ``el2n`` -- Paul et al., *Deep Learning on a Data Diet* (NeurIPS 2021),
  Sec. 2: ``EL2N(x, y) = E_w ||softmax(f_w(x)) - onehot(y)||_2`` early in
  training, the expectation taken over ``n_models`` independently initialised
  networks.  As the paper (epoch 20 of a 200-epoch CIFAR-10 run), each network
  is a run scheduled for ``epochs`` epochs (default ``teacher_epochs``) and
  scored after :data:`EL2N_AT` (a tenth) of its steps, at the learning rate
  it has there, not at the end of an annealed run.
* ``forgetting`` -- Toneva et al., *An Empirical Study of Example Forgetting
  during Deep Neural Network Learning* (ICLR 2019), Sec. 2: the number of
  forgetting events (correct at one presentation, misclassified at the next)
  of each example over a full run of ``epochs`` (default ``teacher_epochs``),
  summed over ``n_models`` seeds.  Correctness is recorded *per presentation*,
  as in the paper: the prediction of the very forward pass the loss is computed
  from (pre-update weights), which costs no extra network pass.  Every example
  is presented exactly once per epoch, so the record is a dense (epochs, N)
  history.  Never-learned examples get the count ``T`` (number of records),
  above the largest possible real count ``floor(T / 2)``: the paper treats
  them as forgotten infinitely often.

Scores are cached as artifact kind ``"scores"`` under a hash of {kind, dataset,
pool size, a fingerprint of the pool's pixels and labels, scorer arch, protocol,
epochs, n_models, seed, version}: everything the scores depend on, with the
profile's defaults resolved (not its name);
the artifact holds ``{"scores", "cost", "config"}``.  :func:`get_scores` always
charges the recorded cost to ``ctx.meter``, whether it computed or loaded the
scores, so every coreset built on them pays for them (and the wall time spent
inside is excluded from the build's own clock, as for teachers).
"""
from __future__ import annotations

import logging
from typing import Dict, Tuple

import torch
import torch.nn.functional as F

from ddlib import __version__
from ddlib.core.config import PROTOCOLS, config_hash
from ddlib.core.cost import Cost, Meter
from ddlib.core.hparams import HParam
from ddlib.core.registry import DDLibError
from ddlib.core.seeding import stream_seed
from ddlib.engine import (
    train as _train,  # called through the module: tests may patch ddlib.engine.train.fit
)
from ddlib.engine.models import create_model
from ddlib.engine.regimes import HardLabels, create_regime

log = logging.getLogger("ddlib")

KINDS = ("el2n", "forgetting")
EL2N_AT = 0.1  # EL2N scores a tenth of the way into training (Paul et al. 2021: epoch 20 of 200)
#: hyperparameters every score-based selector forwards to :func:`get_scores`
SCORE_HP = ("epochs", "n_models", "score_seed")


def score_hparams(kinds: Tuple[str, ...]) -> Tuple[HParam, ...]:
    """The declared score hyper-parameters (:data:`SCORE_HP`) of a selector on scores ``kinds``."""
    models = tuple(f"scores.{k}_models" for k in kinds)
    return (
        HParam("epochs", int, None, "epochs", "length of each scoring run (EL2N scores it a tenth of the way "
               "in); unset or 0 = teacher_epochs", "scale-down of the papers' runs (200 epochs on CIFAR)",
               profile=("teacher_epochs",), low=0),
        HParam("n_models", int, None, "networks", "scoring networks averaged (EL2N) or summed "
               "(forgetting); unset or 0 = the profile's", "paper on paper (10 EL2N, 5 forgetting); "
               "scale-down elsewhere", profile=models, low=0),
        HParam("score_seed", int, None, "", "seed of the scoring networks; unset = the run's seed",
               "ddlib", low=0),
    )


# -- pure functions -------------------------------------------------------------
def el2n(logits: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """EL2N of one network (Paul et al. 2021, Sec. 2): ``||softmax(logits) - onehot(y)||_2``.

    Args:
        logits: (N, K) network outputs.
        y: (N,) int64 labels.

    Returns:
        (N,) float32 error norms in [0, sqrt(2)].
    """
    p = F.softmax(logits.float(), dim=1)
    return (p - F.one_hot(y.long(), p.shape[1]).float()).norm(dim=1)


def forgetting_counts(history: torch.Tensor) -> torch.Tensor:
    """Forgetting events per example (Toneva et al. 2019, Sec. 2) from a correctness record.

    Args:
        history: (T, N) bool, ``history[t, i]`` = example ``i`` classified
            correctly at its ``t``-th record.

    Returns:
        (N,) int64: the number of correct -> incorrect transitions between
        consecutive records; an example never correct gets ``T`` (more than
        any real count, which is at most ``floor(T / 2)``).
    """
    h = history.bool()
    if h.dim() != 2:
        raise ValueError(f"history must be (T, N), got shape {tuple(h.shape)}")
    t = h.shape[0]
    events = (h[:-1] & ~h[1:]).sum(0).long()
    return torch.where(h.any(0), events, torch.full_like(events, t))


# -- defaults -----------------------------------------------------------------
def default_epochs(kind: str, profile) -> int:
    """Both: ``teacher_epochs`` (EL2N's run is stopped at :data:`EL2N_AT` of it)."""
    return max(1, profile.teacher_epochs)


def default_n_models(kind: str, profile) -> int:
    """The profile's ``scores`` count for ``kind``.

    EL2N: 10 on ``paper`` (the data-diet average), 3 elsewhere; forgetting: 5 on
    ``paper``, 1 elsewhere.
    """
    d = profile.scores
    return d.el2n_models if kind == "el2n" else d.forgetting_models


def selector_scores(kind: str, train, ctx, seed: int, hp: Dict) -> Tuple[torch.Tensor, Dict]:
    """Scores for a selector: (``get_scores`` with the score hp of ``hp``, the remaining hp).

    The score hp are ``epochs``, ``n_models`` and ``score_seed`` (default: the
    run seed, so replicate runs also resample the scoring networks).
    """
    cfg = {k: hp[k] for k in SCORE_HP if hp.get(k) is not None}
    rest = {k: v for k, v in hp.items() if k not in SCORE_HP}
    s = int(cfg.pop("score_seed", seed))
    return get_scores(kind, train, ctx, seed=s, **cfg), rest


def check_hp(method: str, hp: Dict, allowed) -> None:
    """Raise DDLibError naming the valid keys if ``hp`` has an unknown one (typos are errors)."""
    bad = sorted(set(hp) - set(allowed))
    if bad:
        raise DDLibError(f"{method}: unknown hyperparameter(s) {', '.join(bad)}; "
                         f"valid: {', '.join(sorted(allowed))}")


# -- computing ----------------------------------------------------------------
class _RecordingHL(HardLabels):
    """Hard-label loss that records, per presentation, whether each example was correct."""

    def __init__(self, n: int, records: int):
        self.history = torch.zeros(records, n, dtype=torch.bool)
        self.count = torch.zeros(n, dtype=torch.long)

    def loss(self, logits, views, idx):
        y = self.labels[idx]
        y = y.argmax(1) if y.dim() == 2 else y
        ok = (logits.detach().argmax(1) == y).cpu()
        i = idx.cpu()
        if len(torch.unique(i)) == len(i):
            t = self.count[i]
            keep = t < len(self.history)
            self.history[t[keep], i[keep]] = ok[keep]
            self.count[i] += 1
        else:  # an epoch boundary inside a batch: an example may appear twice, in order
            for j, c in zip(i.tolist(), ok.tolist()):
                if self.count[j] < len(self.history):
                    self.history[self.count[j], j] = c
                self.count[j] += 1
        return super().loss(logits, views, idx)


def _new_model(train, arch: str, seed: int):
    m = train.meta
    return create_model(arch, m.num_classes, m.in_chans, m.img_size,
                        seed=stream_seed(seed, "init")).to(train.train_x.device)


def _compute(kind: str, train, ctx, seed: int, epochs: int, n_models: int) -> Tuple[torch.Tensor, Cost]:
    x, y = train.train_x, train.train_y
    n = len(y)
    protocol = PROTOCOLS.get(ctx.profile.protocol)
    total = torch.zeros(n, dtype=torch.float32)
    with Meter(x.device) as meter:
        for i in range(n_models):
            s = stream_seed(seed, f"scores/{kind}/{i}")  # one independent stream per model
            model = meter.watch(_new_model(train, ctx.profile.model, s))
            regime = _RecordingHL(n, epochs) if kind == "forgetting" else create_regime("hl")
            res = _train.fit(model, x, y, regime=regime, teachers=[], budget=epochs, pool_size=n,
                      protocol=protocol, seed=s, augment="", quiet=ctx.quiet,
                      desc=f"{kind} scorer {i}", engine=ctx.engine,
                      stop_at=EL2N_AT if kind == "el2n" else 1.0)
            meter.backward(res.samples_seen)
            if kind == "el2n":
                total += el2n(_train.predict_logits(model, x), y).cpu()
            else:
                total += forgetting_counts(regime.history).float()
    scores = total / n_models if kind == "el2n" else total
    return scores, meter.cost


def score_config(kind: str, train, ctx, *, seed: int, epochs=None, n_models=None) -> dict:
    """The mapping hashed into the cache key of scores ``kind`` (defaults resolved)."""
    prof = ctx.profile
    return {"kind": kind, "dataset": train.meta.name, "pool": len(train.train_y),
            "data": train.meta.fingerprint,
            "arch": prof.model, "protocol": prof.protocol,
            "epochs": int(epochs or default_epochs(kind, prof)),
            "n_models": int(n_models or default_n_models(kind, prof)),
            "stop_at": EL2N_AT if kind == "el2n" else 1.0,
            "seed": int(seed), "version": __version__}


def get_scores(kind: str, train, ctx, *, seed: int, **cfg) -> torch.Tensor:
    """Per-sample difficulty scores of the train pool, computed once and cached.

    Args:
        kind: "el2n" or "forgetting" (higher = harder for both).
        train: the split whose ``train_x``/``train_y`` pool is scored.
        ctx: build context; its ``store`` caches, its ``meter`` is charged.
        seed: seed of the scoring runs (model ``i`` uses its own stream of it).
        **cfg: ``epochs`` and ``n_models`` overriding the profile defaults
            (see :func:`default_epochs`, :func:`default_n_models`).

    Returns:
        (N,) float32 scores on the CPU.

    Raises:
        DDLibError: unknown ``kind`` or config key.
    """
    if kind not in KINDS:
        raise DDLibError(f"unknown score kind {kind!r}; choose one of: {', '.join(KINDS)}")
    check_hp(f"{kind} scores", cfg, ("epochs", "n_models"))
    conf = score_config(kind, train, ctx, seed=seed, **cfg)
    if conf["epochs"] < 1 or conf["n_models"] < 1:
        raise DDLibError(f"{kind} scores need epochs >= 1 and n_models >= 1, got {conf}")
    key = config_hash(conf)
    with ctx.meter.upstream():  # charged below by the recorded cost, never twice
        art = ctx.store.load_artifact("scores", key)
        if art is None:
            log.info("computing %s scores %s (%d x %d epochs) -> %s", kind, key, conf["n_models"],
                     conf["epochs"], ctx.store.artifact_path("scores", key))
            with ctx.store.worklog.work("scores", name=kind, seed=seed):
                scores, cost = _compute(kind, train, ctx, seed, conf["epochs"], conf["n_models"])
            art = {"scores": scores, "cost": cost.as_dict(), "config": conf}
            ctx.store.save_artifact("scores", key, art)
    ctx.meter.charge(Cost(**art["cost"]))
    return art["scores"].float().cpu()


# -- shared selection helper -----------------------------------------------------
def top_per_class(train, scores: torch.Tensor, ipc: int, *, largest: bool,
                  gen: torch.Generator) -> torch.Tensor:
    """The ``ipc`` highest (``largest``) or lowest scored indices of every class.

    Ties are broken by a seeded random permutation (``gen``), so equal scores
    (forgetting counts) do not favour low indices.

    Returns:
        (K * ipc,) int64 indices into the pool, grouped by class in class order.
    """
    picks = []
    for c in range(train.num_classes):
        idx = train.class_indices(c).cpu()
        perm = torch.randperm(len(idx), generator=gen)
        order = torch.sort(scores[idx[perm]], descending=largest, stable=True).indices
        picks.append(idx[perm[order[:ipc]]])
    return torch.cat(picks)
