"""The torch venv of scripts/setup-torch.sh for the golden generators: a script whose imports fail calls
`reexec_in_torch_venv(__file__, OPTIONS...)` from its `except ImportError:` block and is re-run with the venv's python.
"""

import os
import subprocess
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def reexec_in_torch_venv(script, *options):
    """Makes (idempotently) the venv with `setup-torch.sh OPTIONS` and re-executes `script` in it with the same
    arguments. Re-raises the import error being handled when already running in that venv (a real installation
    problem), so call it only from an `except ImportError:` block."""
    setup = [os.path.join(ROOT, "scripts", "setup-torch.sh"), *options]
    python = subprocess.run(setup, check=True, capture_output=True, text=True).stdout.strip().splitlines()[-1]
    if os.path.realpath(sys.prefix) == os.path.realpath(os.path.dirname(os.path.dirname(python))):
        raise  # noqa: PLE0704 — re-raises the ImportError the caller is handling
    os.execv(python, [python, os.path.abspath(script), *sys.argv[1:]])
