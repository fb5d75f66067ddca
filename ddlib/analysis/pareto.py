"""Total compute of a run (construction + training) and the accuracy/compute Pareto front.

The unit is the **pass**: one image forwarded through one network counts 1,
one image back-propagated through one network counts ``backward_weight``
(2 by default: a backward pass costs about twice the forward's multiply-adds,
the usual 1 : 2 split of training FLOPs, e.g. Kaplan et al. 2020, Sec. 2.1).
Networks are *not* weighted by their size: a pass through the teacher
(ConvNet width 32 on ``default``, like the student; width 128 on ``paper``) or a distiller's
matching network counts the same, because the cost meter
(:mod:`ddlib.core.cost`) counts samples per network, not multiply-adds.

A run's passes are the sum of

* **construction**: ``build_fwd + w * build_bwd`` as recorded in its row, which
  already includes every upstream model the builder trained or used (teacher,
  scorers, expert trajectories; see :meth:`ddlib.core.cost.Meter.charge`);
* **student training**: ``(1 + w) * samples_seen`` (each sample forward and
  backward once through the student; ``samples_seen = budget * pool``);
* **labelling**: the teacher forwards the label regime spends during training
  (:func:`label_forwards`): none for ``hl``; one per stored image for ``sl``;
  one per sample seen for ``slkd`` and one per sample per ensemble member for
  ``mt``; one per stored view for ``slkd_stored``.

The teachers' own training is not charged to a run by its label regime (it is
shared by every run and set of a study; :func:`ddlib.run.measure.teacher_passes` gives it),
while a builder that needs a teacher is charged its training by ddlib.core.cost.
"""
from __future__ import annotations

import functools
from typing import Callable, Dict, Optional, Sequence

import altair as alt
import numpy as np
import pandas as pd

from ddlib.analysis.style import ACCURACY, method_color, regime_labels
from ddlib.core.config import PROFILES
from ddlib.core.cost import BACKWARD_WEIGHT
from ddlib.core.registry import DDLibError
from ddlib.run.settings import load_data


