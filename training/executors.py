"""Where a sweep's cells run: local processes in parallel (one device set each), or Slurm jobs through submitit.

A cell is a ``CellJob``: the ``python -m training.train`` arguments of one run, plus the Oracle evaluations of a
text-only cell. Its commands are rebuilt from the disk each time it starts: a run folder with a complete checkpoint
gets ``--resume`` (training.checkpoint), a finished one (``done.json``) only runs the evaluations still missing. So
any restart, whether a requeue after preemption, a time limit or a killed process, continues from the newest
checkpoint and loses at most the steps since it.

Cell state lives in ``<out>/.sweep/<cell>.json`` (written atomically: state, attempt, pid or Slurm job id, start and
end times, the error), each cell's output in ``<out>/logs/<cell>.log`` (appended, one header line per attempt).
``python -m training.sweep status OUT`` reads both.

Local executor: at most ``max_parallel`` cells at once; with GPUs, each running cell holds its own set of
``gpus_per_cell`` devices (``CUDA_VISIBLE_DEVICES``) and, under ``accelerate launch``, its own rendezvous port. A cell
that ends by a signal (killed, preempted, OOM-killed) is requeued, up to ``max_attempts`` starts; one that exits
with an error fails for good (its log's last line is kept) and the other cells go on.

Slurm executor: each pending cell is one task of a job array (``submitit``), with the resources of a
``SlurmConfig``. A job runs ``accelerate launch`` on every node (machine rank = node index, rendezvous on the first
node). On preemption or at the time limit Slurm signals the job; submitit calls ``CellJob.checkpoint``, which hands
back the same cell, and requeues it; it resumes from its newest checkpoint.
"""

from __future__ import annotations

import dataclasses
import json
import os
import shlex
import signal
import subprocess
import sys
import time
from collections import deque
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Sequence

from training.config import ConfigError
from training.run_folder import DONE

STATE_DIR = ".sweep"
LOG_DIR = "logs"
STATES = ("done", "running", "queued", "failed")
# exit statuses of a process ended from outside (shell convention 128 + signal): requeue, do not fail
_SIGNAL_EXITS = {128 + signal.SIGKILL, 128 + signal.SIGTERM, 128 + signal.SIGINT, 128 + signal.SIGUSR2}


def state_path(out: Path, name: str) -> Path:
    return Path(out) / STATE_DIR / f"{name}.json"


def log_path(out: Path, name: str) -> Path:
    return Path(out) / LOG_DIR / f"{name}.log"


def read_state(out: Path, name: str) -> dict[str, Any]:
    path = state_path(out, name)
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}


def write_state(out: Path, name: str, **changes: Any) -> dict[str, Any]:
    """Merge ``changes`` into the cell's state file (atomically); returns the new state."""
    from data.textio import atomic_write_text

    state = {**read_state(out, name), **changes, "updated": time.time()}
    atomic_write_text(state_path(out, name), json.dumps(state, indent=2, default=str) + "\n")
    return state


def last_line(path: Path, limit: int = 64_000) -> str:
    """The last non-empty line of a log (tqdm's carriage-return updates count as lines)."""
    try:
        with open(path, "rb") as fh:
            fh.seek(0, os.SEEK_END)
            fh.seek(max(0, fh.tell() - limit))
            tail = fh.read().decode("utf-8", errors="replace")
    except OSError:
        return ""
    lines = [ln.strip() for ln in tail.replace("\r", "\n").splitlines() if ln.strip()]
    return lines[-1] if lines else ""


def killed_by_signal(rc: int) -> bool:
    return rc < 0 or rc in _SIGNAL_EXITS


