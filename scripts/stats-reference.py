#!/usr/bin/python3
"""Reference values for Turnout's statistics core (src/core/stats), computed independently.

Writes test/fixtures/stats-reference.json, which src/core/stats/reference.test.ts replays
case by case. Run it with Debian's Python so the versions are those of the distribution's
packages (python3-scipy, python3-numpy, python3-statsmodels):

    apt-get install -y python3-scipy python3-numpy python3-statsmodels
    /usr/bin/python3 scripts/stats-reference.py

Where scipy or statsmodels implement a quantity, their value is the reference:
Mann-Whitney U (scipy.stats.mannwhitneyu, asymptotic), Welch's t (ttest_ind,
ttest_ind_from_stats), the pooled two-proportion z-test (statsmodels proportions_ztest) and
its intervals (confint_proportions_2indep: wald, newcomb, agresti-caffo), the chi-square SRM
test (scipy.stats.chisquare), Holm and Benjamini-Hochberg (statsmodels multipletests) and
sample sizes / power (statsmodels samplesize_proportions_2indep_onetail,
normal_sample_size_one_tail, power_proportions_2indep, NormalIndPower).

Quantities without a library counterpart are computed here from their published closed
forms, and where possible checked in this script against a second route (numerical
integration) before being written:
- mSPRT mixture likelihood ratios (Johari et al. 2022), checked against scipy.integrate.quad
  of the likelihood ratio against the normal / half-normal mixing density;
- the asymptotic confidence sequence (Waudby-Smith et al. 2024, eq. 9 and 161, as in
  GrowthBook) and its always-valid p-value;
- Bayesian chance to beat control by Evan Miller's exact sum for integer Beta parameters
  ("Formulas for Bayesian A/B testing", 2015) and expected loss by quad, checked against
  each other;
- the delta-method relative lift, and its interval by MOVER-R / Fieller (consistent with the
  absolute interval).
Effect sizes of Mann-Whitney are computed by brute force over all pairs.

The data sets are drawn from numpy's default_rng with fixed seeds, rounded to create ties,
and written into the fixture, so the TypeScript test needs no random generator of its own.
"""

import json
import math
import platform
import sys
from pathlib import Path

import numpy as np
import scipy
import statsmodels
from scipy import integrate, optimize, special, stats
from statsmodels.stats.multitest import multipletests
from statsmodels.stats.power import NormalIndPower, normal_sample_size_one_tail
from statsmodels.stats.proportion import (
    confint_proportions_2indep,
    power_proportions_2indep,
    proportions_ztest,
    samplesize_proportions_2indep_onetail,
)

OUT = Path(__file__).resolve().parent.parent / "test" / "fixtures" / "stats-reference.json"
SPEC_VERSION = 1

cases = []
datasets = {}


def dataset(name, values):
    """Stores a data set once in the fixture and returns its reference for a case's input."""
    values = [float(v) for v in values]
    if name in datasets and datasets[name] != values:
        raise ValueError(f"data set {name} defined twice")
    datasets[name] = values
    return {"dataset": name}


def f(x):
    """A plain float (or None for an undefined value) for JSON."""
    if x is None:
        return None
    x = float(x)
    if not math.isfinite(x):
        raise ValueError(f"non-finite reference value {x}")
    return x


def add(kind, name, inp, expected, tolerance=None):
    case = {"kind": kind, "name": name, "input": inp, "expected": {k: f(v) for k, v in expected.items()}}
    if tolerance:
        case["tolerance"] = tolerance
    cases.append(case)


def close(a, b, rel=1e-9, abs_=1e-14, what=""):
    if not (abs(a - b) <= max(rel * abs(b), abs_)):
        raise AssertionError(f"cross-check failed {what}: {a!r} vs {b!r}")


SCIPY_ALT = {"two-sided": "two-sided", "greater": "greater", "less": "less"}
SM_ALT = {"two-sided": "two-sided", "greater": "larger", "less": "smaller"}

# ---------------------------------------------------------------------------------------
# Distribution functions (the wrappers over @stdlib), including far tails


def dist(fn, args, value):
    add("distribution", f"{fn}({', '.join(map(repr, args))})", {"fn": fn, "args": list(args)}, {"value": value})


for x in (-3.0, 0.0, 1.2):
    dist("normalCdf", [x], stats.norm.cdf(x))
for x in (1.96, 12.0, 30.0):
    dist("normalSf", [x], stats.norm.sf(x))
for p_ in (1e-300, 1e-12, 0.025, 0.5, 0.975, 1 - 1e-9):
    dist("normalQuantile", [p_], stats.norm.ppf(p_))
for x, df in ((-2.5, 3.0), (1.3, 17.25), (40.0, 10.0), (8.0, 1e5)):
    dist("studentTCdf", [x, df], stats.t.cdf(x, df))
    dist("studentTSf", [x, df], stats.t.sf(x, df))
for p_, df in ((0.975, 4.0), (0.995, 83.7), (0.9, 1.0)):
    dist("studentTQuantile", [p_, df], stats.t.ppf(p_, df))
for x, k in ((3.0, 2.0), (0.5, 1.0), (400.0, 3.0), (12.0, 7.0)):
    if x < 100:  # beyond, the cdf is 1 to double precision
        dist("chiSquareCdf", [x, k], stats.chi2.cdf(x, k))
    dist("chiSquareSf", [x, k], stats.chi2.sf(x, k))
for x, a, b in ((0.3, 2.0, 5.0), (0.05, 5000.0, 95000.0), (0.001, 1.0, 1001.0)):
    dist("betaPdf", [x, a, b], stats.beta.pdf(x, a, b))
    dist("betaCdf", [x, a, b], stats.beta.cdf(x, a, b))

