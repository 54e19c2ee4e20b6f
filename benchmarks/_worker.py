"""Subprocess entry point: ``python _worker.py module:function args.json out.json``.

Imports ``module`` from this folder, calls ``function(**args)``, and writes its dict result plus this
process's peak RSS (``_peak_rss_mb``) as JSON. One measured thing per process keeps peak memory honest.
"""

from __future__ import annotations

import importlib
import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import peak_rss_mb  # noqa: E402


def main(argv: list[str]) -> int:
    ref, args_file, out_file = argv
    module, func = ref.split(":")
    kwargs = json.loads(Path(args_file).read_text())
    result = dict(getattr(importlib.import_module(module), func)(**kwargs))
    result["_peak_rss_mb"] = peak_rss_mb()
    tmp = Path(out_file + ".tmp")
    tmp.write_text(json.dumps(result, default=str))
    tmp.replace(out_file)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
