"""What a condensed-set builder may use besides the data: the build context."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, List, Optional

import torch
import torch.nn as nn

from ddlib.core.config import Profile
from ddlib.core.cost import Cost, Meter
from ddlib.core.registry import DDLibError
from ddlib.core.store import Store
from ddlib.data import Split
from ddlib.engine.teachers import get_teachers


@dataclass
class Context:
    """Shared services for selectors and distillers.

    Attributes:
        profile: sizes of the study (iterations, models, teacher).
        store: where teachers and other artifacts are cached.
        meter: the open cost meter of this build; ``teacher()`` charges to it.
        quiet: hide progress bars.
        teacher_checkpoint: a user's local teacher ``state_dict`` file, if any.
        budget: the training budget (full-train-set epochs) the set is built for;
            only builders marked ``uses_budget`` may read it (it is then part of
            their cache key).
        engine: the step execution mode of the trainings a build runs (teacher,
            scoring models): a :class:`ddlib.engine.fastpath.Engine` or mode
            name, None = "auto" (the run layer passes ``$DDLIB_ENGINE``).
        seed: the run seed whose teachers ``teacher()`` returns (every run
            seed has its own: :func:`ddlib.engine.teachers.teacher_seed`).
        on_iter: called as ``on_iter(done, images)`` after each iteration by the
            distillers that support it (dm, dc, dsa): a benchmark's checkpoints
            along synthesis; it never changes what is computed (None in runs).
    """

    profile: Profile
    store: Store
    meter: Meter
    quiet: bool = True
    teacher_checkpoint: Optional[str] = None
    budget: Optional[float] = None
    engine: Any = None
    seed: int = 0
    on_iter: Any = None
    _teachers: List[nn.Module] = field(default_factory=list)
    _teacher_cost: Optional[Cost] = None
    _charged: Optional[Meter] = None

    def teacher(self, split: Split) -> nn.Module:
        """The first teacher (trained or loaded once per context).

        Its training cost is charged, and its passes counted, once in every
        build (every meter) that asks for it.
        """
        if not self._teachers:
            with self.meter.upstream():
                models, self._teacher_cost = get_teachers(
                    split, self.profile, self.store, 1, seed=self.seed, quiet=self.quiet,
                    checkpoint=self.teacher_checkpoint, engine=self.engine)
            self._teachers = models
        if self._charged is not self.meter:
            self.meter.charge(self._teacher_cost)
            self.meter.watch(self._teachers[0])
            self._charged = self.meter
        return self._teachers[0]


def check_ipc(split: Split, ipc: int) -> None:
    """Raise DDLibError if some class of the train pool has fewer than ``ipc`` samples."""
    counts = torch.bincount(split.train_y, minlength=split.num_classes)
    c = int(counts.argmin())
    if ipc > int(counts[c]):
        raise DDLibError(f"ipc {ipc} is larger than class {c} ({split.meta.classes[c]!r}), "
                         f"which has {int(counts[c])} training samples")