# ---------------------------------------------------------------------------------------
# Mann-Whitney U: scipy.stats.mannwhitneyu(candidate, baseline, method="asymptotic")


def mann_whitney(name, cand, base, alternatives=("two-sided", "greater", "less"), continuity=True, key=None):
    c = np.asarray(cand, dtype=float)
    b = np.asarray(base, dtype=float)
    n1, n2 = len(c), len(b)
    _, counts = np.unique(np.concatenate([c, b]), return_counts=True)
    tie_term = float(np.sum(counts.astype(float) ** 3 - counts))
    greater = (c[:, None] > b[None, :]).sum()
    ties = (c[:, None] == b[None, :]).sum()
    ps = (greater + 0.5 * ties) / (n1 * n2)
    diffs = np.sort(np.subtract.outer(c, b), axis=None)
    hl = np.median(diffs)
    bmed = np.median(b)
    # Moses' interval for the shift: order statistics k and n1n2 + 1 − k of the differences,
    # k = floor(n1n2/2 − z σ_U), σ_U tie-corrected (Hollander & Wolfe §4.3, large sample).
    n = n1 + n2
    sigma_u = math.sqrt(n1 * n2 / 12 * ((n + 1) - (tie_term / (n * (n - 1)) if n > 1 else 0)))
    k = math.floor(n1 * n2 / 2 - stats.norm.ppf(1 - 0.05 / 2) * sigma_u)
    shift_lo = diffs[k - 1] if k >= 1 else None
    shift_hi = diffs[n1 * n2 - k] if k >= 1 else None
    for alt in alternatives:
        res = stats.mannwhitneyu(c, b, alternative=SCIPY_ALT[alt], method="asymptotic", use_continuity=continuity)
        close(res.statistic, greater + 0.5 * ties, what=f"{name} U vs pair count")
        add(
            "mannWhitney",
            f"{name} ({alt}{'' if continuity else ', no continuity'})",
            {
                "candidate": dataset(f"{key or name}: candidate", c),
                "baseline": dataset(f"{key or name}: baseline", b),
                "alternative": alt,
                "continuity": continuity,
            },
            {
                "u": res.statistic,
                "pValue": res.pvalue,
                "tieTerm": tie_term,
                "effect.probabilityOfSuperiority": ps,
                "effect.rankBiserial": 2 * ps - 1,
                "effect.hodgesLehmannShift": hl,
                "effect.relativeShift": None if bmed == 0 else hl / bmed,
                "effect.candidateMedian": np.median(c),
                "effect.baselineMedian": bmed,
                "effect.shiftInterval.lower": shift_lo,
                "effect.shiftInterval.upper": shift_hi,
            },
        )


mann_whitney(
    "small, no ties",
    [12.1, 15.3, 9.8, 20.2, 17.7],
    [10.0, 11.5, 8.7, 13.2, 9.9, 12.0, 10.4],
)
rng = np.random.default_rng(20240601)
base = np.round(rng.lognormal(mean=np.log(40), sigma=0.35, size=180))
cand = np.round(rng.lognormal(mean=np.log(42), sigma=0.35, size=200))
mann_whitney("integer ms latencies with ties, n=200 vs 180, seed 20240601", cand, base)
mann_whitney(
    "integer ms latencies with ties, n=200 vs 180, seed 20240601",
    cand,
    base,
    ("two-sided",),
    continuity=False,
)
rng = np.random.default_rng(7)
base = np.round(rng.lognormal(mean=np.log(120), sigma=0.6, size=2000), 1)
cand = np.round(rng.lognormal(mean=np.log(120), sigma=0.6, size=1500) * 1.03, 1)
mann_whitney("0.1 ms latencies, n=1500 vs 2000, +3% shift, seed 7", cand, base, ("two-sided", "greater"))
rng = np.random.default_rng(11)
mann_whitney(
    "three distinct values, heavy ties, seed 11",
    rng.integers(1, 4, size=50),
    rng.integers(1, 4, size=60),
    ("two-sided", "greater"),
)
mann_whitney("identical samples", [3.0, 1.0, 2.0, 5.0], [5.0, 2.0, 3.0, 1.0], ("two-sided",))
mann_whitney("every value tied", [5.0, 5.0, 5.0], [5.0, 5.0], ("two-sided", "greater"))
mann_whitney("one value each", [3.0], [1.0], ("two-sided", "greater"))
mann_whitney("complete separation, baseline median 0", [4.0, 5.0, 6.0, 7.0], [-1.0, 0.0, 0.0, 1.0], ("greater",))

# ---------------------------------------------------------------------------------------
# Two proportions: statsmodels proportions_ztest (pooled) and confint_proportions_2indep


def rel_lift(mc, var_mc, mt, var_mt):
    if mc == 0:
        return None, None
    return mt / mc - 1, math.sqrt(var_mt / mc**2 + mt**2 * var_mc / mc**4)


def mover_rel(c, t):
    """Relative lift interval from per-arm (estimate, lower, upper) intervals (MOVER-R; Fieller's
    interval when they are symmetric): the roots of (mt - θ mc)^2 = Lt^2 + θ^2 Uc^2 (lower) and
    (mt - θ mc)^2 = Ut^2 + θ^2 Lc^2 (upper), found by brentq rather than the closed form the
    TypeScript uses; None when the control's interval reaches 0 (unbounded)."""
    if c[0] < 0:
        c = (-c[0], -c[2], -c[1])
        t = (-t[0], -t[2], -t[1])
    mc, mt = c[0], t[0]
    Lc, Uc, Lt, Ut = mc - c[1], c[2] - mc, mt - t[1], t[2] - mt
    if not (c[1] > 0 and mc > Uc):
        return None, None
    th = mt / mc
    lo = optimize.brentq(lambda x: (mt - x * mc) ** 2 - Lt**2 - x * x * Uc**2, -1e6, th, xtol=1e-15, rtol=1e-14)
    hi = optimize.brentq(lambda x: (mt - x * mc) ** 2 - Ut**2 - x * x * Lc**2, th, 1e6, xtol=1e-15, rtol=1e-14)
    return lo - 1, hi - 1