@dataclass
class CellJob:
    """One cell of a sweep, picklable (submitit ships it to the Slurm job)."""

    name: str  # run folder name: <scheme>-p<percent>-s<seed>
    out: str  # sweep folder; the run is <out>/<name>
    train_args: list[str]  # arguments after `-m training.train` (config, overrides, cell), without --resume
    oracle_splits: list[str] = field(default_factory=list)  # splits to score with --oracle once trained
    launcher: list[str] = field(default_factory=list)  # command before `-m training.train`; empty = this python
    env: dict[str, str] = field(default_factory=dict)  # extra environment (tracking)
    max_attempts: int = 3  # starts of a cell within one executor run (a kill within a Slurm job counts too)
    slurm: dict[str, Any] | None = None  # SlurmConfig as a dict (Slurm jobs only): nodes, GPUs, accelerate config

    @property
    def run_dir(self) -> Path:
        return Path(self.out) / self.name

    @property
    def results_csv(self) -> Path:
        return Path(self.out) / "results.csv"

    def finished(self) -> bool:
        return (self.run_dir / DONE).is_file()

    def resumable(self) -> bool:
        from training.checkpoint import latest_checkpoint

        return latest_checkpoint(self.run_dir) is not None

    def missing_oracle(self) -> list[str]:
        """Oracle splits without a metrics.json yet (a finished text cell may still owe them)."""
        done = set()
        for metrics in self.run_dir.glob("eval/*-oracle/metrics.json"):
            try:
                done.add(json.loads(metrics.read_text(encoding="utf-8")).get("split"))
            except (OSError, ValueError):
                continue
        return [s for s in self.oracle_splits if s not in done]

    def pending(self) -> bool:
        return not self.finished() or bool(self.missing_oracle())

    def train_command(self, launcher: Sequence[str] | None = None) -> list[str]:
        prefix = list(launcher if launcher is not None else self.launcher) or [sys.executable]
        cmd = prefix + ["-m", "training.train", *self.train_args]
        return cmd + ["--resume"] if self.resumable() else cmd

    def oracle_commands(self, python: str = sys.executable) -> list[list[str]]:
        return [
            [
                python,
                "-m",
                "training.evaluate",
                str(self.run_dir),
                "--split",
                split,
                "--oracle",
                "--results_csv",
                str(self.results_csv),
            ]
            for split in self.missing_oracle()
        ]

    def commands(self, launcher: Sequence[str] | None = None) -> list[list[str]]:
        """What is still to run, read from the disk now."""
        train = [] if self.finished() else [self.train_command(launcher)]
        return train + self.oracle_commands()

    def shell_line(self) -> str:
        """One shell line that runs the cell's remaining commands (``--print-commands``)."""
        train = [] if self.finished() else [self.train_command()]
        return " && ".join(shlex.join(c) for c in train + self.oracle_commands(python="python"))

    # -- inside a Slurm job (submitit) ------------------------------------------------------------------------
    def __call__(self) -> str:
        import socket

        node, nodes, hosts, job_id = _job_environment()
        launcher = slurm_launcher(self.slurm or {}, node=node, nodes=nodes, master=hosts[0] if hosts else "")
        main = node == 0
        for attempt in range(1, self.max_attempts + 1):
            steps = self.commands(launcher) if main else ([self.train_command(launcher)] if not self.finished() else [])
            if main:
                write_state(
                    Path(self.out),
                    self.name,
                    state="running",
                    attempt=attempt,
                    job_id=job_id,
                    host=socket.gethostname(),
                    pid=os.getpid(),
                    started=time.time(),
                    error="",
                )
            rc = 0
            for cmd in steps:
                rc = run_logged(
                    cmd,
                    log_path(Path(self.out), self.name),
                    env=self.env,
                    header=f"attempt {attempt} on {socket.gethostname()} (job {job_id}, node {node})",
                )
                if rc != 0:
                    break
            if rc == 0:
                if main:
                    write_state(Path(self.out), self.name, state="done", ended=time.time(), pid=None)
                return self.name
            if not killed_by_signal(rc) or nodes > 1:  # a multi-node step cannot restart one node alone
                break
        error = f"exit status {rc}: {last_line(log_path(Path(self.out), self.name))}"
        if main:
            write_state(Path(self.out), self.name, state="failed", ended=time.time(), pid=None, error=error)
        raise RuntimeError(f"cell {self.name} failed: {error}")

    def checkpoint(self, *args: Any, **kwargs: Any):
        """submitit's preemption/time-limit hook: requeue this same cell (it resumes from its newest checkpoint)."""
        import submitit

        write_state(
            Path(self.out),
            self.name,
            state="queued",
            pid=None,
            note="requeued after preemption or time limit; resumes from its newest checkpoint",
        )
        return submitit.helpers.DelayedSubmission(dataclasses.replace(self))


def _job_environment() -> tuple[int, int, list[str], str]:
    """(node index, node count, hostnames, job id) inside a submitit job; (0, 1, [], "") outside one."""
    try:
        import submitit

        env = submitit.JobEnvironment()
        return env.node, env.num_nodes, list(env.hostnames), str(env.job_id)
    except Exception:  # not inside a submitit job (a direct call): one node, no job id
        return 0, 1, [], ""


