"""How close is a style to real captchas, without labels: a classifier two-sample test plus image statistics.

Classifier two-sample test (Lopez-Paz & Oquab, arXiv 1610.06545): an L2-regularised logistic regression
(Newton's method in torch) learns to tell real from synthetic images on ~100 hand-made features (the
statistics below, histograms of grey level, gradient magnitude and orientation, horizontal and vertical ink
run lengths, row and column ink profiles); its out-of-fold AUC over repeated stratified k-fold cross-
validation is the score. 0.5 means the classifier cannot tell them apart, 1.0 that it always can. The AUC
saturates at 1.0 long before two sets look alike, so the report adds a graded distance on the same features:
the feature gap, the mean over features of the squared standardised difference of their means (0 for two
samples of one style, up to chance; each feature's difference in units of the pooled sd). Logistic
regression on features rather than a CNN: the real sets are small (50 Facebook images), where a CNN's
thousands of weights overfit each fold and its AUC is mostly noise; the linear model fits in milliseconds on 2
cores, is deterministic, and the features it uses are ones a style file can change (ink, stroke width, blur,
clutter, layout).

Image statistics (per image; the table shows mean and standard deviation for each set and the difference
in units of the pooled standard deviation), with ink = pixels darker than halfway from background to ink:

    background        median grey level
    ink_level         2nd percentile grey level (the darkest ink)
    contrast          background - ink_level
    ink_fraction      share of pixels that are ink
    box_width/height  the ink's robust bounding box (5th to 95th percentile of ink x / y), pixels
    box_x, box_y      that box's centre, pixels from the left / top
    stroke_width      mean over ink pixels of the shorter of its horizontal and vertical ink run, pixels
    edge_energy       mean gradient magnitude, grey levels per pixel
    edge_sharpness    99th percentile gradient magnitude / contrast (lower = blurrier)
    clutter_coverage  share of the image inked outside the text box (rows and columns holding >= 30% of
                      the busiest row's / column's ink): strokes, dots and ellipses off the text
    background_noise  1.4826 x the median absolute deviation from the background of the pixels within
                      contrast/4 of it (a noise standard deviation that edges do not inflate)
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from synthstream.errors import UserError
from synthstream.labelled import IMAGE_SUFFIXES as SUFFIXES  # noqa: F401 - kept for callers of the old name
from synthstream.style import Style, load_style

STATISTICS = ("background", "ink_level", "contrast", "ink_fraction", "box_width", "box_height", "box_x",
              "box_y", "stroke_width", "edge_energy", "edge_sharpness", "clutter_coverage", "background_noise")
GRID_ROWS = 12
FIDELITY_KIND = "fidelity report"
MIN_IMAGES = 10            # per side; fewer cannot give a 5-fold AUC worth reporting


@dataclass
class AucResult:
    auc: float                 # mean over folds
    auc_std: float             # spread across folds
    fold_aucs: list[float]
    folds: int
    repeats: int
    n_real: int
    n_synthetic: int


def feature_gap(real_features: np.ndarray, synthetic_features: np.ndarray) -> float:
    """Mean over the classifier's features of ((synthetic mean - real mean) / pooled sd)^2: graded where the
    AUC has saturated (features with no spread in either set count 0)."""
    pooled = np.sqrt((real_features.var(axis=0) + synthetic_features.var(axis=0)) / 2)
    diff = synthetic_features.mean(axis=0) - real_features.mean(axis=0)
    z = np.where(pooled > 1e-12, diff / np.maximum(pooled, 1e-12), 0.0)
    return float(np.mean(z ** 2))


@dataclass
class StatRow:
    name: str
    real_mean: float
    real_std: float
    synthetic_mean: float
    synthetic_std: float
    difference: float          # (synthetic - real) / pooled std


# -- reading --------------------------------------------------------------------------------------------------

def load_real_images(directory: str | Path, style: Style, limit: int | None = None) -> np.ndarray:
    """Grey uint8 [n, H, W] at the style's size (resized bilinearly if needed), files sorted by name, read by
    the one image reader (`synthstream.images`); an unreadable file is one UserError naming it."""
    from synthstream.images import background_level, fit_to, read_folder

    read = read_folder(directory, "--real", background_level(style), limit)
    return np.stack([fit_to(grey, style.width, style.height)[0] for _, grey in read])


# -- statistics -----------------------------------------------------------------------------------------------

def _run_lengths(mask: np.ndarray) -> np.ndarray:
    """For each True pixel of bool [n, H, W], the length of the horizontal run of True it belongs to."""
    n, h, w = mask.shape
    padded = np.zeros((n, h, w + 1), bool)
    padded[:, :, :w] = mask
    flat = padded.reshape(-1)
    starts = flat & ~np.concatenate([[False], flat[:-1]])
    run_id = np.cumsum(starts) * flat                          # 0 off ink, run number on ink
    lengths = np.bincount(run_id, minlength=1)
    lengths[0] = 0
    return lengths[run_id].reshape(n, h, w + 1)[:, :, :w]


def _gradients(x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    gx = np.zeros_like(x)
    gy = np.zeros_like(x)
    gx[:, :, 1:-1] = (x[:, :, 2:] - x[:, :, :-2]) / 2
    gy[:, 1:-1, :] = (x[:, 2:, :] - x[:, :-2, :]) / 2
    return gx, gy


def _masked_percentile_coords(mask: np.ndarray, axis_sum: int, q: float) -> np.ndarray:
    """Per image, the q-quantile coordinate of ink along one axis (from the ink profile's CDF)."""
    profile = mask.sum(axis=axis_sum).astype(np.float64)        # [n, L]
    cdf = np.cumsum(profile, axis=1)
    total = np.maximum(cdf[:, -1:], 1)
    return (cdf / total < q).sum(axis=1).astype(np.float64)


def _band(profile: np.ndarray, share: float = 0.3) -> tuple[np.ndarray, np.ndarray]:
    """First and last index where each profile [n, L] reaches `share` of its maximum."""
    busy = profile >= share * np.maximum(profile.max(axis=1, keepdims=True), 1)
    first = busy.argmax(axis=1)
    last = profile.shape[1] - 1 - busy[:, ::-1].argmax(axis=1)
    return first, last


def image_statistics(images: np.ndarray) -> dict[str, np.ndarray]:
    """The named statistics (see the module docstring) for uint8 [n, H, W]: name -> float64 [n]."""
    x = images.astype(np.float64)
    n, h, w = x.shape
    flat = x.reshape(n, -1)
    background = np.median(flat, axis=1)
    ink_level = np.percentile(flat, 2, axis=1)
    contrast = background - ink_level
    ink = x < (background - contrast / 2 - 1e-9)[:, None, None]
    has_ink = ink.reshape(n, -1).any(axis=1)
    ink_count = np.maximum(ink.reshape(n, -1).sum(axis=1), 1)

    x_lo, x_hi = (_masked_percentile_coords(ink, 1, q) for q in (0.05, 0.95))
    y_lo, y_hi = (_masked_percentile_coords(ink, 2, q) for q in (0.05, 0.95))

    runs_h = _run_lengths(ink)
    runs_v = _run_lengths(ink.transpose(0, 2, 1)).transpose(0, 2, 1)
    stroke = np.where(ink, np.minimum(runs_h, runs_v), 0).reshape(n, -1).sum(axis=1) / ink_count

    gx, gy = _gradients(x)
    grad = np.hypot(gx, gy).reshape(n, -1)

    r0, r1 = _band(ink.sum(axis=2))
    c0, c1 = _band(ink.sum(axis=1))
    rows, cols = np.arange(h), np.arange(w)
    in_rows = (rows[None, :] >= r0[:, None]) & (rows[None, :] <= r1[:, None])
    in_cols = (cols[None, :] >= c0[:, None]) & (cols[None, :] <= c1[:, None])
    in_box = in_rows[:, :, None] & in_cols[:, None, :]
    clutter = (ink & ~in_box).reshape(n, -1).mean(axis=1)

    near_bg = np.abs(flat - background[:, None]) <= np.maximum(contrast, 4)[:, None] / 4
    deviation = np.where(near_bg, np.abs(flat - background[:, None]), np.nan)
    noise = 1.4826 * np.nan_to_num(np.nanmedian(deviation, axis=1))     # robust to anti-aliased edges

    stats = {
        "background": background,
        "ink_level": ink_level,
        "contrast": contrast,
        "ink_fraction": ink.reshape(n, -1).mean(axis=1),
        "box_width": np.where(has_ink, x_hi - x_lo, 0.0),
        "box_height": np.where(has_ink, y_hi - y_lo, 0.0),
        "box_x": np.where(has_ink, (x_lo + x_hi) / 2, w / 2),
        "box_y": np.where(has_ink, (y_lo + y_hi) / 2, h / 2),
        "stroke_width": stroke,
        "edge_energy": grad.mean(axis=1),
        "edge_sharpness": np.percentile(grad, 99, axis=1) / np.maximum(contrast, 1),
        "clutter_coverage": clutter,
        "background_noise": noise,
    }
    assert tuple(stats) == STATISTICS
    return stats


def statistics_table(real: np.ndarray, synthetic: np.ndarray) -> list[StatRow]:
    """Real vs synthetic: mean, spread and standardised difference of each statistic."""
    a, b = image_statistics(real), image_statistics(synthetic)
    rows = []
    for name in STATISTICS:
        pooled = np.sqrt((a[name].var() + b[name].var()) / 2)
        diff = (b[name].mean() - a[name].mean()) / pooled if pooled > 1e-12 else 0.0
        rows.append(StatRow(name, float(a[name].mean()), float(a[name].std()), float(b[name].mean()),
                            float(b[name].std()), float(diff)))
    return rows


# -- the classifier two-sample test ---------------------------------------------------------------------------

def _histograms(values: np.ndarray, edges: np.ndarray, weights: np.ndarray | None = None) -> np.ndarray:
    """Row-wise normalised histograms of values [n, m] over fixed bin edges."""
    n = values.shape[0]
    idx = np.clip(np.searchsorted(edges, values, side="right") - 1, 0, len(edges) - 2)
    offsets = (idx + np.arange(n)[:, None] * (len(edges) - 1)).reshape(-1)
    wts = None if weights is None else weights.reshape(-1)
    counts = np.bincount(offsets, weights=wts, minlength=n * (len(edges) - 1)).reshape(n, -1)
    return counts / np.maximum(counts.sum(axis=1, keepdims=True), 1e-12)


def features(images: np.ndarray) -> np.ndarray:
    """The classifier's inputs: float64 [n, ~100] (statistics, grey/gradient/orientation/run histograms,
    row and column ink profiles)."""
    x = images.astype(np.float64)
    n, h, w = x.shape
    stats = image_statistics(images)
    background = stats["background"][:, None, None]
    contrast = stats["contrast"][:, None, None]
    ink = x < background - contrast / 2 - 1e-9
    parts = [np.stack([stats[k] for k in STATISTICS], axis=1)]
    parts.append(_histograms(x.reshape(n, -1), np.linspace(0, 256, 17)))
    gx, gy = _gradients(x)
    mag = np.hypot(gx, gy).reshape(n, -1)
    parts.append(_histograms(mag, np.array([0, 2, 4, 8, 16, 24, 32, 48, 64, 96, 128, 192, 1e9])))
    angle = np.mod(np.arctan2(gy, gx).reshape(n, -1), np.pi)            # orientation, sign-free
    parts.append(_histograms(angle, np.linspace(0, np.pi + 1e-9, 9), weights=mag))
    run_edges = np.array([1, 2, 3, 4, 5, 6, 7, 8, 10, 13, 17, 1e9])
    for runs in (_run_lengths(ink), _run_lengths(ink.transpose(0, 2, 1))):
        on = runs.reshape(n, -1)
        parts.append(_histograms(np.where(on > 0, on, 0), run_edges, weights=(on > 0).astype(np.float64)))
    parts += [_resample(ink.mean(axis=2), 10), _resample(ink.mean(axis=1), 20)]     # row, column profiles
    return np.nan_to_num(np.concatenate(parts, axis=1))


def _resample(profile: np.ndarray, bins: int) -> np.ndarray:
    """Average a profile [n, L] into `bins` equal spans."""
    edges = np.linspace(0, profile.shape[1], bins + 1).astype(int)
    return np.stack([profile[:, a:max(b, a + 1)].mean(axis=1) for a, b in zip(edges[:-1], edges[1:])], axis=1)


def auc_score(labels: np.ndarray, scores: np.ndarray) -> float:
    """Area under the ROC curve (Mann-Whitney U with tied ranks averaged)."""
    order = np.argsort(scores, kind="mergesort")
    ranks = np.empty(len(scores))
    sorted_scores = scores[order]
    i = 0
    while i < len(scores):                                   # average ranks over ties
        j = i
        while j + 1 < len(scores) and sorted_scores[j + 1] == sorted_scores[i]:
            j += 1
        ranks[order[i:j + 1]] = (i + j) / 2 + 1
        i = j + 1
    pos = labels.astype(bool)
    n_pos, n_neg = pos.sum(), (~pos).sum()
    return float((ranks[pos].sum() - n_pos * (n_pos + 1) / 2) / (n_pos * n_neg))


def _fit_logistic(x: np.ndarray, y: np.ndarray, l2: float, iterations: int = 25):
    """L2-regularised logistic regression on standardised features, fitted by Newton's method (the loss is
    convex and smooth; ~10 steps of a [d+1, d+1] solve, milliseconds); returns a scoring function."""
    import torch

    mean, std = x.mean(axis=0), x.std(axis=0) + 1e-8
    z = torch.from_numpy(np.concatenate([(x - mean) / std, np.ones((len(x), 1))], axis=1))
    t = torch.from_numpy(y.astype(np.float64))
    penalty = torch.full((z.shape[1],), l2 * len(x), dtype=torch.float64)
    penalty[-1] = 0                                              # the intercept is not shrunk
    w = torch.zeros(z.shape[1], dtype=torch.float64)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)            # tiny matrices: more threads only add contention on a busy machine
    try:
        for _ in range(iterations):
            p = torch.sigmoid(z @ w)
            grad = z.T @ (p - t) + penalty * w
            hessian = (z.T * (p * (1 - p))) @ z + torch.diag(penalty)
            step = torch.linalg.solve(hessian, grad)
            w -= step
            if step.abs().max() < 1e-8:
                break
    finally:
        torch.set_num_threads(threads)
    w_np = w.numpy()
    return lambda q: np.concatenate([(q - mean) / std, np.ones((len(q), 1))], axis=1) @ w_np