def sym(m, h):
    return (m, m - h, m + h)


def wilson(x, n, z):
    p = x / n
    d = 1 + z * z / n
    ce = (p + z * z / (2 * n)) / d
    h = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / d
    return (p, ce - h, ce + h)


def two_proportion(name, xc, nc, xt, nt, alpha=0.05, alternative="two-sided"):
    z, p = proportions_ztest([xt, xc], [nt, nc], alternative=SM_ALT[alternative])
    pc, pt = xc / nc, xt / nt
    exp = {"difference": pt - pc, "z": z, "pValue": p}
    for method, key in (("wald", "wald"), ("newcomb", "newcombe"), ("agresti-caffo", "agrestiCaffo")):
        lo, hi = confint_proportions_2indep(xt, nt, xc, nc, method=method, compare="diff", alpha=alpha)
        exp[f"intervals.{key}.lower"] = lo
        exp[f"intervals.{key}.upper"] = hi
    lift, se = rel_lift(pc, pc * (1 - pc) / nc, pt, pt * (1 - pt) / nt)
    zc = stats.norm.ppf(1 - alpha / 2)
    exp["relativeLift"] = lift
    exp["relativeLiftStandardError"] = se
    rlo, rhi = mover_rel(wilson(xc, nc, zc), wilson(xt, nt, zc))
    exp["relativeLiftInterval.lower"] = rlo
    exp["relativeLiftInterval.upper"] = rhi
    add(
        "twoProportion",
        name,
        {
            "control": {"successes": xc, "trials": nc},
            "treatment": {"successes": xt, "trials": nt},
            "alpha": alpha,
            "alternative": alternative,
        },
        exp,
    )


two_proportion("conversion 5.0% vs 6.3%", 120, 2400, 151, 2380)
two_proportion("conversion 5.0% vs 6.3%, greater, alpha 0.1", 120, 2400, 151, 2380, 0.1, "greater")
two_proportion("conversion 5.0% vs 6.3%, less", 120, 2400, 151, 2380, 0.05, "less")
two_proportion("error rate 0.2% vs 0.9%, unequal arms", 40, 20000, 18, 2000, 0.01)
two_proportion("small counts 3/50 vs 9/48", 3, 50, 9, 48)
two_proportion("large n, tiny p-value", 50000, 1000000, 52000, 1000000)
two_proportion("equal rates", 30, 600, 15, 300)

# ---------------------------------------------------------------------------------------
# Welch: scipy ttest_ind_from_stats / ttest_ind with equal_var=False (treatment first)


def welch_expected(mc, vc, nc, mt, vt, nt, alpha, alternative, res):
    se2 = vc / nc + vt / nt
    df = se2**2 / ((vc / nc) ** 2 / (nc - 1) + (vt / nt) ** 2 / (nt - 1))
    tc = stats.t.ppf(1 - alpha / 2, df)
    d = mt - mc
    se = math.sqrt(se2)
    close(res.statistic, d / se, rel=1e-12, what="welch t")
    lift, lse = rel_lift(mc, vc / nc, mt, vt / nt)
    rlo, rhi = mover_rel(sym(mc, tc * math.sqrt(vc / nc)), sym(mt, tc * math.sqrt(vt / nt)))
    return {
        "difference": d,
        "standardError": se,
        "t": res.statistic,
        "df": df,
        "pValue": res.pvalue,
        "interval.lower": d - tc * se,
        "interval.upper": d + tc * se,
        "relativeLift": lift,
        "relativeLiftStandardError": lse,
        "relativeLiftInterval.lower": rlo,
        "relativeLiftInterval.upper": rhi,
    }


def welch_summary(name, c, t, alpha=0.05, alternative="two-sided"):
    res = stats.ttest_ind_from_stats(
        t["mean"], math.sqrt(t["variance"]), t["n"], c["mean"], math.sqrt(c["variance"]), c["n"],
        equal_var=False, alternative=SCIPY_ALT[alternative],
    )
    exp = welch_expected(c["mean"], c["variance"], c["n"], t["mean"], t["variance"], t["n"], alpha, alternative, res)
    add("welchSummary", name, {"control": c, "treatment": t, "alpha": alpha, "alternative": alternative}, exp)


def welch_samples(name, c, t, alpha=0.05, alternative="two-sided"):
    c = np.asarray(c, dtype=float)
    t = np.asarray(t, dtype=float)
    res = stats.ttest_ind(t, c, equal_var=False, alternative=SCIPY_ALT[alternative])
    exp = welch_expected(c.mean(), c.var(ddof=1), len(c), t.mean(), t.var(ddof=1), len(t), alpha, alternative, res)
    exp["control.mean"] = c.mean()
    exp["control.variance"] = c.var(ddof=1)
    exp["treatment.variance"] = t.var(ddof=1)
    add(
        "welchSamples",
        name,
        {"control": dataset(f"{name}: control", c), "treatment": dataset(f"{name}: treatment", t), "alpha": alpha, "alternative": alternative},
        exp,
    )