def run_logged(
    cmd: Sequence[str],
    log: Path,
    *,
    env: dict[str, str] | None = None,
    header: str = "",
    on_start: Callable[[subprocess.Popen], None] | None = None,
) -> int:
    """Run ``cmd`` with its output appended to ``log``; returns the exit status (negative: killed by a signal)."""
    log.parent.mkdir(parents=True, exist_ok=True)
    with open(log, "ab") as fh:
        fh.write(f"=== {time.strftime('%Y-%m-%dT%H:%M:%S')} {header}: {shlex.join(cmd)}\n".encode())
        fh.flush()
        proc = subprocess.Popen(list(cmd), stdout=fh, stderr=subprocess.STDOUT, env={**os.environ, **(env or {})})
        if on_start is not None:
            on_start(proc)
        return proc.wait()


# ----------------------------------------------------------------------------------------------------------------
# Local executor


def device_sets(devices: Sequence[str], per_cell: int) -> list[str]:
    """Split device ids into disjoint sets of ``per_cell`` (leftovers unused): ["0,1", "2,3"]."""
    if per_cell < 1:
        raise ConfigError("--gpus-per-cell must be >= 1")
    if devices and len(devices) < per_cell:
        raise ConfigError(f"--gpus-per-cell {per_cell} needs at least that many devices; --devices has {len(devices)}")
    return [",".join(devices[i : i + per_cell]) for i in range(0, len(devices) - per_cell + 1, per_cell)]


def visible_devices() -> list[str]:
    """GPU ids this process may use: CUDA_VISIBLE_DEVICES if set, else every CUDA device; [] on CPU."""
    env = os.environ.get("CUDA_VISIBLE_DEVICES")
    if env is not None:
        return [d.strip() for d in env.split(",") if d.strip()]
    try:
        import torch

        return [str(i) for i in range(torch.cuda.device_count())]
    except ImportError:
        return []


@dataclass
class _Slot:
    index: int
    devices: str | None  # CUDA_VISIBLE_DEVICES of the cell in this slot; None on CPU


