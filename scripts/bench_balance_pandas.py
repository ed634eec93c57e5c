"""pandas peer of `cmr-debias balance report` and `balance plan` for the balance benchmark (scripts/bench-balance.sh):
the same computation, from cohort.parquet to the result, as a pandas user would write it.

report: read the key/split/source columns, count the train split per stratum × source over the full grid of key
levels, the marginals, shares, smallest and empty strata.
plan (default keys, not-majority, --max-synthetic-ratio 0.25, seed 1): per-stratum targets, needs and guards; donors
drawn per stratum; age/BMI jittered and reflected into the band; prompts; the mask source by nearest age within
(label, sex) (`merge_asof`: the age-only part of cmr-balance's rule, which also weighs BMI and never repeats a mask);
a sha256-derived seed per subject; plan.parquet + plan.csv written.
Prints one JSON line: {"report_s": T, "plan_s": T, "planned": N} (median of the runs).
Usage: python bench_balance_pandas.py COHORT_DIR OUT_DIR [--runs 3]
"""
import argparse, hashlib, json, math, pathlib, statistics, time, tomllib

import numpy as np
import pandas as pd

ROOT = pathlib.Path(__file__).resolve().parent.parent
BINS = tomllib.loads((ROOT / "metadata/attributes.toml").read_text())
KEYS = ["sex", "age_band", "bmi_class", "label"]


def levels(df):
    out = {}
    for key in KEYS:
        if key == "label":
            out[key] = sorted(df[key].unique())
        else:
            first = [b["label"] for b in BINS[key]] if key in BINS else []
            out[key] = first + sorted(set(df[key].dropna()) - set(first))
    return out


def strata_counts(df):
    train = df[df["split"] == "train"]
    counts = train.groupby(KEYS + ["source"], observed=True).size().unstack("source", fill_value=0)
    grid = pd.MultiIndex.from_product(list(levels(df).values()), names=KEYS)
    counts = counts.reindex(grid, fill_value=0).reindex(columns=["real", "synthetic"], fill_value=0)
    return train, counts


def report(cohort):
    df = pd.read_parquet(cohort / "cohort.parquet", columns=KEYS + ["subject_id", "split", "source"])
    train, counts = strata_counts(df)
    total = counts.sum(axis=1)
    share = total / max(total.sum(), 1)
    marginals = {k: train.groupby([k, "source"], observed=True).size().unstack(fill_value=0) for k in KEYS}
    smallest = total[total > 0].sort_values(kind="stable").head(5)
    empty = total[total == 0].index.tolist()
    return share, marginals, smallest, empty


def bounds(key, labels):
    spec = BINS[key]
    lo = {b["label"]: (spec[i - 1]["below"] if i else -math.inf) for i, b in enumerate(spec)}
    hi = {b["label"]: b.get("below", math.inf) for b in spec}
    return labels.map(lo).to_numpy(float), labels.map(hi).to_numpy(float)


def jitter(rng, values, half, lo, hi):
    x = values + rng.uniform(-half, half, len(values))
    x = np.where(x < lo, 2 * lo - x, x)
    x = np.where(x >= hi, 2 * hi - x, x)
    return np.maximum(np.maximum(np.minimum(np.round(x, 1), hi - 0.1), lo), 0.0)


def plan(cohort, out, seed=1, cap=0.25):
    cols = ["subject_id", "site", "sex", "age", "bmi", "age_band", "bmi_class", "label", "diagnosis", "split", "source"]
    df = pd.read_parquet(cohort / "cohort.parquet", columns=cols)
    train, counts = strata_counts(df)
    real, synthetic = counts["real"], counts["synthetic"]
    total = real + synthetic
    needed = (total.max() - total).clip(lower=0)
    allowed = (np.floor(cap * real) - synthetic).clip(lower=0)
    planned = np.minimum(needed.where(real >= 1, 0), allowed).astype(int)
    # donors
    rng = np.random.default_rng(seed)
    real_train = train[train["source"] == "real"].reset_index(drop=True)
    members = real_train.groupby(KEYS, observed=True).indices
    picks = [rng.choice(members[key], size=k) for key, k in planned[planned > 0].items()]
    syn = real_train.iloc[np.concatenate(picks) if picks else []].reset_index(drop=True)
    # attributes in the band
    syn["age"] = jitter(rng, syn["age"].to_numpy(), 2.5, *bounds("age_band", syn["age_band"]))
    syn["bmi"] = jitter(rng, syn["bmi"].to_numpy(), 1.0, *bounds("bmi_class", syn["bmi_class"]))
    condition = syn["diagnosis"].map(BINS["prompt"]["condition"]).fillna(syn["diagnosis"])
    syn["prompt"] = (syn["sex"].map({"F": "Female", "M": "Male"}) + ", age in "
                     + (syn["age"] // 10).astype(int).astype(str) + "0s, " + syn["bmi_class"] + " BMI, " + condition)
    # mask source: nearest age within (label, sex)
    syn["order"] = np.arange(len(syn))
    candidates = real_train[["subject_id", "label", "sex", "age"]].rename(columns={"subject_id": "mask_source"})
    nearest = pd.merge_asof(syn.sort_values("age"), candidates.dropna(subset=["age"]).sort_values("age"),
                            on="age", by=["label", "sex"], direction="nearest").sort_values("order")
    syn["mask_source"] = nearest["mask_source"].to_numpy()
    syn["plan_id"] = [f"synthetic:{i + 1:06}" for i in range(len(syn))]
    syn["seed"] = [seed_of(seed, p) for p in syn["plan_id"]]
    columns = ["plan_id", "sex", "age", "bmi", "bmi_class", "age_band", "label", "diagnosis", "site", "mask_source",
               "prompt", "seed"]
    out.mkdir(parents=True, exist_ok=True)
    syn[columns].to_parquet(out / "plan.parquet", index=False)
    syn[columns].to_csv(out / "plan.csv", index=False)
    return len(syn)


def seed_of(root, plan_id):
    """cmr_core::seed::derive(root, ["balance", "synthetic", plan_id])."""
    h = hashlib.sha256(root.to_bytes(8, "little"))
    for label in ("balance", "synthetic", plan_id):
        h.update(len(label).to_bytes(8, "little"))
        h.update(label.encode())
    return int.from_bytes(h.digest()[:8], "little")


def timed(runs, f):
    times, result = [], None
    for _ in range(runs):
        start = time.perf_counter()
        result = f()
        times.append(time.perf_counter() - start)
    return statistics.median(times), result


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("cohort", type=pathlib.Path)
    ap.add_argument("out", type=pathlib.Path)
    ap.add_argument("--runs", type=int, default=3)
    a = ap.parse_args()
    report_s, _ = timed(a.runs, lambda: report(a.cohort))
    plan_s, planned = timed(a.runs, lambda: plan(a.cohort, a.out))
    print(json.dumps({"report_s": report_s, "plan_s": plan_s, "planned": planned}))


if __name__ == "__main__":
    main()
