"""Apply each deliberate bug of issue 8 to the source, one at a time, and show that a test fails.

    python experiments/deliberate_bugs.py

Each bug is a one-line edit; the file is restored afterwards (also on Ctrl-C). A line ending
in "exit 0" would mean the suite misses that bug.
"""

import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

BUGS = [
    (
        "every epoch reuses the same shuffle (host)",
        "src/deepmle/population/randomness.py",
        "rng.permutation(n_train)",
        "stream(seed, SHUFFLE).permutation(n_train)",
        "tests/population/test_randomness.py",
    ),
    (
        "every epoch reuses the same shuffle (JAX key)",
        "src/deepmle/core/member.py",
        "jax.random.permutation(jax.random.fold_in(key, epoch), spec.n_train)",
        "jax.random.permutation(key, spec.n_train)",
        "tests/test_train.py",
    ),
    (
        "divergence guard never freezes",
        "src/deepmle/core/member.py",
        "keep = lambda new, old: jnp.where(accept, new, old)",
        "keep = lambda new, old: new",
        "tests/test_train.py",
    ),
    (
        "1.96 instead of Student's t",
        "src/deepmle/analysis/stats.py",
        "t_quantile(n - 1) * float",
        "1.96 * float",
        "tests/analysis/test_report.py",
    ),
    (
        "standard deviation with ddof=0",
        "src/deepmle/analysis/stats.py",
        "values.std(ddof=1)",
        "values.std(ddof=0)",
        "tests/analysis/test_report.py",
    ),
    (
        "saved group reused despite a different recorded identity",
        "src/deepmle/runs/store.py",
        'if record.get("identity") != identity(config, hidden):',
        "if False:",
        "tests/runs/test_store.py",
    ),
]


def main() -> None:
    for name, rel, good, bad, tests in BUGS:
        path = ROOT / rel
        text = path.read_text()
        assert text.count(good) == 1, f"{name}: the line to break is not in {rel} once"
        with tempfile.NamedTemporaryFile() as backup:
            shutil.copy(path, backup.name)
            path.write_text(text.replace(good, bad))
            try:
                cmd = [sys.executable, "-m", "pytest", "-q", "-x", "-p", "no:cacheprovider", tests]
                r = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True)
            finally:
                shutil.copy(backup.name, path)
        failed = [line for line in r.stdout.splitlines() if line.startswith("FAILED")]
        print(
            f"{name}: exit {r.returncode}; {failed[0] if failed else 'NO TEST FAILED'}", flush=True
        )


if __name__ == "__main__":
    main()
