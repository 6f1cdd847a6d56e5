"""Drift report from the live prediction log (the seeds' ``python app/monitoring.py``); see ``app.cli.drift_report``.

python app/monitoring.py             # the report; exit 0 when OK, 1 on drift, 2 when it cannot run
python app/monitoring.py --json      # the same as JSON (what GET /drift returns)
python app/monitoring.py --simulate  # the three simulated scenarios (no, moderate, severe drift)
"""

from __future__ import annotations

import sys

from app.cli.drift_report import main

if __name__ == "__main__":
    sys.exit(main())
