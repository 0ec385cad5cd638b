"""Run PyRadiomics on one image/mask pair with a parameter file and write its feature
values (diagnostics dropped) as JSON: {"<imageType>_<class>_<Feature>": value}.

Used by tests/pyradiomics_filters.rs as the reference for radscore's image filters.

    python pyradiomics_filters.py IMAGE MASK PARAMS OUT.json
"""
import json
import logging
import sys

import numpy as np
from radiomics import featureextractor

logging.getLogger("radiomics").setLevel(logging.ERROR)


def main():
    image, mask, params, out = sys.argv[1:5]
    extractor = featureextractor.RadiomicsFeatureExtractor(params)
    result = extractor.execute(image, mask)
    values = {
        name: float(np.asarray(value))
        for name, value in result.items()
        if not name.startswith("diagnostics_")
    }
    with open(out, "w") as f:
        json.dump(values, f)


if __name__ == "__main__":
    main()
