"""A throw-away one-node SLURM cluster for the tests (standard library only).

``with SlurmCluster(folder) as cluster:`` writes ``slurm.conf``, a munge key and every spool, state,
log, pid and socket path inside ``folder``, starts ``munged``, ``slurmctld`` and ``slurmd`` in the
foreground as child processes of the test process, and waits until ``sinfo`` shows the node idle.
``cluster.client_env`` (``SLURM_CONF``) is what ``sbatch``/``squeue``/``scancel`` and submitit need to
reach it. On exit it cancels the cluster's jobs, stops the three daemons by their process ids and
kills what is left of its jobs' processes. Nothing here reads or writes ``/etc/slurm``,
``/etc/munge`` or a systemd unit; ports are picked free at start, so clusters of concurrent test
sessions do not meet.

Needs Linux, root (slurmd starts job steps as root and the jobs run as root) and Debian's packages
``slurmctld slurmd slurm-client munge`` (Slurm 22.05 on bookworm); :func:`slurm_available` says why
not in one line. ``python -m tests.support.slurm DIR`` runs one until Ctrl-C or ``kill PID``.

Choices that matter (each was a failure first):

- ``munged --force``: pytest's temporary folders are 0700 and munged refuses a socket below a folder
  that not everyone may traverse.
- Unix socket paths must stay under 108 bytes (munged's socket, slurmd's step sockets): a deep
  folder gets a short ``/tmp/slurm-*`` folder for them, removed at stop.
- ``SelectTypeParameters=CR_Core``, not ``CR_Core_Memory``: with memory consumable and no
  ``DefMemPerCPU``, a job without ``--mem`` gets the whole node and tasks run one at a time.
- ``KillWait=2``: submitit's tasks ignore SIGTERM, so ``scancel`` ends them only after KillWait
  (30 s by default).
- No accounting storage (as on many small clusters): ``sacct`` fails, which is the case the
  launcher must handle without it.
"""

from __future__ import annotations

import ctypes
import os
import secrets
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from pathlib import Path
from typing import Any, Callable

DAEMONS = ("munged", "slurmctld", "slurmd")
CLIENTS = ("sbatch", "squeue", "scancel", "sinfo", "srun", "scontrol")
PACKAGES = "slurmctld slurmd slurm-client munge"
# variables of an enclosing allocation (tests run inside a SLURM job) that must not reach our cluster
FOREIGN_ENV = ("SLURM_", "SBATCH_", "SQUEUE_", "SALLOC_", "SRUN_")


def which(name: str) -> str | None:
    """``name`` on PATH or in the sbin folders, where the daemons live and which a non-login PATH lacks."""
    return shutil.which(name, path=os.environ.get("PATH", "") + os.pathsep + "/usr/sbin:/sbin:/usr/local/sbin")


def slurm_available() -> str | None:
    """None when a test cluster can be started here, else a one-line reason (for ``pytest.skip``)."""
    if not Path("/proc/self/stat").exists():
        return "a test SLURM cluster needs Linux"
    missing = [n for n in DAEMONS + CLIENTS if which(n) is None]
    if missing:
        return (f"SLURM/munge not installed (no {', '.join(missing)}): "
                f"apt-get install -y --no-install-recommends {PACKAGES}")  # fmt: skip
    if os.geteuid() != 0:
        return "a test SLURM cluster needs root (slurmd starts job steps as root)"
    return None


class SlurmClusterError(RuntimeError):
    pass


def _free_ports(n: int) -> list[int]:
    """``n`` distinct TCP ports free right now (held open together so that they differ)."""
    socks = []
    try:
        for _ in range(n):
            s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            s.bind(("", 0))
            socks.append(s)
        return [s.getsockname()[1] for s in socks]
    finally:
        for s in socks:
            s.close()


def _die_with_parent() -> None:
    """preexec_fn: the daemon gets SIGTERM when the test process dies, even by SIGKILL."""
    try:
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG
    except OSError:
        pass


def _tail(path: Path, lines: int = 25) -> str:
    try:
        text = path.read_text(errors="replace").splitlines()
    except OSError:
        return f"  ({path.name}: missing)"
    return "\n".join(f"  {path.name}: {line}" for line in text[-lines:])


