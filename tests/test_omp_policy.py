"""The OpenMP wait policy is set only where the project runs its own models, never by importing it.

Each check runs in a fresh interpreter started without ``OMP_WAIT_POLICY`` (the test process has it
set by conftest, and the OpenMP runtime reads it only once).
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

POLICY = "import os; print('POLICY', os.environ.get('OMP_WAIT_POLICY'))\n"


def _run(code: str, **env: str) -> str:
    """Run ``code`` in a new interpreter without OMP_WAIT_POLICY; return the value it printed."""
    clean = {k: v for k, v in os.environ.items() if k != "OMP_WAIT_POLICY"}
    done = subprocess.run([sys.executable, "-c", code], env={**clean, **env}, capture_output=True, text=True,
                          check=False)
    assert done.returncode == 0, done.stderr[-2000:]
    [line] = [line for line in done.stdout.splitlines() if line.startswith("POLICY ")]
    return line.removeprefix("POLICY ")


def test_importing_the_entry_point_and_models_changes_nothing() -> None:
    code = (
        "import sys\n"
        "import inspect_misalign._registry, inspect_misalign.models, inspect_misalign.scorers\n"
        "assert 'torch' not in sys.modules\n" + POLICY
    )
    assert _run(code) == "None"


def test_an_hf_only_process_keeps_its_environment(tiny_model_dir: Path) -> None:
    code = (
        "import os, sys\n"
        "before = dict(os.environ)\n"
        "from inspect_ai._util.entrypoints import ensure_entry_points\n"
        "from inspect_ai.model import get_model\n"
        "ensure_entry_points()  # what Inspect does at every eval: loads inspect_misalign._registry\n"
        "assert 'inspect_misalign._registry' in sys.modules\n"
        f"get_model('hf/{tiny_model_dir}', device='cpu')\n"
        "assert 'torch' in sys.modules\n"
        "changed = {k for k in set(before) | set(os.environ) if before.get(k) != os.environ.get(k)}\n"
        "assert not {k for k in changed if k.startswith(('OMP_', 'INSPECT_MISALIGN'))}, changed\n" + POLICY
    )
    assert _run(code) == "None"


def test_the_misalign_provider_applies_the_policy_before_torch(tiny_model_dir: Path) -> None:
    code = (
        "import sys\n"
        "from inspect_ai.model import get_model\n"
        "import inspect_misalign._registry\n"
        f"get_model('misalign/{tiny_model_dir}')\n"
        "from inspect_misalign.models._threads import omp_policy_effective\n"
        "assert omp_policy_effective(), 'torch came first'\n" + POLICY
    )
    assert _run(code) == "PASSIVE"


@pytest.mark.parametrize(
    "code",
    [
        "from inspect_misalign.cli import main\nmain(['models'], standalone_mode=False)\n",
        "import inspect_misalign.training\n",
    ],
    ids=["cli", "training"],
)
def test_the_projects_own_runs_apply_it(code: str) -> None:
    assert _run("import sys\n" + code + "assert 'torch' not in sys.modules\n" + POLICY) == "PASSIVE"


def test_a_policy_the_user_chose_is_kept(tiny_model_dir: Path) -> None:
    code = "import inspect_misalign.training\n" + POLICY
    assert _run(code, OMP_WAIT_POLICY="ACTIVE") == "ACTIVE"
