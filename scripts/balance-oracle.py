"""pandas oracle of `cmr-debias balance report` / `plan` needs, for the property test
(crates/cmr-balance/tests/suite/pandas_oracle.rs). Written from issue 4 and the crate README, not from the Rust code.

Prints one JSON object: {"strata": [{"values", "real", "synthetic"}], "needs": [{"values", "target", "needed",
"planned"}]} over the full grid of key levels (the report's strata; the plan's strata when --strategy is given).

Levels of a key: the bin labels first for age_band/bmi_class (and the binned age/bmi), then the other values seen
anywhere in the cohort, sorted; labels sort numerically.
Usage: python balance-oracle.py COHORT_DIR ATTRIBUTES_TOML --by k1,k2 [--split train|val|test|all]
       [--strategy not-majority|ratio:R] [--per-site] [--min-real N] [--max-synthetic-ratio R]
"""
import argparse, json, math, pathlib, tomllib

import numpy as np
import pandas as pd

BINNED = {"age": "age_band", "bmi": "bmi_class", "age_band": "age_band", "bmi_class": "bmi_class"}


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("cohort", type=pathlib.Path)
    ap.add_argument("attributes", type=pathlib.Path)
    ap.add_argument("--by", required=True)
    ap.add_argument("--split", default="train")
    ap.add_argument("--strategy")
    ap.add_argument("--per-site", action="store_true")
    ap.add_argument("--min-real", type=int, default=1)
    ap.add_argument("--max-synthetic-ratio", type=float)
    a = ap.parse_args()
    df = pd.read_parquet(a.cohort / "cohort.parquet")
    bins = tomllib.loads(a.attributes.read_text())
    keys = a.by.split(",")
    if a.per_site:
        keys = ["site"] + [k for k in keys if k != "site"]

    columns, levels = {}, {}
    for key in keys:
        if key in ("age", "bmi"):
            spec = bins[BINNED[key]]
            edges = [-math.inf] + [b["below"] for b in spec[:-1]] + [math.inf]
            columns[key] = pd.cut(df[key], edges, right=False, labels=[b["label"] for b in spec]).astype(str)
        elif key == "label":
            columns[key] = df[key].astype(str)
        else:
            columns[key] = df[key]
        if key == "label":
            levels[key] = [str(v) for v in sorted(df[key].unique())]
        else:
            first = [b["label"] for b in bins[BINNED[key]]] if key in BINNED else []
            levels[key] = first + sorted(set(columns[key].dropna()) - set(first))

    selected = df["split"] == a.split if a.split != "all" else pd.Series(True, index=df.index)
    frame = pd.DataFrame(columns)[selected].assign(source=df["source"][selected])
    counts = frame.groupby(keys + ["source"], observed=True).size().unstack("source", fill_value=0)
    grid = pd.MultiIndex.from_product([levels[k] for k in keys], names=keys)
    counts = counts.reindex(grid, fill_value=0).reindex(columns=["real", "synthetic"], fill_value=0)
    real, synthetic = counts["real"], counts["synthetic"]
    total = real + synthetic
    out = {"strata": [{"values": list(map(str, v)), "real": int(r), "synthetic": int(s)}
                      for v, r, s in zip(grid, real, synthetic)]}

    if a.strategy:
        group = grid.get_level_values(0) if a.per_site else np.zeros(len(grid))
        largest = total.groupby(group).transform("max")
        if a.strategy == "not-majority":
            target = largest
        else:
            ratio = float(a.strategy.split(":", 1)[1])
            target = np.maximum(total, np.floor(ratio * largest))
        needed = (target - total).clip(lower=0)
        planned = needed.where(real >= a.min_real, 0)
        if a.max_synthetic_ratio is not None:
            allowed = (np.floor(a.max_synthetic_ratio * real) - synthetic).clip(lower=0)
            planned = np.minimum(planned, allowed)
        out["needs"] = [{"values": list(map(str, v)), "target": int(t), "needed": int(n), "planned": int(p)}
                        for v, t, n, p in zip(grid, target, needed, planned)]
    print(json.dumps(out))


if __name__ == "__main__":
    main()
