"""Score raw rows with an exported Lingjie model, in a process that never saw the training code
path: the export directory holds the program and the fitted feature state.

    .venv/bin/python -m trainer +experiment=movielens_deepfm          # train + export
    .venv/bin/python examples/serve_exported.py outputs/movielens_deepfm/<run>/export
"""
from __future__ import annotations

import sys

from easyrec.serving import ExportedModel


def main(export_dir: str) -> None:
    model = ExportedModel(export_dir)
    rows = [
        {"user_id": 1, "item_id": 50, "gender": "M", "age": 24, "occupation": "technician",
         "zip_code": "85711", "genres": "Action|Adventure|Romance|Sci-Fi|War", "release_year": 1977,
         "hist_item_id": [172, 133, 61]},
        {"user_id": 2, "item_id": 1, "gender": "F", "age": 53, "occupation": "other",
         "zip_code": "94043", "genres": "Animation|Children's|Comedy", "release_year": 1995,
         "hist_item_id": []},
    ]
    for task, scores in model.predict(rows).items():
        print(task, [round(float(s), 4) for s in scores])


if __name__ == "__main__":
    if len(sys.argv) != 2:
        sys.exit(__doc__)
    main(sys.argv[1])