def classifier_auc(real: np.ndarray, synthetic: np.ndarray, folds: int = 5, repeats: int = 4, seed: int = 0,
                   l2: float = 0.05) -> AucResult:
    """Out-of-fold AUC of a classifier telling `synthetic` (positive) from `real`, repeated stratified k-fold."""
    return _classifier_auc(features(real), features(synthetic), folds, repeats, seed, l2)


def _classifier_auc(real_features: np.ndarray, synthetic_features: np.ndarray, folds: int, repeats: int, seed: int,
                    l2: float = 0.05) -> AucResult:
    """`classifier_auc` on the images' features."""
    x = np.concatenate([real_features, synthetic_features])
    y = np.concatenate([np.zeros(len(real_features)), np.ones(len(synthetic_features))])
    rng = np.random.default_rng(seed)
    aucs = []
    for _ in range(repeats):
        fold_of = np.empty(len(y), int)
        for label in (0, 1):                                  # stratified: each fold gets both classes
            idx = np.flatnonzero(y == label)
            fold_of[rng.permutation(idx)] = np.arange(len(idx)) % folds
        for k in range(folds):
            test = fold_of == k
            score = _fit_logistic(x[~test], y[~test], l2)
            aucs.append(auc_score(y[test], score(x[test])))
    return AucResult(float(np.mean(aucs)), float(np.std(aucs)), [round(a, 4) for a in aucs], folds, repeats,
                     len(real_features), len(synthetic_features))


