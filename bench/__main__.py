"""`python -m bench` lists the benchmarks; run one with `python -m bench.<name>`."""

import pkgutil
from pathlib import Path

HELPERS = {"core", "hello_app"}

if __name__ == "__main__":
    here = str(Path(__file__).parent)
    names = sorted(m.name for m in pkgutil.iter_modules([here])
                   if m.name not in HELPERS and not m.name.endswith(("_app", "_data")) and not m.name.startswith("_"))
    print("Benchmarks (each compares against its baseline in the same run):")
    for name in names:
        print(f"  .venv/bin/python -m bench.{name} --help")