def _ceil_div(a: int, b: int) -> int:
    return -(-int(a) // max(int(b), 1))


# teacher forwards of one training run: f(samples seen, stored images, ensemble size)
LABEL_FORWARDS: Dict[str, Callable[[int, int, int], int]] = {
    "hl": lambda samples, n, teachers: 0,
    "sl": lambda samples, n, teachers: n,  # one soft label per stored image, computed once
    "slkd": lambda samples, n, teachers: samples,
    "mt": lambda samples, n, teachers: samples * teachers,
    # every view of E = ceil(samples / n) epochs of the n images, relabelled once
    "slkd_stored": lambda samples, n, teachers: _ceil_div(samples, n) * n,
}


def label_forwards(regime: str, samples: int, n_images: int, n_teachers: int) -> int:
    """Teacher forward passes the label regime spends on one training run.

    Args:
        regime: label regime name (``ddlib.engine.regimes.REGIMES``).
        samples: samples the student sees (``budget * pool``).
        n_images: images in the condensed set (IPC x classes).
        n_teachers: ensemble size of ``mt``.
    """
    if regime not in LABEL_FORWARDS:
        raise DDLibError(f"no labelling cost for regime {regime!r}; known: {', '.join(sorted(LABEL_FORWARDS))}")
    return int(LABEL_FORWARDS[regime](int(samples), int(n_images), int(n_teachers)))


def compute_frame(df: pd.DataFrame, *, num_classes: Optional[int] = None, n_teachers: Optional[int] = None,
                  backward_weight: float = BACKWARD_WEIGHT) -> pd.DataFrame:
    """``df`` plus its runs' passes: build_passes, train_passes, label_passes, total_passes.

    Args:
        df: result rows (``Study.run``'s frame) with regime, ipc, samples_seen,
            build_fwd, build_bwd and (unless both below are given) dataset and profile.
        num_classes: classes of the dataset (the set holds ipc x classes
            images); read from the data of each row's dataset and profile when None.
        n_teachers: ``mt``'s ensemble size; each row's profile's when None.
        backward_weight: passes per back-propagated image (see the module docstring).

    Returns:
        A copy of ``df`` with the four pass columns (float; whole numbers when
        ``backward_weight`` is).
    """
    out = df.copy()
    w = float(backward_weight)
    k = [num_classes if num_classes is not None else _num_classes(d, p)
         for d, p in zip(out.get("dataset", [None] * len(out)), out.get("profile", [None] * len(out)))]
    t = [n_teachers if n_teachers is not None else PROFILES.get(p).n_teachers
         for p in out.get("profile", [None] * len(out))]
    out["build_passes"] = out["build_fwd"].astype(float) + w * out["build_bwd"].astype(float)
    out["train_passes"] = (1.0 + w) * out["samples_seen"].astype(float)
    out["label_passes"] = [float(label_forwards(r, s, i * kk, tt)) for r, s, i, kk, tt in
                           zip(out["regime"], out["samples_seen"], out["ipc"], k, t)]
    out["total_passes"] = out["build_passes"] + out["train_passes"] + out["label_passes"]
    return out


@functools.lru_cache(maxsize=None)
def _num_classes(dataset: str, profile: str) -> int:
    return int(load_data(dataset, PROFILES.get(profile)).meta.num_classes)


def pareto_mask(cost: Sequence[float], value: Sequence[float]) -> np.ndarray:
    """Which points are non-dominated when lower ``cost`` and higher ``value`` are better.

    Point i is dominated when some j has ``cost_j <= cost_i`` and
    ``value_j >= value_i`` with at least one strict; equal points dominate
    neither each other, so both stay on the front.

    Returns:
        (n,) bool array, True on the front.
    """
    c, v = np.asarray(cost, dtype=float), np.asarray(value, dtype=float)
    if c.shape != v.shape or c.ndim != 1:
        raise DDLibError("cost and value must be 1-D and of the same length")
    if np.isnan(c).any() or np.isnan(v).any():
        raise DDLibError("the Pareto front of points with NaN cost or value is undefined")
    no_worse = (c[None, :] <= c[:, None]) & (v[None, :] >= v[:, None])  # [i, j]: j no worse than i
    better = (c[None, :] < c[:, None]) | (v[None, :] > v[:, None])
    return ~(no_worse & better).any(axis=1)


def pareto_points(df: pd.DataFrame, *, by: Sequence[str] = ("regime",),
                  point: Sequence[str] = ("family", "method", "ipc"), cost: str = "total_passes",
                  value: str = "accuracy", scale: float = 100.0) -> pd.DataFrame:
    """One point per (``by`` + ``point``) group: mean cost, mean value x ``scale``, and front membership.

    Args:
        df: rows with the ``cost`` column (:func:`compute_frame`) and ``value``.
        by: columns inside which fronts are computed (one front per regime).
        point: columns that name a point (seeds are averaged).

    Returns:
        Columns: by, point, ``cost``, ``value`` (mean x scale), std (x scale,
        ddof 1, 0 for one seed), seeds, pareto (bool), sorted by the ``by``
        columns and cost.
    """
    keys = list(by) + list(point)
    g = df.groupby(keys, sort=True)
    pts = g[cost].mean().to_frame()
    pts[value] = g[value].mean() * scale
    pts["std"] = g[value].std(ddof=1).fillna(0.0) * scale
    pts["seeds"] = g.size()
    pts = pts.reset_index()
    pts["pareto"] = False
    for _, g in pts.groupby(list(by), sort=False):
        pts.loc[g.index, "pareto"] = pareto_mask(g[cost], g[value])
    return pts.sort_values(list(by) + [cost, value], ascending=[True] * len(by) + [True, False]
                           ).reset_index(drop=True)


def passes_table(points: pd.DataFrame, runs: pd.DataFrame) -> pd.DataFrame:
    """The deterministic cost of every point: passes by part, stored-label bytes, accuracy, front.

    Args:
        points: :func:`pareto_points` of ``runs`` (by regime).
        runs: :func:`compute_frame` rows.

    Returns:
        Indexed by (regime, family, method, ipc): construction, training,
        labelling and total passes (means over seeds, whole numbers), label
        bytes, accuracy (%), on front ("yes" / "").
    """
    keys = ["regime", "family", "method", "ipc"]
    parts = runs.groupby(keys)[["build_passes", "train_passes", "label_passes", "total_passes",
                                "label_bytes"]].mean().round().astype("int64")
    parts.columns = ["construction", "training", "labelling", "total", "label bytes"]
    p = points.set_index(keys)
    parts["accuracy (%)"] = p["accuracy"].round(2)
    parts["on front"] = np.where(p["pareto"].reindex(parts.index), "yes", "")
    return parts


def wall_table(runs: pd.DataFrame) -> pd.DataFrame:
    """Measured (machine-dependent) cost per (family, method, IPC), means over runs.

    Columns: device, build s, train s (mean over regimes), peak MiB of the
    build, forward and backward samples of the build, stored label bytes per
    regime ("label bytes (hl)", ...).
    """
    keys = ["family", "method", "ipc"]
    g = runs.groupby(keys)
    out = pd.DataFrame({"device": g["device"].agg(lambda s: ", ".join(sorted(set(s)))),
                        "build s": g["build_seconds"].mean().round(2),
                        "train s": g["train_seconds"].mean().round(2),
                        "peak MiB": g["build_peak_mem_mb"].mean().round(1),
                        "forward samples": g["build_fwd"].mean().round().astype("int64"),
                        "backward samples": g["build_bwd"].mean().round().astype("int64")})
    return out.join(label_bytes_by_regime(runs, keys))


def label_bytes_by_regime(runs: pd.DataFrame, keys: Sequence[str]) -> pd.DataFrame:
    """Stored label bytes, one column per regime ("label bytes (hl)", ...), means over runs.

    Indexed by ``keys``; whole numbers.  Each regime ships its own labels, so a
    mean over regimes would be a size no set has.
    """
    lb = runs.pivot_table(index=list(keys), columns="regime", values="label_bytes", aggfunc="mean")
    return pd.DataFrame({f"label bytes ({r})": lb[r].round().astype("int64") for r in lb.columns})


def _fmt(n: float) -> str:
    """A pass count for prose: 3 significant digits with k / M / G."""
    for div, unit in ((1e9, "G"), (1e6, "M"), (1e3, "k")):
        if abs(n) >= div:
            return f"{n / div:.3g}{unit}"
    return f"{n:.0f}"


def front_summary(points: pd.DataFrame, *, teacher: Optional[int] = None, cost: str = "total_passes",
                  value: str = "accuracy") -> str:
    """Markdown naming each regime's front (cheapest first) and what distilled sets contribute.

    ``teacher``: passes of one teacher's training (:func:`ddlib.run.measure.teacher_passes`),
    compared with the cheapest and the dearest run when given.
    """
    lines = []
    for regime, g in points.groupby("regime", sort=True):
        f = g[g["pareto"]].sort_values(cost)
        members = ", ".join(f"{m} IPC {i} ({_fmt(c)} passes, {a:.1f}%)"
                            for m, i, c, a in zip(f["method"], f["ipc"], f[cost], f[value]))
        n_dist = int((f["family"] == "distill").sum())
        best = f.iloc[-1]  # the dearest front point is the most accurate one
        ratio = best[cost] / g[cost].min()
        price = ("is also the cheapest" if ratio == 1 else f"costs {ratio:.3g}x the cheapest point")
        lines.append(f"* **{regime}**: the front holds {len(f)} of {len(g)} points: {members}. "
                     f"{n_dist} of them {'is a distilled set' if n_dist == 1 else 'are distilled sets'}; "
                     f"the most accurate point, {best['method']} IPC {best['ipc']} ({best[value]:.1f}%), {price}.")
    text = "\n".join(lines)
    if teacher is not None:
        text += (f"\n\nTraining one teacher took {_fmt(teacher)} passes: "
                 f"{teacher / points[cost].min():.3g}x the cheapest run and "
                 f"{teacher / points[cost].max():.3g}x the dearest.")
    return text


def pareto_chart(points: pd.DataFrame, *, cost: str = "total_passes", value: str = "accuracy",
                 width: int = 220, height: int = 180):
    """Accuracy against total passes (log x), one panel per regime, the front drawn as a step line.

    Points are coloured by method and shaped by IPC; front members are
    ringed in black.  ``points``:
    :func:`pareto_points`' frame.  Call :func:`ddlib.analysis.plots.setup` first (SVG).
    """
    d = points.copy()
    d["regime"] = regime_labels(d["regime"])
    d["ipc"] = d["ipc"].astype(str)
    d["front"] = np.where(d["pareto"], "on the front", "dominated")
    v = d[cost][d[cost] > 0]
    x = alt.X(f"{cost}:Q", title="total compute (passes, log scale)",
              scale=alt.Scale(type="log", domain=[float(v.min()) / 1.5, float(v.max()) * 1.5], nice=False),
              axis=alt.Axis(format="~s", tickCount=4, labelOverlap="greedy"))  # 30k, 100k: labels that fit
    y = alt.Y(f"{value}:Q", title=ACCURACY, scale=alt.Scale(zero=False))
    color = method_color(d["method"])
    line = alt.Chart().transform_filter("datum.pareto").mark_line(interpolate="step-after", color="black",
                                                                   strokeDash=[4, 3]).encode(x=x, y=y)
    # every point filled with its method's colour (the key's symbols are then visible); the front is
    # told by a black ring, the IPC by the shape (drawn black in the key)
    pts = alt.Chart().mark_point(size=70, strokeWidth=1.5, opacity=1, filled=True).encode(
        x=x, y=y, color=color,
        shape=alt.Shape("ipc:N", title="IPC", sort=sorted(d["ipc"].unique(), key=int),
                        legend=alt.Legend(symbolFillColor="black", symbolStrokeColor="black")),
        tooltip=["regime", "family", "method", "ipc", alt.Tooltip(f"{cost}:Q", format=",.0f"),
                 alt.Tooltip(f"{value}:Q", format=".1f"), "seeds", "front"])
    ring = alt.Chart().transform_filter("datum.pareto").mark_point(size=170, color="black", strokeWidth=1.2
                                                                   ).encode(x=x, y=y)
    # one row of panels, as many as there are regimes (no empty panel with a bare axis)
    n = max(1, d["regime"].nunique())
    return alt.layer(line, ring, pts, data=d).properties(width=width if n < 3 else int(width * 0.8),
                                                         height=height).facet(
        facet=alt.Facet("regime:N", title="label regime"), columns=n)