# -- the command ----------------------------------------------------------------------------------------------

def compare(style: Style, real: np.ndarray, seed: int = 0, folds: int = 5, repeats: int = 4) -> dict:
    """AUC and statistics for `real` images against as many synthetic samples generate(style, seed, 0, n)."""
    from synthstream.generate import generate

    if len(real) < MIN_IMAGES:
        raise UserError(f"--real holds {len(real)} images; the test needs at least {MIN_IMAGES}")
    synthetic, _ = generate(style, seed, 0, len(real))
    return {"style": style.name, "seed": seed, **compare_images(real, synthetic, seed, folds, repeats),
            "synthetic": synthetic}


def compare_images(real: np.ndarray, synthetic: np.ndarray, seed: int = 0, folds: int = 5,
                   repeats: int = 4) -> dict:
    """AUC, feature gap and statistics of two sets of grey uint8 images [n, H, W] of one size."""
    real_features, synthetic_features = features(real), features(synthetic)
    result = _classifier_auc(real_features, synthetic_features, folds, repeats, seed)
    table = statistics_table(real, synthetic)
    worst = max(table, key=lambda r: abs(r.difference))
    return {"auc": asdict(result), "feature_gap": feature_gap(real_features, synthetic_features),
            "statistics": [asdict(r) for r in table], "most_different": worst.name}