welch_summary("revenue per user", {"n": 5000, "mean": 12.4, "variance": 310.0}, {"n": 5100, "mean": 13.1, "variance": 355.0})
welch_summary(
    "revenue per user, greater, alpha 0.1",
    {"n": 5000, "mean": 12.4, "variance": 310.0},
    {"n": 5100, "mean": 13.1, "variance": 355.0},
    0.1,
    "greater",
)
welch_summary("small unequal samples, less", {"n": 8, "mean": 3.2, "variance": 0.5}, {"n": 15, "mean": 2.1, "variance": 4.0}, 0.05, "less")
welch_summary("no difference", {"n": 100, "mean": 1.0, "variance": 1.0}, {"n": 100, "mean": 1.0, "variance": 2.0})
rng = np.random.default_rng(99)
welch_samples(
    "samples, seed 99",
    np.round(rng.normal(100, 15, size=40), 2),
    np.round(rng.normal(108, 25, size=55), 2),
)
welch_samples("tiny samples", [1.0, 2.0, 4.0], [2.0, 3.0, 7.0, 8.0], 0.05, "greater")

# ---------------------------------------------------------------------------------------
# SRM: scipy.stats.chisquare


def srm(name, observed, weights=None):
    obs = np.asarray(observed, dtype=float)
    w = np.ones_like(obs) if weights is None else np.asarray(weights, dtype=float)
    expected = obs.sum() * w / w.sum()
    res = stats.chisquare(obs, expected)
    exp = {"statistic": res.statistic, "pValue": res.pvalue, "df": len(obs) - 1}
    for i, e in enumerate(expected):
        exp[f"expected.{i}"] = e
    add("srm", name, {"observed": list(observed), "weights": None if weights is None else list(weights)}, exp)


srm("two arms, balanced", [5012, 4988])
srm("two arms, 50/50, mismatch", [50000, 48800])
srm("three arms 50/25/25", [10100, 4950, 4950], [50, 25, 25])
srm("four arms, weights not summing to 1, strong mismatch", [1000, 1200, 980, 1010], [1, 1, 1, 1])
srm("90/10 split", [8950, 1050], [0.9, 0.1])

# ---------------------------------------------------------------------------------------
# Multiple testing: statsmodels multipletests


def multiple(name, p):
    for method, key in (("holm", "holm"), ("fdr_bh", "benjamini-hochberg")):
        adj = multipletests(p, method=method)[1]
        add("adjust", f"{name} ({key})", {"pValues": p, "method": key}, {str(i): v for i, v in enumerate(adj)})


multiple("five metrics", [0.01, 0.04, 0.03, 0.005, 0.2])
multiple("ties and ones", [0.02, 0.02, 1.0, 0.5, 0.001, 0.02])
multiple("single", [0.03])
multiple("all tiny", [1e-8, 3e-7, 2e-9])

# ---------------------------------------------------------------------------------------
# Power and sample size: statsmodels


def plan_props(name, baseline, mde, mde_type="relative", alpha=0.05, power=0.8, alternative="two-sided", ratio=1.0):
    effect = baseline * mde if mde_type == "relative" else mde
    pt = baseline + effect
    # statsmodels' sample 1 is our control (p1 = p2 + diff), ratio = nobs2 / nobs1.
    n = samplesize_proportions_2indep_onetail(
        -effect, pt, power, ratio=ratio, alpha=alpha, alternative="two-sided" if alternative == "two-sided" else "larger"
    )
    a = alpha / 2 if alternative == "two-sided" else alpha
    pw = power_proportions_2indep(-effect, pt, n, ratio=ratio, alpha=a, alternative="smaller").power
    close(pw, power, rel=1e-6, what=f"{name} power at n")
    inp = {"baseline": baseline, "mde": mde, "mdeType": mde_type, "alpha": alpha, "power": power, "alternative": alternative, "ratio": ratio}
    add(
        "sampleSizeTwoProportions",
        name,
        inp,
        {"exactControl": n, "control": math.ceil(n), "treatment": math.ceil(n * ratio), "effect": effect},
    )
    n_eval = round(n * 0.7)
    pw = power_proportions_2indep(-effect, pt, n_eval, ratio=ratio, alpha=a, alternative="smaller").power
    add("powerTwoProportions", f"{name}, power at n = {n_eval}", {**inp, "control": n_eval}, {"power": pw})


def plan_means(name, sd, mde, mde_type="absolute", baseline_mean=None, alpha=0.05, power=0.8, alternative="two-sided", ratio=1.0):
    effect = abs(mde * baseline_mean) if mde_type == "relative" else abs(mde)
    a = alpha / 2 if alternative == "two-sided" else alpha
    std = sd * math.sqrt(1 + 1 / ratio)
    n = normal_sample_size_one_tail(effect, power, a, std_null=std, std_alternative=std)
    pw = NormalIndPower().power(effect / sd, nobs1=n, alpha=a, ratio=ratio, alternative="larger")
    close(pw, power, rel=1e-6, what=f"{name} power at n")
    inp = {"sd": sd, "mde": mde, "mdeType": mde_type, "baselineMean": baseline_mean, "alpha": alpha, "power": power, "alternative": alternative, "ratio": ratio}
    add(
        "sampleSizeTwoMeans",
        name,
        inp,
        {"exactControl": n, "control": math.ceil(n), "treatment": math.ceil(n * ratio), "effect": effect},
    )
    n_eval = round(n * 1.3)
    pw = NormalIndPower().power(effect / sd, nobs1=n_eval, alpha=a, ratio=ratio, alternative="larger")
    add("powerTwoMeans", f"{name}, power at n = {n_eval}", {**inp, "control": n_eval}, {"power": pw})


plan_props("5% baseline, +10% relative", 0.05, 0.10)
plan_props("20% baseline, +2 points absolute, power 0.9, one-sided", 0.20, 0.02, "absolute", 0.05, 0.9, "one-sided")
plan_props("1% baseline, +25% relative, 1:3 split", 0.01, 0.25, "relative", 0.01, 0.8, "two-sided", 3.0)
plan_means("sd 20, detect 1", 20.0, 1.0)
plan_means("relative 3% of mean 50, sd 30, 2:1 split", 30.0, 0.03, "relative", 50.0, 0.05, 0.9, "two-sided", 0.5)
plan_means("one-sided, alpha 0.1", 5.0, 0.5, "absolute", None, 0.1, 0.8, "one-sided")

