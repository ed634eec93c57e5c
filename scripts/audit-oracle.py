#!/usr/bin/env python3
"""Oracle for the audit stage (crates/cmr-audit, issue 5 "Done when"): writes random prediction files with known
disparities and the numbers Fairlearn and scikit-learn give for them; the Rust test
`crates/cmr-audit/tests/suite/fairlearn_oracle.rs` audits the same files and compares to 1e-9.

Usage: audit-oracle.py OUT_DIR   (the venv of scripts/setup-python.sh: fairlearn 0.13.0, scikit-learn 1.7.2)

Writes OUT_DIR/<case>.csv (and <case>-augmented.csv for the compared model) and OUT_DIR/expected.json:
{"cases": [{"name", "predictions", "compare", "by", "overall": {metric: value},
            "groupings": {name: {"groups": {label: {metric: value}}, "difference": {metric: value},
                                  "ratio": {metric: value}, "fairness": {statistic: value}}},
            "mcnemar": {grouping name or "overall": {label: p_value}}}]}
Grouping names and intersection labels are joined with " × " as in the Rust reports.
"""

import json
import sys
from pathlib import Path

import numpy as np
import pandas as pd
from fairlearn.metrics import (
    MetricFrame,
    demographic_parity_difference,
    demographic_parity_ratio,
    equal_opportunity_difference,
    equal_opportunity_ratio,
    equalized_odds_difference,
    equalized_odds_ratio,
    false_negative_rate,
    false_positive_rate,
    selection_rate,
    true_negative_rate,
)
from scipy.stats import binomtest
from sklearn.metrics import (
    accuracy_score,
    balanced_accuracy_score,
    f1_score,
    matthews_corrcoef,
    precision_score,
    recall_score,
    roc_auc_score,
)

JOIN = " × "
LABEL_METRICS = {
    "prevalence": lambda y_true, y_pred: float(np.mean(y_true)),
    "accuracy": accuracy_score,
    "balanced_accuracy": balanced_accuracy_score,
    "tpr": recall_score,
    "tnr": true_negative_rate,
    "fpr": false_positive_rate,
    "fnr": false_negative_rate,
    "ppv": precision_score,
    "f1": f1_score,
    "selection_rate": selection_rate,
    "mcc": matthews_corrcoef,
}
FAIRNESS = {
    "demographic_parity_difference": demographic_parity_difference,
    "demographic_parity_ratio": demographic_parity_ratio,
    "equalized_odds_difference": equalized_odds_difference,
    "equalized_odds_ratio": equalized_odds_ratio,
    "equal_opportunity_difference": equal_opportunity_difference,
    "equal_opportunity_ratio": equal_opportunity_ratio,
}


def simulate(rng, n, attributes, sensitivity, specificity, prevalence, score_decimals):
    """Subjects with attributes drawn from `attributes` ({column: (values, probabilities)}); y_pred is right with
    probability `sensitivity(row)` / `specificity(row)`, so the disparities are known by construction."""
    df = pd.DataFrame({"subject_id": [f"case:{i:05d}" for i in range(n)]})
    for column, (values, p) in attributes.items():
        df[column] = rng.choice(values, size=n, p=p)
    rows = df.to_dict("records")
    df["y_true"] = (rng.random(n) < np.array([prevalence(r) for r in rows])).astype(int)
    sens = np.array([sensitivity(r) for r in rows])
    spec = np.array([specificity(r) for r in rows])
    right = rng.random(n) < np.where(df["y_true"] == 1, sens, spec)
    df["y_pred"] = np.where(right, df["y_true"], 1 - df["y_true"])
    # Scores that agree with y_pred more often than not, rounded so that ties occur.
    noise = rng.normal(0.0, 0.18, n)
    df["y_score"] = np.clip(0.5 + (df["y_pred"] - 0.5) * 0.5 + (df["y_true"] - 0.5) * 0.2 + noise, 0.0, 1.0)
    df["y_score"] = df["y_score"].round(score_decimals)
    return df


def metric_frame(df, sensitive):
    labels = MetricFrame(metrics=LABEL_METRICS, y_true=df["y_true"], y_pred=df["y_pred"], sensitive_features=sensitive)
    auc = MetricFrame(metrics={"auc": roc_auc_score}, y_true=df["y_true"], y_pred=df["y_score"],
                      sensitive_features=sensitive)
    return labels, auc


def label_of(index):
    return JOIN.join(str(v) for v in index) if isinstance(index, tuple) else str(index)


def check_defined(df, columns):
    for key, g in df.groupby(columns):
        assert g["y_true"].nunique() == 2 and g["y_pred"].nunique() == 2, f"degenerate group {key}: enlarge n"