def format_table(report: dict) -> str:
    auc = report["auc"]
    lines = [f"{report['style']}: classifier AUC real vs synthetic {auc['auc']:.3f} +- {auc['auc_std']:.3f} "
             f"({auc['folds']}-fold x {auc['repeats']}, {auc['n_real']} real, {auc['n_synthetic']} synthetic; "
             f"0.5 = indistinguishable); feature gap {report['feature_gap']:.3f} (0 = alike)",
             f"{'statistic':<17} {'real mean':>10} {'real sd':>8} {'synth mean':>10} {'synth sd':>8} {'diff/sd':>8}"]
    for r in report["statistics"]:
        lines.append(f"{r['name']:<17} {r['real_mean']:>10.3f} {r['real_std']:>8.3f} {r['synthetic_mean']:>10.3f} "
                     f"{r['synthetic_std']:>8.3f} {r['difference']:>+8.2f}")
    lines.append(f"most different: {report['most_different']}")
    return "\n".join(lines)


def fidelity_command(style: str | Style, real_dir: str, json_path: str | None = None, out_dir: str | None = None,
                     n: int = 500, seed: int = 0) -> dict:
    """`synthstream fidelity`: compare a style with a folder of real captchas and print the table.

    Args:
        style: a built-in style name, a .toml path or a Style (`--style`).
        real_dir: folder of real captcha images, any size (resized to the style's), labels unused (`--real`).
        json_path: where to write the report as JSON (`--json`), or None.
        out_dir: folder to write `fidelity.json` and `fidelity_grid.png` (real | synthetic rows) into
            (`--out`; made if missing), or None.
        n: the most real images read (first n by file name); as many synthetic ones are rendered (`-n`).
        seed: the synthetic samples' seed and the cross-validation shuffle's (`--seed`).
    Returns: the report (JSON-able dict: style, auc {auc, auc_std, fold_aucs, ...}, statistics, most_different).
    """
    from synthstream.grid import make_grid
    from synthstream.output import atomic_write, owned_output_dir, replace_owned_dir

    if not isinstance(n, int) or n < MIN_IMAGES:
        raise UserError(f"-n {n!r} must be an integer >= {MIN_IMAGES}")
    style = style if isinstance(style, Style) else load_style(style)
    if out_dir is not None:
        owned_output_dir(out_dir, FIDELITY_KIND)            # before any work; never a folder of the user's
    real = load_real_images(real_dir, style, limit=n)
    report = compare(style, real, seed=seed)
    synthetic = report.pop("synthetic")
    report["real_dir"] = str(real_dir)
    print(format_table(report))
    text = json.dumps(report, indent=2) + "\n"
    if json_path:
        atomic_write(json_path, lambda tmp: Path(tmp).write_text(text))
    if out_dir is not None:
        rows = min(GRID_ROWS, len(real))
        tiles = [(img, "synthetic") for img in synthetic[:rows * 2]]
        sheet = make_grid(tiles, 2, [(img, "") for img in real[:rows]])

        def fill(tmp: Path) -> None:
            (tmp / "fidelity.json").write_text(text)
            sheet.save(tmp / "fidelity_grid.png", format="PNG")

        replace_owned_dir(out_dir, FIDELITY_KIND, fill)
        out = Path(out_dir)
        print(f"wrote {out / 'fidelity.json'} and {out / 'fidelity_grid.png'}")
    return report
