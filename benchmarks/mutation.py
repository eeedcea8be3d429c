"""Mutation score of the scientific core with mutmut (>= 3): how many small changes of the code the tests notice.

    python benchmarks/mutation.py [--modules statistics sources findings unified] [--children 1] [--keep DIR]

The modules, the test selection and mutmut's other options are in setup.cfg's ``[mutmut]``
section (``only_mutate`` must list every module named here). mutmut runs in a scratch copy of
the checkout (the files git tracks or would track), so the working tree gets no ``mutants/``
folder; ``--modules`` picks which of the configured modules' mutants are run. Prints the
counts per outcome, the score (killed / all run; a timeout counts as killed, a mutant no
test reaches as surviving) and every surviving mutant's name, to read with
``mutmut show NAME`` in the copy (``--keep``). Slow (every mutant runs the selected tests):
not part of CI. Torch threads are held to one; ``--children`` is mutmut's parallelism.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
from collections import Counter
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
MODULES = {
    "statistics": "advdb.analytics.statistics",
    "findings": "advdb.analytics.findings",
    "sources": "advdb.attacks.sources",
    "unified": "advdb.attacks.unified",
}


def scratch_copy(dest: Path) -> None:
    """The checkout's tracked and untracked-but-not-ignored files, copied under ``dest``."""
    names = subprocess.run(
        ["git", "ls-files", "-co", "--exclude-standard", "-z"], cwd=ROOT, capture_output=True, check=True
    ).stdout.decode()
    for name in filter(None, names.split("\0")):
        src = ROOT / name
        if src.is_file():
            (dest / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(src, dest / name)


def run_mutmut(copy: Path, modules: list[str], children: int) -> dict[str, str]:
    """Run the modules' mutants; returns each one's outcome (killed, survived, timeout, no tests, …)."""
    env = {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1", "PYTHONPATH": str(copy)}
    env.setdefault("ADVDB_TEST_HOME", str(Path(tempfile.gettempdir()) / "advdb-mutation-home"))
    names = [f"{MODULES[m]}.*" for m in modules]
    mutmut = [sys.executable, "-m", "mutmut"]
    subprocess.run([*mutmut, "run", "--max-children", str(children), *names], cwd=copy, env=env, check=False)
    listing = subprocess.run(
        [*mutmut, "results", "--all", "true"], cwd=copy, env=env, capture_output=True, text=True, check=True
    ).stdout
    prefixes = tuple(f"{MODULES[m]}." for m in modules)
    outcomes = {}
    for line in listing.splitlines():
        name, _, outcome = line.strip().rpartition(": ")
        if name.startswith(prefixes):
            outcomes[name] = outcome
    return outcomes


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--modules", nargs="+", choices=sorted(MODULES), default=["statistics", "sources"])
    ap.add_argument("--children", type=int, default=1, help="mutants tested at once (default 1)")
    ap.add_argument("--keep", type=Path, help="make the scratch copy here and keep it")
    args = ap.parse_args()
    copy = args.keep or Path(tempfile.mkdtemp(prefix="advdb-mutation-"))
    copy.mkdir(parents=True, exist_ok=True)
    try:
        scratch_copy(copy)
        outcomes = run_mutmut(copy, args.modules, args.children)
        counts = Counter(outcomes.values())
        killed = counts["killed"] + counts["timeout"]
        survived = sum(counts.values()) - killed
        print(", ".join(f"{k} {v}" for k, v in sorted(counts.items())))
        score = killed / (killed + survived) if killed + survived else float("nan")
        print(f"mutation score ({', '.join(args.modules)}): {killed}/{killed + survived} = {score:.1%}")
        for name, outcome in sorted(outcomes.items()):
            if outcome not in ("killed", "timeout"):
                print(f"{outcome}: {name}")
    finally:
        if args.keep is None:
            shutil.rmtree(copy, ignore_errors=True)


if __name__ == "__main__":
    main()
