"""The search over a style's parameters: CMA-ES (and uniform random, the baseline) as a Ray Tune `Searcher`
over the unit cube of trainer/fit/space.py.

`cma`: the continuous dimensions follow CMA-ES (Hansen; the `cmaes` package's `CMA`, bounded to the cube,
started at the starting style with step size `sigma`), one generation of `population` points at a time; each
choice is a categorical whose probabilities move towards the choices of the best quarter of the points so far
(a cross-entropy update, smoothed). The first point is the starting style itself, so a fit never ends worse
than where it began. Points of a generation are handed out as fast as Tune asks (parallel trials); the next
generation waits for the last score of this one. `random` draws every point uniformly.

Finished trials can be replayed (`replay`), in the order they finished: how an interrupted fit resumes.
"""

from __future__ import annotations

import numpy as np
from ray.tune.search import Searcher

ALGORITHMS = ("lm", "cma", "random")
LM_TRIES = 4                         # damped Gauss-Newton steps tried (in parallel) after each Jacobian
BAD = 1e6                      # the score CMA-ES is told for a failed trial


class CubeSearcher(Searcher):
    """Minimise over [0, 1]^dims x choices (`choices`: how many options each categorical has)."""

    def __init__(self, dims: int, choices: list[int], start: tuple[list[float], list[int]], *,
                 algorithm: str = "cma", population: int = 12, sigma: float = 0.3, elite: float = 0.25,
                 smoothing: float = 0.5, seed: int = 0, metric: str = "objective") -> None:
        try:
            from cmaes import CMA
        except ImportError:
            from synthstream.errors import UserError
            raise UserError("synthstream fit needs the cmaes package: pip install 'synthstream[fit]' "
                            "(or pip install cmaes)") from None

        super().__init__(metric=metric, mode="min")
        if algorithm not in ALGORITHMS:
            raise ValueError(f"algorithm {algorithm!r}: one of {ALGORITHMS}")
        self.algorithm, self.population, self.smoothing, self.dims = algorithm, population, smoothing, dims
        self.n_elite = max(2, int(round(elite * population)))
        self.rng = np.random.default_rng(seed)
        self.start = ([float(v) for v in start[0]], [int(v) for v in start[1]])
        padded = max(2, dims)                         # CMA needs two dimensions; a padding one is ignored
        mean = np.full(padded, 0.5)
        mean[:dims] = np.clip(self.start[0], 0.0, 1.0)
        self.cma = CMA(mean=mean, sigma=sigma, bounds=np.tile([0.0, 1.0], (padded, 1)), seed=seed,
                       population_size=population)
        self.probs = []
        for n, k in zip(choices, self.start[1]):
            p = np.full(n, 0.5 / max(1, n - 1)) if n > 1 else np.ones(1)
            p[k] = 0.5 if n > 1 else 1.0
            self.probs.append(p)
        self.issued = 0                               # points handed out, the start included
        self.pending: dict[str, dict] = {}            # trial id -> config not scored yet
        self.asked: dict[tuple, np.ndarray] = {}      # a config's cube point as CMA drew it (with padding)
        self.generation: list[tuple[np.ndarray, float]] = []
        self.history: list[tuple[float, dict]] = []

    # -- Tune's Searcher API -----------------------------------------------------------------------------------
    def set_search_properties(self, metric, mode, config, **spec) -> bool:
        return True

    def suggest(self, trial_id: str) -> dict | None:
        if self.pending and (self.issued - 1) % self.population == 0:
            return None                               # wait: the start, or the previous generation, is not scored
        config = self._draw()
        self.issued += 1
        self.pending[trial_id] = config
        return config

    def on_trial_complete(self, trial_id: str, result: dict | None = None, error: bool = False) -> None:
        config = self.pending.pop(trial_id, None)
        if config is not None:
            ok = not error and result is not None and self.metric in result
            self.tell(config, float(result[self.metric]) if ok else float("inf"))

    # -- the algorithm -------------------------------------------------------------------------------------------
    def _draw(self) -> dict:
        if self.issued == 0:
            return {"u": list(self.start[0]), "k": list(self.start[1])}
        if self.algorithm == "random":
            x = self.rng.random(max(2, self.dims))
            k = [int(self.rng.integers(0, len(p))) for p in self.probs]
        else:
            x = self.cma.ask()
            k = [int(self.rng.choice(len(p), p=p / p.sum())) for p in self.probs]
        config = {"u": [round(float(v), 6) for v in x[:self.dims]], "k": k}
        self.asked[self._key(config)] = x
        return config

    @staticmethod
    def _key(config: dict) -> tuple:
        return tuple(config["u"]) + tuple(config["k"])

    def tell(self, config: dict, value: float) -> None:
        """A scored point (also how finished trials are replayed)."""
        value = value if np.isfinite(value) else float("inf")
        first = not self.history
        self.history.append((value, config))
        if first or self.algorithm == "random":
            return                                    # the start point is not one of CMA's draws
        x = self.asked.pop(self._key(config), None)
        if x is None:                                 # not one of this searcher's draws: padding at 0.5
            x = np.full(max(2, self.dims), 0.5)
            x[:self.dims] = config["u"]
        self.generation.append((x, min(value, BAD)))
        if len(self.generation) == self.population:
            self.cma.tell(self.generation)
            self.generation = []
            self._update_choices()

    def replay(self, records: list[dict]) -> None:
        """Feed the trials of an interrupted search back in, in the order they finished. Each generation's
        points are drawn again before its scores are told, so the random streams advance as they did and the
        continued search is the one the interrupted search would have run."""
        i = 0
        while i < len(records):
            n = 1 if self.issued == 0 else min(self.population - (self.issued - 1) % self.population,
                                               len(records) - i)
            for _ in range(n):
                self._draw()
                self.issued += 1
            for r in records[i:i + n]:
                self.tell(r["config"], r["objective"])
            i += n

    def _update_choices(self) -> None:
        ranked = sorted(self.history, key=lambda t: t[0])[:self.n_elite]
        for j, p in enumerate(self.probs):
            share = np.bincount([c["k"][j] for _, c in ranked], minlength=len(p)) / len(ranked)
            self.probs[j] = np.maximum((1 - self.smoothing) * p + self.smoothing * share, 0.02 / len(p))

    def best(self) -> tuple[float, dict]:
        return min(self.history, key=lambda t: t[0])


