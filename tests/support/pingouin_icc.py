"""ICC(3,1) reference for tests/robustness_icc.rs.

Reads a JSON list of tables (each a list of rows = subjects, columns = raters) on stdin
and prints, per table, pingouin's ICC(C,1) row (= ICC3) (value, F, df1, df2 and its 95 % CI, which
pingouin rounds to two decimals) plus the CI bounds recomputed with scipy's F quantiles
at full precision (McGraw & Wong 1996, case 3).
"""

import json
import sys

import pandas as pd
import pingouin as pg
from scipy import stats

ALPHA = 0.05


def reference(table: list[list[float]]) -> dict:
    long = pd.DataFrame(
        [
            {"subject": i, "rater": j, "value": v}
            for i, row in enumerate(table)
            for j, v in enumerate(row)
        ]
    )
    icc = pg.intraclass_corr(data=long, targets="subject", raters="rater", ratings="value")
    # pingouin 0.7 names the types after McGraw & Wong: ICC(C,1) is Shrout & Fleiss ICC3.
    row = icc.set_index("Type").loc["ICC(C,1)"]
    f0, df1, df2 = float(row["F"]), float(row["df1"]), float(row["df2"])
    k = len(table[0])
    f_l = f0 / stats.f.ppf(1 - ALPHA / 2, df1, df2)
    f_u = f0 * stats.f.ppf(1 - ALPHA / 2, df2, df1)
    return {
        "icc": float(row["ICC"]),
        "ci_rounded": [float(v) for v in row["CI95"]],
        "ci_scipy": [(f_l - 1) / (f_l + k - 1), (f_u - 1) / (f_u + k - 1)],
    }


print(json.dumps([reference(t) for t in json.load(sys.stdin)]))