def grouping(df, columns):
    check_defined(df, columns)
    sensitive = df[columns] if len(columns) > 1 else df[columns[0]]
    labels, auc = metric_frame(df, sensitive)
    by_group = labels.by_group.join(auc.by_group)
    difference = {**labels.difference(method="between_groups").to_dict(), **auc.difference(method="between_groups").to_dict()}
    ratio = {**labels.ratio(method="between_groups").to_dict(), **auc.ratio(method="between_groups").to_dict()}
    counts = df.groupby(columns).size()
    groups = {}
    for index, row in by_group.iterrows():
        values = {k: float(v) for k, v in row.items()}
        values["n"] = int(counts.loc[index])
        groups[label_of(index)] = values
    fairness = {name: float(f(df["y_true"], df["y_pred"], sensitive_features=sensitive)) for name, f in FAIRNESS.items()}
    fairness["worst_group_balanced_accuracy"] = float(labels.group_min()["balanced_accuracy"])
    fairness["balanced_accuracy_difference"] = float(labels.difference()["balanced_accuracy"])
    return {"groups": groups, "difference": {k: float(v) for k, v in difference.items()},
            "ratio": {k: float(v) for k, v in ratio.items()}, "fairness": fairness}


def mcnemar(df, other, columns):
    a_right = df["y_pred"] == df["y_true"]
    b_right = other["y_pred"] == df["y_true"]
    out = {}
    for key, idx in df.groupby(columns).groups.items():
        b = int((a_right[idx] & ~b_right[idx]).sum())
        c = int((~a_right[idx] & b_right[idx]).sum())
        out[label_of(key)] = 1.0 if b + c == 0 else float(binomtest(b, b + c).pvalue)
    return out


def case(out, name, rng, n, attributes, sensitivity, specificity, prevalence, decimals, augmented=None):
    df = simulate(rng, n, attributes, sensitivity, specificity, prevalence, decimals)
    by = list(attributes)
    df.to_csv(out / f"{name}.csv", index=False)
    groupings = {column: grouping(df, [column]) for column in by}
    if len(by) > 1:
        groupings[JOIN.join(by)] = grouping(df, by)
    result = {"name": name, "predictions": f"{name}.csv", "compare": None, "by": by, "groupings": groupings}
    all_subjects = pd.Series(["all"] * n)
    result["overall"] = grouping(df.assign(_all=all_subjects), ["_all"])["groups"]["all"]
    if augmented is not None:
        other = df.copy()
        right = rng.random(n) < np.where(df["y_true"] == 1, [augmented(r) for r in df.to_dict("records")], 0.8)
        other["y_pred"] = np.where(right, df["y_true"], 1 - df["y_true"])
        # The compared file lists the subjects in another order: the audit pairs them by subject_id.
        other.sample(frac=1.0, random_state=1).drop(columns=by).to_csv(out / f"{name}-augmented.csv", index=False)
        result["compare"] = f"{name}-augmented.csv"
        result["mcnemar"] = {column: mcnemar(df, other, [column]) for column in by}
        result["mcnemar"]["overall"] = mcnemar(df.assign(_all=all_subjects), other, ["_all"])
    return result


def main():
    out = Path(sys.argv[1])
    out.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(20240305)
    bands = ["30s", "50s", "60s", "70s"]
    cases = [
        # Sensitivity lower for women, specificity lower for the 70s, prevalence differs by site.
        case(
            out, "disparity", rng, 4000,
            {"sex": (["F", "M"], [0.4, 0.6]), "age_band": (bands, [0.2, 0.3, 0.3, 0.2]),
             "site": (["A", "B", "C"], [0.5, 0.3, 0.2])},
            sensitivity=lambda r: 0.65 if r["sex"] == "F" else 0.85,
            specificity=lambda r: 0.6 if r["age_band"] == "70s" else 0.8,
            prevalence=lambda r: {"A": 0.3, "B": 0.45, "C": 0.55}[r["site"]],
            decimals=2,
            augmented=lambda r: 0.8,
        ),
        # Smaller, unequal groups and continuous scores.
        case(
            out, "unequal", rng, 600,
            {"bmi_class": (["normal", "overweight", "obese"], [0.6, 0.3, 0.1]), "sex": (["F", "M"], [0.3, 0.7])},
            sensitivity=lambda r: 0.6 if r["bmi_class"] == "obese" else 0.9,
            specificity=lambda r: 0.75,
            prevalence=lambda r: 0.4,
            decimals=6,
        ),
    ]
    (out / "expected.json").write_text(json.dumps({"cases": cases}, indent=1))


if __name__ == "__main__":
    main()