class LeastSquaresSearcher(Searcher):
    """Levenberg-Marquardt on the per-feature gaps (the objective is their mean square) with a finite-
    difference Jacobian. A generation is the `dims` points one step `h` from the centre along each axis plus,
    for each choice, the centre with that choice moved to another option (the next one each generation; all
    run in parallel); then `tries`
    damped Gauss-Newton steps with dampings 10x apart (in parallel). A choice that lowered the objective is
    kept; the best step is taken if it lowers the objective, else the dampings grow and `h` halves.
    Deterministic: replaying finished trials is telling them again."""

    def __init__(self, dims: int, choices: list[int], start: tuple[list[float], list[int]], *,
                 h: float = 0.04, tries: int = LM_TRIES, metric: str = "objective", **_) -> None:
        super().__init__(metric=metric, mode="min")
        self.dims, self.h, self.tries, self.sizes = dims, h, tries, list(choices)
        self.k = [int(v) for v in start[1]]
        self.centre = np.clip(np.asarray(start[0], float), 0.0, 1.0)
        self.centre_value, self.centre_r = float("inf"), None
        self.damping = 1e-2
        self.phase = "start"
        self.results: dict[tuple, tuple[float, np.ndarray | None]] = {}
        self.expected: list[dict] = []
        self.queue: list[dict] = []
        self.jacobian = None
        self.pending: dict[str, dict] = {}
        self.history: list[tuple[float, dict]] = []
        self.done = False                            # converged: nothing new to try
        self.rounds = 0                              # Jacobian generations so far
        self._depth = 0
        self._queue([self._config(self.centre)])

    def _config(self, u: np.ndarray, k: list[int] | None = None) -> dict:
        return {"u": [round(float(v), 6) for v in np.clip(u, 0.0, 1.0)], "k": list(self.k if k is None else k)}

    @staticmethod
    def _key(config: dict) -> tuple:
        return tuple(config["u"]) + ("|",) + tuple(config["k"])

    def set_search_properties(self, metric, mode, config, **spec) -> bool:
        return True

    def suggest(self, trial_id: str) -> dict | str | None:
        if self.done and not self.queue:
            return Searcher.FINISHED
        if not self.queue:
            return None
        config = self.queue.pop(0)
        self.pending[trial_id] = config
        return config

    def on_trial_complete(self, trial_id: str, result: dict | None = None, error: bool = False) -> None:
        config = self.pending.pop(trial_id, None)
        if config is not None:
            ok = not error and result is not None and self.metric in result
            self.tell(config, float(result[self.metric]) if ok else float("inf"),
                      result.get("residuals") if ok else None)

    def replay(self, records: list[dict]) -> None:
        """Feed the trials of an interrupted search back in, in the order they finished."""
        for r in records:
            if self.queue:
                self.queue.pop(0)
            self.tell(r["config"], r["objective"], r.get("residuals"))

    def tell(self, config: dict, value: float, residuals=None) -> None:
        value = value if np.isfinite(value) else float("inf")
        self.history.append((value, config))
        self.results[self._key(config)] = (value, None if residuals is None else np.asarray(residuals, float))
        if all(self._key(c) in self.results for c in self.expected):
            self._advance()

    def _advance(self) -> None:
        self._depth += 1
        try:
            if self._depth > 64:                      # only points scored before, again and again: converged
                self.done, self.queue = True, []
                return
            self._next()
        finally:
            self._depth -= 1

    def _next(self) -> None:
        got = [(self.results[self._key(c)], c) for c in self.expected]
        if self.phase == "start":
            (self.centre_value, self.centre_r), _ = got[0]
            self._jacobian_phase()
        elif self.phase == "jacobian":
            cols = []
            for (_, r), c in got[:self.dims]:
                step = np.asarray(c["u"]) - self.centre
                d = step[np.argmax(np.abs(step))]
                ok = r is not None and self.centre_r is not None and d != 0
                cols.append((r - self.centre_r) / d if ok else np.zeros_like(self.centre_r))
            self.jacobian = np.stack(cols, axis=1)
            flips = [((v, r), c) for (v, r), c in got[self.dims:] if v < self.centre_value]
            if flips:                                   # a better choice: keep it (the Jacobian stays a guess)
                (self.centre_value, self.centre_r), c = min(flips, key=lambda t: t[0][0])
                self.k = list(c["k"])
            self._step_phase()
        else:
            (value, r), c = min(got, key=lambda t: t[0][0])
            if value < self.centre_value:
                self.centre, self.centre_value, self.centre_r = np.asarray(c["u"], float), value, r
                self.damping = max(self.damping / 10, 1e-4)
                self._jacobian_phase()
            elif self.damping < 1e3:
                self.damping *= 100
                self._step_phase()
            else:                                       # no damping helps: a finer Jacobian
                self.damping, self.h = 1e-2, max(self.h / 2, 1e-3)
                self._jacobian_phase()

    def _jacobian_phase(self) -> None:
        self.phase = "jacobian"
        points = []
        for i in range(self.dims):
            u = self.centre.copy()
            u[i] += self.h if u[i] + self.h <= 1 else -self.h
            points.append(self._config(u))
        for j, n in enumerate(self.sizes):           # each choice's other options in turn, one per generation
            if n > 1:
                k = list(self.k)
                k[j] = (k[j] + 1 + self.rounds % (n - 1)) % n
                points.append(self._config(self.centre, k))
        self.rounds += 1
        self._queue(points)

    def _step_phase(self) -> None:
        self.phase = "step"
        J, r = self.jacobian, self.centre_r
        if J is None or r is None or not J.size:
            self._jacobian_phase()
            return
        jtj, jtr = J.T @ J, J.T @ r
        scale = np.maximum(np.diag(jtj), 1e-9)
        points = [self._config(self.centre + np.linalg.solve(jtj + self.damping * 10.0 ** t * np.diag(scale), -jtr))
                  for t in range(self.tries)]
        self._queue(points)

    def _queue(self, points: list[dict]) -> None:
        self.expected = points
        self.queue = []
        for c in points:                             # a point already scored (e.g. clipped to the same) is reused
            if self._key(c) not in self.results and c not in self.queue:
                self.queue.append(c)
        if not self.queue:
            if self.phase == "step" and all(self._key(c) == self._key(self._config(self.centre)) for c in points):
                self.h = max(self.h / 2, 1e-3)        # every step lands on the centre: refine and go on
                self._jacobian_phase()
            elif self.phase != "start" and self.expected:
                self._advance()

    def best(self) -> tuple[float, dict]:
        return min(self.history, key=lambda t: t[0])


def lm_first_step_trials(dims: int, choices: list[int]) -> int:
    """Trials before Levenberg-Marquardt can move at all: the start, one probe per number and per choice with
    options (the Jacobian), then its LM_TRIES damped steps. A smaller budget keeps only the best probe."""
    return 1 + dims + sum(1 for n in choices if n > 1) + LM_TRIES


def make_searcher(algorithm: str, dims: int, choices: list[int], start, **kw) -> Searcher:
    """The searcher for `algorithm` (see ALGORITHMS)."""
    if algorithm == "lm":
        return LeastSquaresSearcher(dims, choices, start, **kw)
    return CubeSearcher(dims, choices, start, algorithm=algorithm, **kw)


def run_serial(searcher: CubeSearcher, evaluate, budget: int) -> list[tuple[float, dict]]:
    """Drive a searcher in this process, one trial at a time (the algorithm's own benchmark and tests)."""
    for i in range(budget):
        config = searcher.suggest(f"t{i}")
        result = evaluate(config)
        searcher.on_trial_complete(f"t{i}", result if isinstance(result, dict) else {searcher.metric: result})
    return searcher.history