# ---------------------------------------------------------------------------------------
# mSPRT (Johari et al.): closed forms, checked against quadrature of the mixture


def msprt_lr(s, v, tau2, alternative):
    """log Λ from the closed form."""
    log_lr = 0.5 * math.log(v / (v + tau2)) + tau2 * s * s / (2 * v * (v + tau2))
    if alternative != "two-sided":
        arg = math.sqrt(tau2) * s / math.sqrt(v * (v + tau2))
        log_lr += math.log(2) + stats.norm.logcdf(arg if alternative == "greater" else -arg)
    return log_lr


def msprt_log_lr_quad(s, v, tau2, alternative):
    """log Λ, Λ = ∫ exp(δ s / V − δ² / (2V)) h(δ) dδ with h normal (two-sided) or half-normal
    (density doubled on the alternative's side); integrated in log-space around the peak so
    that overwhelming evidence does not overflow."""
    tau = math.sqrt(tau2)

    def log_integrand(d):
        return d * s / v - d * d / (2 * v) + stats.norm.logpdf(d, scale=tau)

    # The integrand peaks at δ* = s τ² / (V + τ²) with width sqrt(Vτ²/(V+τ²)).
    peak = s * tau2 / (v + tau2)
    width = math.sqrt(v * tau2 / (v + tau2))
    lo, hi = peak - 40 * width, peak + 40 * width
    factor = 1.0
    if alternative == "greater":
        lo, factor = max(lo, 0.0), 2.0
    elif alternative == "less":
        hi, factor = min(hi, 0.0), 2.0
    if hi <= lo:
        return -math.inf
    c = log_integrand(min(max(peak, lo), hi))
    val = integrate.quad(lambda d: math.exp(log_integrand(d) - c), lo, hi, epsabs=0, epsrel=1e-12, limit=200)[0]
    return c + math.log(factor * val)


def msprt_case(kind, name, inp, estimate, v, tested=None):
    """`tested`: the estimate the likelihood ratio is computed at, when a continuity correction
    moved it (the reported estimate and the centre of the CS stay `estimate`)."""
    tau2 = inp["tau2"]
    alpha = inp.get("alpha", 0.05)
    alt = inp.get("alternative", "two-sided")
    null = inp.get("nullDifference", 0.0)
    s = (estimate if tested is None else tested) - null
    log_lr = msprt_lr(s, v, tau2, alt)
    log_quad = msprt_log_lr_quad(s, v, tau2, alt)
    if math.isfinite(log_quad) and log_lr > -30:
        close(log_quad, log_lr, rel=1e-8, abs_=1e-8, what=f"mSPRT {name}")
    half = math.sqrt(v * (v + tau2) / tau2 * (2 * math.log(1 / alpha) + math.log((v + tau2) / v)))
    # The CS is {θ : two-sided Λ(θ) < 1/α}: at its ends Λ = 1/α exactly.
    close(msprt_lr(half, v, tau2, "two-sided"), math.log(1 / alpha), rel=1e-10, what="CS end")
    prev = inp.get("previousPValue", 1.0)
    add(
        kind,
        name,
        inp,
        {
            "estimate": estimate,
            "variance": v,
            "logLikelihoodRatio": log_lr,
            "pValue": min(prev, math.exp(-log_lr), 1.0),
            "confidenceSequence.lower": estimate - half,
            "confidenceSequence.upper": estimate + half,
        },
    )


def msprt_props(name, xc, nc, xt, nt, **opts):
    def shrunk_var(x, n):
        p = (x + 0.5) / (n + 1)
        return p * (1 - p) / n

    inp = {"control": {"successes": xc, "trials": nc}, "treatment": {"successes": xt, "trials": nt}, **opts}
    estimate = xt / nt - xc / nc
    v = shrunk_var(xc, nc) + shrunk_var(xt, nt)
    null = opts.get("nullDifference", 0.0)
    if opts.get("variance") == "null":
        # Both arms' events pooled as if treatment = control + null, shrunk by half an event,
        # clamped so that both rates stay in (0, 1).
        eps = 0.5 / (nc + nt + 1)
        pc = (xc + xt - nt * null + 0.5) / (nc + nt + 1)
        pc = min(min(1 - eps, 1 - eps - null), max(max(eps, eps - null), pc))
        pt = pc + null
        v = pc * (1 - pc) / nc + pt * (1 - pt) / nt
    tested = None
    if opts.get("continuity"):
        cc = 0.5 * (1 / nt + 1 / nc)
        tested = max(null, estimate - cc) if estimate > null else min(null, estimate + cc)
    msprt_case("msprtTwoProportions", name, inp, estimate, v, tested)


def msprt_means(name, c, t, **opts):
    inp = {"control": c, "treatment": t, **opts}
    msprt_case("msprtTwoMeans", name, inp, t["mean"] - c["mean"], c["variance"] / c["n"] + t["variance"] / t["n"])


