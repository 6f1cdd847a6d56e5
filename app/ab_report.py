"""The A/B verdict in a terminal; see ``app.cli.ab_report``.

python -m app.ab_report                         # the current experiment period
python -m app.ab_report --since 2026-11-01T00:00:00Z --json
"""

from __future__ import annotations

import sys

from app.cli.ab_report import main

if __name__ == "__main__":
    sys.exit(main())
