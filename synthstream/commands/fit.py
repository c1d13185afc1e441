"""`synthstream fit`: learn a style's global parameters from unlabeled real captchas."""

from __future__ import annotations

import argparse

from synthstream import argtypes


def register(subparsers) -> None:
    f = subparsers.add_parser("fit", help="fit a style's parameters to unlabeled real captchas (Ray Tune search)")
    f.add_argument("--style", required=True, help="the starting style: built-in name or .toml path (its [fit] "
                   "table says what is fixed; see docs/fit.md)")
    f.add_argument("--real", required=True, help="folder of real captcha images (only the images are read, "
                   "never their names or labels)")
    f.add_argument("--out", required=True, help="output folder; the same command on the same --out continues")
    f.add_argument("--rounds", type=argtypes.positive_int, default=1, help="search (+ train) rounds")
    f.add_argument("--budget", type=argtypes.positive_int,
                   help="trials per round (default: lm's first step, 1 + the style's numbers + its choices + 4; "
                   "cma, random: 48)")
    f.add_argument("--population", type=argtypes.positive_int, default=12, help="CMA-ES generation size")
    f.add_argument("--objective", default="gap", metavar="gap|cover|seen|wake",  # checked by FitConfig (OBJECTIVES)
                   help="gap: the feature gap of image statistics (default); cover: the gap plus, weighted, how far "
                   "real images lie outside the style's range (keeps the nuisance a reader needs); seen: the gap "
                   "over a trained reader's CNN features (--checkpoint, default the shipped wikipedia reader); "
                   "wake: - mean "
                   "log p^ of the real images with their texts read once by --checkpoint, re-rendered by each "
                   "candidate (docs/fit.md)")
    f.add_argument("--checkpoint", help="wake: the model that reads the real images (a shipped model's name, a "
                   "checkpoint or a run folder; its style's size and alphabet must be the fitted style's); seen: "
                   "the reader(s) whose features are compared (any size and alphabet; comma-separated for "
                   "several; default: wikipedia)")
    f.add_argument("--renders", type=argtypes.positive_int, default=32, help="wake: renders per real image")
    f.add_argument("--gap-slack", type=argtypes.nonneg_float, default=0.25,
                   help="wake: a candidate whose feature gap, or any image statistic's gap, exceeds (1 + this) x "
                   "the round's start's (a statistic's: at least 1 sd) is penalised (default 0.25; unguarded, the "
                   "wake objective fits grey, washed-out, blurred styles: docs/fit.md)")
    f.add_argument("--gap-weight", type=argtypes.nonneg_float, default=0.0,
                   help="wake, seen: also add this x the feature gap to the searched objective (seen: the "
                   "statistics keep the text's size and spread, which a reader's features let go)")
    f.add_argument("--algorithm", choices=("lm", "cma", "random"),
                   help="lm: Levenberg-Marquardt on the per-feature gaps (gap's and cover's default); cma: CMA-ES (the "
                   "wake objective's default; lm cannot search it); random: the baseline")
    f.add_argument("-n", "--n-synthetic", type=argtypes.positive_int, default=200,
                   help="synthetic images rendered per trial")
    f.add_argument("--max-real", type=argtypes.positive_int, default=500, help="at most this many real images")
    f.add_argument("--fixed", default="", help="comma-separated fields never changed, on top of the style's "
                   "fit.fixed (e.g. warp.elastic_sigma,ink.background)")
    f.add_argument("--trial-cpus", type=argtypes.positive_float, default=0.5, help="CPUs per Tune trial")
    f.add_argument("--seed", type=argtypes.seed, default=0)
    f.add_argument("--train-steps", type=argtypes.nonneg_int, default=0,
                   help="sleep phase: train a proposal on the start and on each round's fitted style for this many "
                   "steps; fitted.toml is then the style whose proposal reads the real images most confidently "
                   "(mean top-reading probability, no labels) (0: skip)")
    f.add_argument("--train-preset", default="cpu-columns")
    f.add_argument("--train-minutes", type=argtypes.positive_float, help="wall-clock budget of each training")
    f.add_argument("--eval-data", help="a labelled folder: each round's model's reading rate on it is reported "
                   "(never used by the fit)")
    f.add_argument("--address", help="join this Ray cluster (default: $RAY_ADDRESS, else an embedded local Ray)")
    f.set_defaults(func=run)


def run(args: argparse.Namespace) -> None:
    from trainer.fit.loop import FitConfig, fit

    fixed = tuple(s.strip() for s in args.fixed.split(",") if s.strip())
    config = FitConfig(style=args.style, real=args.real, rounds=args.rounds, budget=args.budget,
                       population=args.population, algorithm=args.algorithm, objective=args.objective,
                       checkpoint=args.checkpoint, renders=args.renders, gap_weight=args.gap_weight,
                       gap_slack=args.gap_slack, n_synthetic=args.n_synthetic,
                       max_real=args.max_real, seed=args.seed, trial_cpus=args.trial_cpus, fixed=fixed,
                       train_steps=args.train_steps, train_preset=args.train_preset,
                       train_minutes=args.train_minutes, eval_data=args.eval_data)
    state = fit(config, args.out, address=args.address)
    from trainer.fit.loop import round_line

    first, last = state["rounds"][0], state["rounds"][-1]
    print(f"fitted {args.style}: {round_line({**last, **{k: v for k, v in first.items() if k.endswith('_start')}})}; "
          f"wrote {args.out}/fitted.toml, fit_curve.png, round_NN/")