msprt_props("canary error rate 0.5% vs 1.6%, greater", 25, 5000, 16, 1000, tau2=1e-4, alpha=0.01, alternative="greater")
msprt_props("canary error rate 0.5% vs 0.4%, greater", 25, 5000, 4, 1000, tau2=1e-4, alpha=0.01, alternative="greater")
msprt_props("conversion 5.0% vs 6.3%, two-sided", 120, 2400, 151, 2380, tau2=2.5e-5)
msprt_props("conversion, less, previous p 0.2", 120, 2400, 101, 2380, tau2=2.5e-5, alternative="less", previousPValue=0.2)
msprt_props("null difference 0.01, greater", 100, 10000, 450, 20000, tau2=1e-4, nullDifference=0.01, alternative="greater")
msprt_props("zero errors in both arms", 0, 800, 0, 200, tau2=1e-4, alternative="greater")
msprt_props("all errors in the candidate", 0, 500, 100, 100, tau2=1e-4, alpha=0.01, alternative="greater")
msprt_props("canary 1% vs 5%, variance at the null 0, continuity", 27, 2700, 15, 300, tau2=0.04**2, alpha=0.01, alternative="greater", variance="null", continuity=True)
msprt_props("canary, variance at the null +1 point, continuity", 27, 2700, 15, 300, tau2=0.02**2, alpha=0.01, nullDifference=0.01, alternative="greater", variance="null", continuity=True)
msprt_props("canary, variance at the null, no correction", 9, 900, 5, 100, tau2=0.04**2, alpha=0.01, alternative="greater", variance="null")
msprt_props("continuity within half an event of the null", 9, 900, 1, 100, tau2=0.04**2, alpha=0.01, alternative="greater", variance="null", continuity=True)
msprt_means("latency means", {"n": 4000, "mean": 120.0, "variance": 900.0}, {"n": 3900, "mean": 123.5, "variance": 1000.0}, tau2=4.0)
msprt_means("latency means, greater", {"n": 400, "mean": 120.0, "variance": 900.0}, {"n": 390, "mean": 121.0, "variance": 1000.0}, tau2=4.0, alternative="greater", alpha=0.01)

# ---------------------------------------------------------------------------------------
# Asymptotic confidence sequence (Waudby-Smith et al. 2024), GrowthBook's parameterization:
#   ρ = sqrt((−2 ln α + ln(−2 ln α + 1)) / N*)                                 (eq. 161)
#   half-width = sqrt(SE² N) · sqrt(2(Nρ² + 1) / (N²ρ²) · ln(sqrt(Nρ² + 1) / α))  (eq. 9)
#   p = min(1, sqrt(Nρ² + 1) · exp(−ρ² N Δ² / (2 SE² (Nρ² + 1))))              (eq. 155)


def acs(name, c, t, alpha=0.05, tuning=5000.0, relative=False):
    rho = math.sqrt((-2 * math.log(alpha) + math.log(-2 * math.log(alpha) + 1)) / tuning)
    n = c["n"] + t["n"]
    vc, vt = c["variance"] / c["n"], t["variance"] / t["n"]
    if relative:
        est, se = rel_lift(c["mean"], vc, t["mean"], vt)
    else:
        est, se = t["mean"] - c["mean"], math.sqrt(vc + vt)
    s2 = se * se * n
    half = math.sqrt(s2) * math.sqrt(2 * (n * rho**2 + 1) / (n**2 * rho**2) * math.log(math.sqrt(n * rho**2 + 1) / alpha))
    p = min(1.0, math.sqrt(n * rho**2 + 1) * math.exp(-(rho**2) * n * est**2 / (2 * se**2 * (n * rho**2 + 1))))
    # p-value and interval agree: at α = p the half-width equals |Δ| (when p < 1).
    if p < 1:
        half_p = math.sqrt(s2) * math.sqrt(2 * (n * rho**2 + 1) / (n**2 * rho**2) * math.log(math.sqrt(n * rho**2 + 1) / p))
        close(half_p, abs(est), rel=1e-9, what=f"ACS {name} p/interval duality")
    add(
        "asymptoticCs",
        name,
        {"control": c, "treatment": t, "alpha": alpha, "tuning": tuning, "relative": relative},
        {
            "rho": rho,
            "n": n,
            "estimate": est,
            "standardError": se,
            "halfWidth": half,
            "interval.lower": est - half,
            "interval.upper": est + half,
            "pValue": p,
        },
    )


acs("revenue, N near tuning", {"n": 2500, "mean": 12.4, "variance": 310.0}, {"n": 2550, "mean": 13.9, "variance": 355.0})
acs("revenue, relative", {"n": 2500, "mean": 12.4, "variance": 310.0}, {"n": 2550, "mean": 13.9, "variance": 355.0}, relative=True)
acs("conversion 5% vs 6% as Bernoulli summaries, N far past tuning", {"n": 40000, "mean": 0.05, "variance": 0.05 * 0.95}, {"n": 40000, "mean": 0.06, "variance": 0.06 * 0.94})
acs("small N, alpha 0.1, tuning 1000", {"n": 60, "mean": 3.0, "variance": 4.0}, {"n": 50, "mean": 3.4, "variance": 5.0}, 0.1, 1000.0)
acs("no difference", {"n": 1000, "mean": 1.0, "variance": 1.0}, {"n": 1000, "mean": 1.0, "variance": 1.0})


# ---------------------------------------------------------------------------------------
# Ratio metrics (delta method, Deng et al. 2018) and CUPED (Deng et al. 2013), from raw per-unit
# data with numpy; the TypeScript side sees only the sums (n, Σx, Σx², Σy, Σy², Σxy), so this
# checks the sums-to-moments algebra as well as the formulas. The delta-method variance is
# cross-checked here against the variance of the ratio's linearization,
# (x_i − R y_i) / ȳ, which is the same quantity by a second route.


def sums_of(x, y):
    x = np.asarray(x, dtype=float)
    y = np.asarray(y, dtype=float)
    return {"n": int(len(x)), "sumX": float(x.sum()), "sumX2": float((x * x).sum()), "sumY": float(y.sum()), "sumY2": float((y * y).sum()), "sumXY": float((x * y).sum())}