class SlurmCluster:
    """A one-node cluster living in ``root`` (a new or empty folder). A context manager."""

    def __init__(self, root: str | os.PathLike, partition: str = "debug", cpus: int | None = None,
                 start_timeout: float = 60.0, cluster_name: str = "splicetest"):  # fmt: skip
        self.root = Path(root).absolute()
        self.partition = partition
        self.cpus = cpus or os.cpu_count() or 1
        self.start_timeout = start_timeout
        self.cluster_name = cluster_name
        self.node = socket.gethostname().split(".")[0]  # slurmctld insists on the short host name
        self.procs: dict[str, subprocess.Popen] = {}
        self.logs = self.root / "log"
        self.conf = self.root / "etc" / "slurm.conf"
        self.sockets = self.root  # or a short folder in /tmp (socket paths < 108 bytes)
        self._short: Path | None = None
        self.startup_s: float | None = None
        self.teardown_s: float | None = None

    @property
    def munge_socket(self) -> Path:
        return self.sockets / "munge" / "munge.socket"

    @property
    def client_env(self) -> dict[str, str]:
        """What to set (e.g. with ``monkeypatch.setenv``) so that SLURM's commands and submitit use this cluster."""
        return {"SLURM_CONF": str(self.conf)}

    @property
    def env(self) -> dict[str, str]:
        """``os.environ`` with :attr:`client_env`, the sbin folders and without an enclosing allocation's variables."""
        env = {k: v for k, v in os.environ.items() if not k.startswith(FOREIGN_ENV)}
        env.update(self.client_env)
        env["PATH"] = env.get("PATH", "") + os.pathsep + "/usr/sbin:/sbin"
        return env

    # -- configuration ---------------------------------------------------------------------------------
    @staticmethod
    def _memory_mb() -> int:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                return int(line.split()[1]) // 1024 - 256  # a little below the total, as `slurmd -C` says
        raise SlurmClusterError("cannot read MemTotal from /proc/meminfo")

    def _write_config(self) -> None:
        if len(str(self.root)) > 60:
            self._short = Path(tempfile.mkdtemp(prefix="slurm-"))
            self.sockets = self._short
        for d in ("etc", "state", "log", "tmp"):
            (self.root / d).mkdir(parents=True, exist_ok=True)
        for d in ("munge", "spool"):
            (self.sockets / d).mkdir(parents=True, exist_ok=True)
        os.chmod(self.sockets / "munge", 0o755)
        key = self.sockets / "munge" / "munge.key"
        key.write_bytes(secrets.token_bytes(1024))
        os.chmod(key, 0o600)
        ctld_port, slurmd_port = _free_ports(2)
        plugstack = self.root / "etc" / "plugstack.conf"
        plugstack.write_text("")  # the system's /etc/slurm/plugstack.conf is not ours
        r = self.root
        self.conf.write_text(f"""\
# a one-node test cluster written by splice-bench's tests/support/slurm.py
ClusterName={self.cluster_name}
SlurmctldHost={self.node}(127.0.0.1)
SlurmctldPort={ctld_port}
SlurmdPort={slurmd_port}
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
CredType=cred/munge
AuthInfo=socket={self.munge_socket}
StateSaveLocation={r}/state
SlurmdSpoolDir={self.sockets}/spool
SlurmctldPidFile={r}/slurmctld.pid
SlurmdPidFile={r}/slurmd.pid
SlurmctldLogFile={r}/log/slurmctld.log
SlurmdLogFile={r}/log/slurmd.log
SlurmctldDebug=info
SlurmdDebug=info
PlugStackConfig={plugstack}
TmpFS={r}/tmp
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
SelectType=select/cons_tres
SelectTypeParameters=CR_Core
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
JobCompType=jobcomp/none
MpiDefault=none
MailProg=/bin/true
ReturnToService=2
SchedulerType=sched/backfill
SchedulerParameters=sched_interval=1
SlurmctldTimeout=30
SlurmdTimeout=30
InactiveLimit=0
KillWait=2
MinJobAge=300
NodeName={self.node} NodeAddr=127.0.0.1 CPUs={self.cpus} RealMemory={self._memory_mb()} State=UNKNOWN
PartitionName={self.partition} Nodes={self.node} Default=YES MaxTime=INFINITE State=UP
""")

    # -- processes ---------------------------------------------------------------------------------------
    def run(self, *argv: str, timeout: float = 30.0, check: bool = True) -> subprocess.CompletedProcess:
        """A SLURM client command against this cluster."""
        return subprocess.run(list(argv), env=self.env, capture_output=True, text=True, timeout=timeout, check=check)

    def _spawn(self, name: str, argv: list[str]) -> None:
        with open(self.logs / f"{name}.stdout", "ab") as out:
            self.procs[name] = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT,
                                                env=self.env, cwd=self.root, preexec_fn=_die_with_parent)  # fmt: skip

    def _fail(self, what: str) -> SlurmClusterError:
        lines = []
        for name, p in self.procs.items():
            rc = p.poll()
            lines.append(f"{name} (pid {p.pid}): {'running' if rc is None else f'exited {rc}'}")
        for f in ("munged.stdout", "slurmctld.log", "slurmctld.stdout", "slurmd.log", "slurmd.stdout"):
            if (self.logs / f).exists():
                lines.append(_tail(self.logs / f))
        return SlurmClusterError(f"test SLURM cluster in {self.root}: {what}\n" + "\n".join(lines))

    def _wait(self, what: str, ready: Callable[[], bool], timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while True:
            for name, p in self.procs.items():
                if p.poll() is not None:
                    raise self._fail(f"{name} exited with status {p.returncode} while waiting for {what}")
            try:
                if ready():
                    return
            except (OSError, subprocess.SubprocessError):
                pass
            if time.monotonic() > deadline:
                raise self._fail(f"{what} not ready after {timeout:.0f} s")
            time.sleep(0.1)

    def node_state(self) -> str:
        return self.run("sinfo", "-h", "-N", "-n", self.node, "-o", "%T", check=False).stdout.strip()

    def start(self) -> "SlurmCluster":
        t0 = time.monotonic()
        self.root.mkdir(parents=True, exist_ok=True)
        self._write_config()
        m = self.sockets / "munge"
        self._spawn("munged", [which("munged"), "--foreground", "--force", f"--socket={self.munge_socket}",
                               f"--key-file={m / 'munge.key'}", f"--log-file={self.logs / 'munged.log'}",
                               f"--pid-file={m / 'munged.pid'}", f"--seed-file={m / 'munged.seed'}"])  # fmt: skip
        self._wait("munged's socket", self.munge_socket.exists, 15)
        conf = str(self.conf)
        # -D foreground, -i ignore state-file errors, -c clean start (no state to recover)
        self._spawn("slurmctld", [which("slurmctld"), "-D", "-i", "-c", "-f", conf])
        self._wait("slurmctld", lambda: "UP" in self.run("scontrol", "ping", check=False).stdout, 30)
        self._spawn("slurmd", [which("slurmd"), "-D", "-f", conf, "-N", self.node])
        self._wait(f"node {self.node} idle", lambda: self.node_state().startswith("idle"), self.start_timeout)
        self.startup_s = time.monotonic() - t0
        return self

    def jobs(self) -> list[str]:
        """Every job/array task the scheduler still runs or holds (``squeue`` ids)."""
        r = self.run("squeue", "-h", "--array", "-o", "%i", check=False)
        return r.stdout.split()

    def cancel_all(self, timeout: float = 20.0) -> None:
        """Cancel every job of the cluster and wait until the scheduler has none left."""
        self.run("scancel", f"--partition={self.partition}", check=False)
        deadline = time.monotonic() + timeout
        while self.jobs() and time.monotonic() < deadline:
            time.sleep(0.2)

    def _own_job_pids(self) -> list[int]:
        """Processes of this cluster's jobs: their environment names our slurm.conf."""
        mark = f"SLURM_CONF={self.conf}".encode()
        pids = []
        for d in Path("/proc").iterdir():
            if d.name.isdigit() and int(d.name) != os.getpid():
                try:
                    if mark in (d / "environ").read_bytes().split(b"\0"):
                        pids.append(int(d.name))
                except OSError:
                    pass
        return pids

    def stop(self) -> None:
        t0 = time.monotonic()
        ctld = self.procs.get("slurmctld")
        if ctld is not None and ctld.poll() is None:
            try:
                self.cancel_all(timeout=10)
            except (OSError, subprocess.SubprocessError):
                pass
        for name in reversed(DAEMONS):  # slurmd, slurmctld, munged
            p = self.procs.get(name)
            if p is None or p.poll() is not None:
                continue
            p.send_signal(signal.SIGTERM)
            try:
                p.wait(timeout=10)
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait(timeout=5)
        for pid in self._own_job_pids():  # slurmstepd daemonises: its job's processes may outlive slurmd
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        self.procs.clear()
        if self._short is not None:
            shutil.rmtree(self._short, ignore_errors=True)
        self.teardown_s = time.monotonic() - t0

    def __enter__(self) -> "SlurmCluster":
        try:
            return self.start()
        except BaseException:
            self.stop()
            raise

    def __exit__(self, *exc: Any) -> None:
        self.stop()


if __name__ == "__main__":  # python -m tests.support.slurm [DIR]: a cluster until Ctrl-C or `kill PID`
    import sys

    if reason := slurm_available():
        sys.exit(reason)
    folder = sys.argv[1] if len(sys.argv) > 1 else tempfile.mkdtemp(prefix="slurm-")
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    with SlurmCluster(folder) as c:
        print(f"up in {c.startup_s:.2f} s; export SLURM_CONF={c.conf}", flush=True)
        try:
            signal.pause()
        except (KeyboardInterrupt, SystemExit):
            pass
    print(f"stopped in {c.teardown_s:.2f} s")
