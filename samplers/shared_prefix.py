"""Model evaluations shared between runs that are the same up to a step (a critical-step sweep).

Runs of one seed whose negatives start at different steps are identical up to the earliest of
their starts: the same noise, the same sampler arithmetic, and the same guided prediction at
every evaluation before it. So the sweep runs them one after another, latest start first, and
each run keeps its guided predictions; the next run takes them back instead of evaluating the
model, for every evaluation of a step before its own start, as long as what the sampler asks
for is exactly what was asked before (same input latent and sigma, compared bit for bit).

Only model evaluations are shared: every run still goes through its own sampler loop with its
own seed, so ancestral and SDE samplers draw the same noise as separate runs, and each result
is bit-identical to a separate run (the model is evaluated on the same inputs either way).
"""

from dataclasses import dataclass, field

import torch


@dataclass
class Evaluation:
    x: torch.Tensor
    timestep: torch.Tensor
    prediction: torch.Tensor


@dataclass
class SharedPrefix:
    """Guided predictions of the previous run, by order of evaluation, and what the current run
    may reuse (evaluations of steps before `reuse_before`)."""

    previous: list[Evaluation] = field(default_factory=list)
    current: list[Evaluation] = field(default_factory=list)
    reuse_before: int = 0

    def begin_run(self, reuse_before: int) -> None:
        """A new run may reuse the last one's evaluations of steps before `reuse_before`."""
        if self.current:
            self.previous = self.current
        self.current = []
        self.reuse_before = reuse_before

    def predict(self, step: int, x: torch.Tensor, timestep: torch.Tensor, evaluate) -> torch.Tensor:
        """The guided prediction for this evaluation: the previous run's where it may and can be
        reused, else `evaluate()`."""
        index = len(self.current)
        if step < self.reuse_before and index < len(self.previous):
            earlier = self.previous[index]
            if torch.equal(earlier.timestep, timestep) and torch.equal(earlier.x, x):
                self.current.append(earlier)
                return earlier.prediction.clone()
        prediction = evaluate()
        self.current.append(Evaluation(x.clone(), timestep.clone(), prediction.clone()))
        return prediction