def delta_ratio(x, y):
    x = np.asarray(x, dtype=float)
    y = np.asarray(y, dtype=float)
    n = len(x)
    mx, my = x.mean(), y.mean()
    c = np.cov(x, y, ddof=1)
    r = mx / my
    v = (c[0, 0] / my**2 - 2 * mx * c[0, 1] / my**3 + mx**2 * c[1, 1] / my**4) / n
    lin = (x - r * y) / my
    close(v, lin.var(ddof=1) / n, rel=1e-9, what="delta method vs linearization")
    return r, v


def ratio_case(name, seed, n_c, n_t, lift, alpha=0.05):
    rng = np.random.default_rng(seed)
    sess_c = rng.poisson(3.0, n_c) + 1
    sess_t = rng.poisson(3.0, n_t) + 1
    rev_c = np.round(sess_c * rng.gamma(2.0, 5.0, n_c), 2)
    rev_t = np.round(sess_t * rng.gamma(2.0, 5.0 * (1 + lift), n_t), 2)
    rc, vc = delta_ratio(rev_c, sess_c)
    rt, vt = delta_ratio(rev_t, sess_t)
    d = rt - rc
    se = math.sqrt(vc + vt)
    z = d / se
    p = 2 * stats.norm.sf(abs(z))
    zc = stats.norm.ppf(1 - alpha / 2)
    rl, rse = rel_lift(rc, vc, rt, vt)
    rlo, rhi = mover_rel(sym(rc, zc * math.sqrt(vc)), sym(rt, zc * math.sqrt(vt)))
    add(
        "ratioTest",
        name,
        {"control": sums_of(rev_c, sess_c), "treatment": sums_of(rev_t, sess_t), "alpha": alpha},
        {
            "control.ratio": rc,
            "control.variance": vc,
            "treatment.ratio": rt,
            "treatment.variance": vt,
            "difference": d,
            "standardError": se,
            "z": z,
            "pValue": p,
            "interval.lower": d - zc * se,
            "interval.upper": d + zc * se,
            "relativeLift": rl,
            "relativeLiftInterval.lower": rlo,
            "relativeLiftInterval.upper": rhi,
        },
    )


ratio_case("revenue per session, no effect", 71, 800, 820, 0.0)
ratio_case("revenue per session, +10%", 72, 1500, 1480, 0.10)


def cuped_case(name, seed, n, lift, rho_target):
    rng = np.random.default_rng(seed)
    pre_c = rng.normal(10, 3, n)
    pre_t = rng.normal(10, 3, n)
    y_c = np.round(rho_target * pre_c + rng.normal(0, 2, n), 3)
    y_t = np.round(rho_target * pre_t + lift + rng.normal(0, 2, n), 3)
    x = np.concatenate([pre_c, pre_t])
    y = np.concatenate([y_c, y_t])
    c = np.cov(x, y, ddof=1)
    theta = c[0, 1] / c[0, 0]
    mx = x.mean()
    adj_c = y_c - theta * (pre_c - mx)
    adj_t = y_t - theta * (pre_t - mx)
    adj = y - theta * (x - mx)
    add(
        "cuped",
        name,
        {"control": sums_of(pre_c, y_c), "treatment": sums_of(pre_t, y_t)},
        {
            "theta": theta,
            "control.mean": adj_c.mean(),
            "control.variance": adj_c.var(ddof=1),
            "treatment.mean": adj_t.mean(),
            "treatment.variance": adj_t.var(ddof=1),
            "varianceReduction": 1 - adj.var(ddof=1) / y.var(ddof=1),
        },
        # Sums of squares of ~1e5 lose digits the raw arrays keep: relative 1e-6 still holds.
    )


cuped_case("pre-period covariate, +0.5", 81, 1000, 0.5, 0.8)

# ---------------------------------------------------------------------------------------
# Bayesian binomial: Evan Miller's exact sum for P(T > C) and quad for the expected loss


def prob_beta_greater_sum(a1, b1, a2, b2):
    """P(X > Y), X ~ Beta(a1, b1), Y ~ Beta(a2, b2), integer a1 (Evan Miller 2015)."""
    i = np.arange(int(a1), dtype=float)
    terms = special.betaln(a2 + i, b2 + b1) - np.log(b1 + i) - special.betaln(1 + i, b1) - special.betaln(a2, b2)
    return float(np.exp(special.logsumexp(terms)))


def expected_positive_part(ax, bx, ay, by):
    """E[max(X − Y, 0)] = ∫ f_Y(y) E[(X − y)+] dy, E[(X − y)+] = m_X S_{X+}(y) − y S_X(y)."""
    mx = ax / (ax + bx)
    my, sy = ay / (ay + by), math.sqrt(ay * by / ((ay + by) ** 2 * (ay + by + 1)))
    lo, hi = max(0.0, my - 40 * sy), min(1.0, my + 40 * sy)

    def g(y):
        return stats.beta.pdf(y, ay, by) * (mx * stats.beta.sf(y, ax + 1, bx) - y * stats.beta.sf(y, ax, bx))

    return integrate.quad(g, lo, hi, points=[my], epsabs=1e-15, epsrel=1e-12, limit=500)[0]


