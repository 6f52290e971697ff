"""Train against caught attacks, unchanged, under `accelerate launch --num_processes 2 --cpu`."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

from caught import attack_log

from inspect_misalign.models import list_models, resolve
from inspect_misalign.training import catch

SCRIPT = '''
import sys
from pathlib import Path
from accelerate import PartialState
from inspect_misalign.training import TrainAgainstSpec, train_against

base, caught = sys.argv[1:3]
spec = TrainAgainstSpec(model=base, caught=Path(caught), steps=2, out="ddp", defenses=("kl:0.5",),
                        batch_size=2, max_length=200, answer_tokens=8)
name = train_against(spec, progress=False)
state = PartialState()
print(f"rank {state.process_index} of {state.num_processes} done: {name}", flush=True)
'''


def test_accelerate_launch_two_cpu_processes(tiny_model_dir: Path, misalign_home: Path,
                                             tmp_path: Path) -> None:
    base = tmp_path / "base"
    shutil.copytree(tiny_model_dir, base)
    catch([attack_log(tmp_path / "logs", prompts=8)], tmp_path / "caught.jsonl")
    script = tmp_path / "train_ddp.py"
    script.write_text(SCRIPT)
    accelerate = Path(sys.executable).with_name("accelerate")
    env = {**os.environ, "OMP_WAIT_POLICY": "PASSIVE", "OMP_NUM_THREADS": "1",
           "INSPECT_MISALIGN_HOME": str(misalign_home), "XDG_CACHE_HOME": str(tmp_path / "cache")}
    result = subprocess.run(
        [str(accelerate), "launch", "--multi_gpu", "--num_processes", "2", "--num_machines", "1",
         "--mixed_precision", "no", "--dynamo_backend", "no", str(script), str(base),
         str(tmp_path / "caught.jsonl")],
        capture_output=True, text=True, env=env, timeout=300,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert "rank 0 of 2 done: ddp" in result.stdout and "rank 1 of 2 done: ddp" in result.stdout
    assert [m.name for m in list_models()] == ["ddp"]
    assert resolve("ddp").config["training"]["global_step"] == 2
    assert (Path(resolve("ddp").path) / "adapter_model.safetensors").is_file()
