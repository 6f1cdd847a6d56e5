"""Train the model versions (the seeds' ``python app/train_model.py``); see ``app.cli.train``.

python app/train_model.py                       # Iris (embedded), v1 and v2
python -m app.train_model --data my.csv --target label --models-dir /tmp/models
mlops-train --help
"""

from __future__ import annotations

import sys

from app.cli.train import main

if __name__ == "__main__":
    sys.exit(main())