def bayes_binomial(name, xc, nc, xt, nt, prior=(1, 1), method="exact"):
    a0, b0 = prior
    ac, bc = a0 + xc, b0 + nc - xc
    at, bt = a0 + xt, b0 + nt - xt
    mc, mt = ac / (ac + bc), at / (at + bt)
    vc = ac * bc / ((ac + bc) ** 2 * (ac + bc + 1))
    vt = at * bt / ((at + bt) ** 2 * (at + bt + 1))
    mean, sd = mt - mc, math.sqrt(vc + vt)
    if method == "exact":
        chance = prob_beta_greater_sum(at, bt, ac, bc)
        # Second route for the chance: quad of f_C · S_T.
        chance_q = integrate.quad(
            lambda x: stats.beta.pdf(x, ac, bc) * stats.beta.sf(x, at, bt),
            max(0.0, mc - 40 * math.sqrt(vc)), min(1.0, mc + 40 * math.sqrt(vc)),
            points=[mc], epsabs=1e-15, epsrel=1e-12, limit=500,
        )[0]
        close(chance_q, chance, rel=1e-8, abs_=1e-13, what=f"bayes {name} chance")
        loss_t = expected_positive_part(ac, bc, at, bt)  # E[max(C − T, 0)]
        loss_c = expected_positive_part(at, bt, ac, bc)  # E[max(T − C, 0)]
        # E[max(T − C, 0)] − E[max(C − T, 0)] = E[T − C].
        close(loss_c - loss_t, mean, rel=1e-8, abs_=1e-12, what=f"bayes {name} loss identity")
    else:
        r = mean / sd
        chance = stats.norm.cdf(r)
        loss_t = sd * stats.norm.pdf(r) - mean * stats.norm.cdf(-r)
        loss_c = sd * stats.norm.pdf(r) + mean * stats.norm.cdf(r)
    add(
        "bayesBinomial",
        f"{name} ({method})",
        {
            "control": {"successes": xc, "trials": nc},
            "treatment": {"successes": xt, "trials": nt},
            "priorAlpha": a0,
            "priorBeta": b0,
            "method": method,
        },
        {
            "chanceToBeatControl": chance,
            "expectedLoss.treatment": loss_t,
            "expectedLoss.control": loss_c,
            "difference.mean": mean,
            "difference.sd": sd,
        },
        # Quadrature on both sides: compare absolutely below 1e-6 of relative agreement.
        {"relative": 1e-6, "absolute": 1e-10} if method == "exact" else None,
    )


bayes_binomial("conversion 5.0% vs 6.3%", 120, 2400, 151, 2380)
bayes_binomial("conversion 5.0% vs 6.3%", 120, 2400, 151, 2380, method="normal")
bayes_binomial("small counts 3/50 vs 5/48", 3, 50, 5, 48)
bayes_binomial("rare events 0/1000 vs 2/1000", 0, 1000, 2, 1000)
bayes_binomial("treatment worse 480/1000 vs 470/1000", 480, 1000, 470, 1000)
bayes_binomial("large 5000/100000 vs 5100/100000", 5000, 100000, 5100, 100000)
bayes_binomial("unequal widths 20/200 vs 2600/20000", 20, 200, 2600, 20000)
bayes_binomial("prior Beta(2, 8), 10/60 vs 16/64", 10, 60, 16, 64, prior=(2, 8))


def bayes_normal(name, c, t, alpha=0.05):
    mean = t["mean"] - c["mean"]
    sd = math.sqrt(c["variance"] / c["n"] + t["variance"] / t["n"])
    r = mean / sd
    loss_t = sd * stats.norm.pdf(r) - mean * stats.norm.cdf(-r)
    loss_c = sd * stats.norm.pdf(r) + mean * stats.norm.cdf(r)
    # Second route: E[max(−D, 0)] by quadrature of the normal density.
    q = integrate.quad(lambda d: -d * stats.norm.pdf(d, mean, sd), mean - 40 * sd, min(0.0, mean + 40 * sd), epsabs=1e-15, epsrel=1e-12)[0] if mean - 40 * sd < 0 else 0.0
    close(q, loss_t, rel=1e-8, abs_=1e-13, what=f"bayes normal {name}")
    z = stats.norm.ppf(1 - alpha / 2)
    add(
        "bayesNormal",
        name,
        {"control": c, "treatment": t, "alpha": alpha},
        {
            "chanceToBeatControl": stats.norm.cdf(r),
            "expectedLoss.treatment": loss_t,
            "expectedLoss.control": loss_c,
            "difference.mean": mean,
            "difference.sd": sd,
            "credibleInterval.lower": mean - z * sd,
            "credibleInterval.upper": mean + z * sd,
        },
    )


bayes_normal("revenue per user", {"n": 5000, "mean": 12.4, "variance": 310.0}, {"n": 5100, "mean": 13.1, "variance": 355.0})
bayes_normal("treatment worse", {"n": 300, "mean": 50.0, "variance": 100.0}, {"n": 320, "mean": 48.0, "variance": 120.0}, 0.1)

# ---------------------------------------------------------------------------------------

fixture = {
    "specVersion": SPEC_VERSION,
    "generatedBy": "scripts/stats-reference.py",
    "tools": {
        "python": platform.python_version(),
        "scipy": scipy.__version__,
        "numpy": np.__version__,
        "statsmodels": statsmodels.__version__,
    },
    "tolerance": {
        "relative": 1e-6,
        "absolute": 1e-12,
        "rule": "a value passes when |actual - expected| <= relative * |expected| or <= absolute; "
        "a case's own tolerance replaces the default; expected null means the value is null",
    },
}


def dumps(x):
    return json.dumps(x, allow_nan=False, ensure_ascii=False)


# One case and one data set per line: compact, yet diffs stay readable.
lines = ["{"]
for k, v in fixture.items():
    lines.append(f" {dumps(k)}: {dumps(v)},")
lines.append(' "cases": [')
lines.append(",\n".join(f"  {dumps(c)}" for c in cases))
lines.append(" ],")
lines.append(' "datasets": {')
lines.append(",\n".join(f"  {dumps(k)}: {dumps(v)}" for k, v in datasets.items()))
lines.append(" }")
lines.append("}")
text = "\n".join(lines) + "\n"
json.loads(text)  # well-formed
OUT.parent.mkdir(parents=True, exist_ok=True)
OUT.write_text(text)
print(f"wrote {len(cases)} cases to {OUT} (scipy {scipy.__version__}, statsmodels {statsmodels.__version__})", file=sys.stderr)