def run_local(
    jobs: Sequence[CellJob],
    *,
    max_parallel: int,
    devices: Sequence[str] = (),
    gpus_per_cell: int = 1,
    base_port: int = 29500,
    poll_s: float = 0.2,
    echo: Callable[[str], None] = print,
) -> list[CellJob]:
    """Run cells in parallel processes; requeue the ones killed by a signal. Returns the cells that failed."""
    if max_parallel < 1:
        raise ConfigError("--max-parallel must be >= 1")
    sets = device_sets(list(devices), gpus_per_cell) if devices else []
    width = min(max_parallel, len(sets)) if sets else max_parallel
    free = deque(_Slot(i, sets[i] if sets else None) for i in range(width))
    threads = max(1, (os.cpu_count() or 1) // width)
    queue = deque(jobs)
    attempts: dict[str, int] = {}
    running: dict[str, tuple[CellJob, _Slot, subprocess.Popen, deque, Any]] = {}
    failed: list[CellJob] = []
    out_of = len(jobs)
    for job in jobs:
        write_state(Path(job.out), job.name, state="queued", pid=None, error="")

    def start(job: CellJob, slot: _Slot, steps: deque, first: bool) -> None:
        cmd = steps.popleft()
        env = dict(job.env)
        if slot.devices is not None:
            env["CUDA_VISIBLE_DEVICES"] = slot.devices
        elif "OMP_NUM_THREADS" not in os.environ:
            env["OMP_NUM_THREADS"] = str(threads)  # CPU cells share the cores instead of oversubscribing them
        if Path(cmd[0]).name == "accelerate" and cmd[1:2] == ["launch"] and "--main_process_port" not in cmd:
            # parallel accelerate launches on one machine need distinct rendezvous ports
            cmd = cmd[:2] + ["--main_process_port", str(base_port + slot.index)] + cmd[2:]
        log = log_path(Path(job.out), job.name)
        log.parent.mkdir(parents=True, exist_ok=True)
        fh = open(log, "ab")
        fh.write(
            f"=== {time.strftime('%Y-%m-%dT%H:%M:%S')} attempt {attempts[job.name]} "
            f"(devices {slot.devices or 'cpu'}): {shlex.join(cmd)}\n".encode()
        )
        fh.flush()
        proc = subprocess.Popen(cmd, stdout=fh, stderr=subprocess.STDOUT, env={**os.environ, **env})
        state = read_state(Path(job.out), job.name)
        history = state.get("history", [])
        if first:
            history.append({"attempt": attempts[job.name], "started": time.time()})
        write_state(
            Path(job.out),
            job.name,
            state="running",
            attempt=attempts[job.name],
            pid=proc.pid,
            devices=slot.devices,
            history=history,
            error="",
        )
        running[job.name] = (job, slot, proc, steps, fh)

    def end_attempt(job: CellJob, **changes: Any) -> None:
        state = read_state(Path(job.out), job.name)
        history = state.get("history", [])
        if history:
            history[-1]["ended"] = time.time()
        write_state(Path(job.out), job.name, history=history, pid=None, **changes)

    try:
        while queue or running:
            while queue and free:
                job = queue.popleft()
                attempts[job.name] = attempts.get(job.name, 0) + 1
                steps = deque(job.commands())
                if not steps:
                    write_state(Path(job.out), job.name, state="done")
                    continue
                slot = free.popleft()
                echo(
                    f"[{out_of - len(queue) - len(running)}/{out_of}] {job.name} started "
                    f"(attempt {attempts[job.name]}, devices {slot.devices or 'cpu'})"
                )
                start(job, slot, steps, first=True)
            time.sleep(poll_s)
            for name in list(running):
                job, slot, proc, steps, fh = running[name]
                rc = proc.poll()
                if rc is None:
                    continue
                fh.close()
                if rc == 0 and steps:
                    start(
                        job, slot, steps, first=False
                    )  # the cell's next command (an Oracle evaluation) in the same slot
                    continue
                del running[name]
                free.append(slot)
                if rc == 0:
                    end_attempt(job, state="done")
                    echo(f"{name} done")
                elif killed_by_signal(rc) and attempts[name] < job.max_attempts:
                    end_attempt(
                        job,
                        state="queued",
                        note=f"attempt {attempts[name]} ended by a signal ({rc}); "
                        "requeued, resumes from its newest checkpoint",
                    )
                    echo(f"{name} stopped by a signal (exit {rc}); requeued")
                    queue.append(job)
                else:
                    error = f"exit status {rc}: {last_line(log_path(Path(job.out), name))}"
                    end_attempt(job, state="failed", error=error)
                    echo(f"{name} failed: {error}")
                    failed.append(job)
    except BaseException:  # interrupted sweep: stop the cells it started; their checkpoints stay for a rerun
        for job, _slot, proc, _steps, fh in running.values():
            proc.terminate()
            proc.wait()
            fh.close()
            end_attempt(job, state="queued", note="the sweep was stopped; rerun it to resume")
        raise
    return failed


# ----------------------------------------------------------------------------------------------------------------
# Slurm executor (submitit)


@dataclass
class SlurmConfig:
    """A cell's Slurm resources: from ``--slurm-config FILE.yaml`` and the sweep's Slurm flags (flags win)."""

    partition: str = ""  # --partition; empty = the cluster's default
    account: str = ""  # --account to charge
    qos: str = ""  # --qos
    constraint: str = ""  # --constraint, e.g. h100
    time: str = "24:00:00"  # time limit per job: HH:MM:SS, D-HH:MM:SS, or minutes
    nodes: int = 1  # nodes per cell (> 1: multi-node accelerate launch)
    gpus_per_node: int = 8  # GPUs per node (one training process per GPU)
    cpus_per_gpu: int = 8  # CPU cores per GPU (data loading, audio decoding)
    mem_gb: int = 0  # memory per node in GB; 0 = the cluster's default
    array_parallelism: int = 64  # most cells of the array running at once
    max_requeue: int = 5  # requeues after a time limit (preemptions are always requeued)
    signal_delay_s: int = 180  # Slurm signals the job this long before the limit (time to finish a checkpoint)
    accelerate_config: str = "configs/accelerate/8gpu_fsdp.yaml"  # per-node accelerate config (FSDP or ZeRO-3)
    main_process_port: int = 29500  # rendezvous port on the first node
    folder: str = ""  # submitit's folder (job scripts, pickles, Slurm logs); empty = <out>/slurm
    setup: list = field(default_factory=list)  # shell lines run before the job, e.g. ["source .venv/bin/activate"]
    sbatch: dict = field(default_factory=dict)  # any further sbatch flag: {exclusive: true, mail-type: END}

    def __post_init__(self) -> None:
        minutes = time_minutes(self.time)
        checks = [
            (self.nodes >= 1, "nodes", "must be >= 1"),
            (self.gpus_per_node >= 0, "gpus_per_node", "must be >= 0"),
            (self.cpus_per_gpu >= 1, "cpus_per_gpu", "must be >= 1"),
            (self.mem_gb >= 0, "mem_gb", "must be >= 0"),
            (self.array_parallelism >= 1, "array_parallelism", "must be >= 1"),
            (self.max_requeue >= 0, "max_requeue", "must be >= 0"),
            (0 < self.signal_delay_s < minutes * 60, "signal_delay_s", "must be > 0 and below the time limit"),
        ]
        for ok, name, why in checks:
            if not ok:
                raise ConfigError(f"slurm {name} {why}")
        if isinstance(self.setup, str):
            self.setup = [self.setup]
        if not isinstance(self.sbatch, dict):
            raise ConfigError("slurm sbatch must be a mapping of flag: value, e.g. {exclusive: true}")


def time_minutes(text: str | int) -> int:
    """Slurm time to minutes: ``90``, ``"1:30:00"``, ``"2-00:00:00"``."""
    raw = str(text).strip()
    try:
        days, _, rest = raw.rpartition("-") if "-" in raw else ("0", "", raw)
        parts = [int(p) for p in rest.split(":")]
        if len(parts) == 1:
            hours, minutes, seconds = 0, parts[0], 0
        elif len(parts) == 2:
            hours, minutes, seconds = parts[0], parts[1], 0
        elif len(parts) == 3:
            hours, minutes, seconds = parts
        else:
            raise ValueError
        total = int(days or 0) * 1440 + hours * 60 + minutes + (1 if seconds else 0)
    except ValueError:
        raise ConfigError(f"slurm time: cannot read {text!r}; write HH:MM:SS, D-HH:MM:SS or minutes") from None
    if total <= 0:
        raise ConfigError(f"slurm time must be positive, got {text!r}")
    return total


def slurm_parameters(cfg: SlurmConfig, job_name: str) -> dict[str, Any]:
    """submitit SlurmExecutor parameters: one task per node, the node's GPUs and cores, the cluster's flags."""
    params: dict[str, Any] = {
        "job_name": job_name,
        "time": time_minutes(cfg.time),
        "nodes": cfg.nodes,
        "ntasks_per_node": 1,  # one `accelerate launch` per node; it starts the per-GPU processes
        "cpus_per_task": max(1, cfg.gpus_per_node) * cfg.cpus_per_gpu,
        "signal_delay_s": cfg.signal_delay_s,
        "array_parallelism": cfg.array_parallelism,
        "stderr_to_stdout": True,
    }
    if cfg.gpus_per_node:
        params["gpus_per_node"] = cfg.gpus_per_node
    for key in ("partition", "account", "qos", "constraint"):
        if getattr(cfg, key):
            params[key] = getattr(cfg, key)
    if cfg.mem_gb:
        params["mem"] = f"{cfg.mem_gb}GB"
    if cfg.setup:
        params["setup"] = list(cfg.setup)
    if cfg.sbatch:
        params["additional_parameters"] = {str(k).replace("_", "-"): v for k, v in cfg.sbatch.items()}
    return params


def slurm_launcher(cfg: dict[str, Any], *, node: int, nodes: int, master: str) -> list[str]:
    """The command that starts training on this node: ``accelerate launch`` over all nodes' GPUs, or plain python."""
    gpus = int(cfg.get("gpus_per_node", 0) or 0)
    if gpus <= 1 and nodes <= 1:
        return [sys.executable]
    launcher = [sys.executable, "-m", "accelerate.commands.launch"]
    if cfg.get("accelerate_config"):
        launcher += ["--config_file", str(cfg["accelerate_config"])]
    launcher += [
        "--num_machines",
        str(nodes),
        "--num_processes",
        str(nodes * max(gpus, 1)),
        "--machine_rank",
        str(node),
        "--main_process_port",
        str(cfg.get("main_process_port", 29500)),
    ]
    if nodes > 1:
        launcher += ["--main_process_ip", master]
    return launcher


def slurm_executor(cfg: SlurmConfig, folder: Path, job_name: str):
    import submitit

    executor = submitit.SlurmExecutor(folder=str(folder), max_num_timeout=cfg.max_requeue)
    executor.update_parameters(**slurm_parameters(cfg, job_name))
    return executor


def submit_slurm(jobs: Sequence[CellJob], cfg: SlurmConfig, out: Path, job_name: str) -> list[str]:
    """Submit the cells as one job array; records each cell's job id in its state file. Returns the job ids."""
    folder = Path(cfg.folder) if cfg.folder else Path(out) / "slurm"
    executor = slurm_executor(cfg, folder / "%j", job_name)
    slurm = dataclasses.asdict(cfg)
    jobs = [dataclasses.replace(j, slurm=slurm, max_attempts=max(j.max_attempts, 1)) for j in jobs]
    submitted = []
    with executor.batch():
        for job in jobs:
            submitted.append(executor.submit(job))
    ids = []
    for job, handle in zip(jobs, submitted):
        write_state(
            Path(job.out), job.name, state="queued", job_id=str(handle.job_id), pid=None, error="", executor="slurm"
        )
        ids.append(str(handle.job_id))
    return ids
