#!/usr/bin/env bash
# A real single-node SLURM cluster on this machine, for tests of the SLURM profile (tests/test_slurm.py).
#   bash scripts/slurm_local.sh start STATE_DIR   -> munged, slurmctld and slurmd running; PIDs in STATE_DIR/pids
#   bash scripts/slurm_local.sh stop STATE_DIR    -> every daemon it started stopped by PID, its files removed
# Needs root and the Debian packages slurmctld slurmd slurm-client munge (Slurm 22.05 on Debian 12).
# The node declares one GPU as a count-only GRES (no device file), so jobs that ask for a GPU are scheduled
# and run on the CPU; it has two partitions, `cpu` and `gpu`, named as in profiles/slurm/config.yaml.
# Everything listens on loopback only. The config has to be /etc/slurm/slurm.conf: the executor plugin's job
# step drops every SLURM_* variable, SLURM_CONF included. The script never overwrites a slurm.conf it did not
# write (it marks its own), and `stop` restores nothing it did not change.
set -euo pipefail

MARK="# written by avsep scripts/slurm_local.sh"
CONF=/etc/slurm/slurm.conf
GRES=/etc/slurm/gres.conf
MUNGE_SOCKET=/run/munge/munge.socket.2

die() { echo "slurm_local: $*" >&2; exit 1; }

usage() { echo "usage: bash scripts/slurm_local.sh start|stop STATE_DIR" >&2; exit 2; }

ours() { [ ! -e "$1" ] || head -n 1 "$1" | grep -qxF "$MARK"; }

alive() { [ -n "$1" ] && kill -0 "$1" 2>/dev/null; }

read_pid() { [ -s "$1" ] && tr -dc '0-9' <"$1" || true; }

start() {
  local state=$1
  [ "$(id -u)" -eq 0 ] || die "must run as root (slurmd runs jobs as their submitting user)"
  for bin in munged munge slurmctld slurmd sbatch squeue sinfo; do
    command -v "$bin" >/dev/null || die "'$bin' not found: apt-get install slurmctld slurmd slurm-client munge"
  done
  ours "$CONF" || die "$CONF exists and was not written by this script; refusing to replace a real cluster's config"
  ours "$GRES" || die "$GRES exists and was not written by this script"
  if [ -S "$MUNGE_SOCKET" ] && munge -n >/dev/null 2>&1; then
    die "a munged already answers on $MUNGE_SOCKET; stop it first"
  fi
  mkdir -p "$state"
  state=$(cd "$state" && pwd)            # absolute: the daemons chdir
  chmod 700 "$state"
  mkdir -p "$state/munge" "$state/ctld" "$state/spool"
  chmod 700 "$state/munge"
  : >"$state/pids"
  # A failed start stops whatever it had started (the error message carries the daemons' fatal lines).
  trap 'echo "slurm_local: start failed; stopping what it started" >&2; stop "$state"' EXIT

  # munged with its own key, on the default socket (sbatch, srun and the daemons ignore AuthInfo=socket=).
  dd if=/dev/urandom of="$state/munge/munge.key" bs=1024 count=1 status=none
  chmod 400 "$state/munge/munge.key"
  if [ ! -d /run/munge ]; then
    mkdir -p /run/munge
    touch "$state/created-run-munge"      # so that stop removes it again
  fi
  chmod 755 /run/munge                    # clients must be able to traverse to the socket
  munged --key-file="$state/munge/munge.key" --socket="$MUNGE_SOCKET" \
    --pid-file="$state/munge/munged.pid" --log-file="$state/munge/munged.log" \
    --seed-file="$state/munge/munged.seed" </dev/null >>"$state/daemons.out" 2>&1
  local pid=
  for _ in $(seq 50); do pid=$(read_pid "$state/munge/munged.pid"); alive "$pid" && break; sleep 0.1; done
  alive "$pid" || die "munged did not start: $(tail -n 5 "$state/munge/munged.log" 2>/dev/null)"
  echo "munged $pid" >>"$state/pids"
  munge -n | unmunge >/dev/null || die "munge round trip failed"

  local host node nodename cpus mem name
  host=$(hostname -s)
  node=$(slurmd -C | head -n 1)           # NodeName=... CPUs=... RealMemory=... (this machine's hardware)
  [[ $node == NodeName=* ]] || die "unexpected 'slurmd -C' output: $node"
  nodename=$(sed -n 's/^NodeName=\([^ ]*\).*/\1/p' <<<"$node")
  cpus=$(sed -n 's/.* CPUs=\([0-9]*\).*/\1/p' <<<"$node")
  mem=$(sed -n 's/.* RealMemory=\([0-9]*\).*/\1/p' <<<"$node")
  mkdir -p /etc/slurm
  cat >"$CONF" <<EOF
$MARK
# state, logs and spool in $state
ClusterName=avsep-local
SlurmctldHost=$host(127.0.0.1)
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
CredType=cred/munge
MpiDefault=none
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
SwitchType=switch/none
SelectType=select/cons_tres
SelectTypeParameters=CR_Core_Memory
DefMemPerCPU=$((mem / cpus / 2))
GresTypes=gpu
AccountingStorageType=accounting_storage/none
JobAcctGatherType=jobacct_gather/none
JobCompType=jobcomp/none
ReturnToService=2
MinJobAge=300
KillWait=5
InactiveLimit=0
StateSaveLocation=$state/ctld
SlurmdSpoolDir=$state/spool
SlurmctldPidFile=$state/slurmctld.pid
SlurmdPidFile=$state/slurmd.pid
SlurmctldLogFile=$state/slurmctld.log
SlurmdLogFile=$state/slurmd.log
$node NodeAddr=127.0.0.1 Gres=gpu:1 State=UNKNOWN
PartitionName=cpu Nodes=ALL Default=YES MaxTime=INFINITE State=UP
PartitionName=gpu Nodes=ALL MaxTime=INFINITE State=UP
EOF
  # Slurm drops a GPU without a device file: a null device (1,3) stands in for /dev/nvidia0.
  mknod -m 666 "$state/nvidia0" c 1 3 2>/dev/null || : >"$state/nvidia0"
  cat >"$GRES" <<EOF
$MARK
NodeName=$nodename Name=gpu File=$state/nvidia0
EOF

  slurmctld -f "$CONF" </dev/null >>"$state/daemons.out" 2>&1
  for _ in $(seq 50); do pid=$(read_pid "$state/slurmctld.pid"); alive "$pid" && break; sleep 0.2; done
  alive "$pid" || die "slurmctld did not start: $(tail -n 5 "$state/slurmctld.log" 2>/dev/null)"
  echo "slurmctld $pid" >>"$state/pids"
  slurmd -f "$CONF" </dev/null >>"$state/daemons.out" 2>&1
  for _ in $(seq 50); do pid=$(read_pid "$state/slurmd.pid"); alive "$pid" && break; sleep 0.2; done
  alive "$pid" || die "slurmd did not start: $(tail -n 5 "$state/slurmd.log" 2>/dev/null)"
  echo "slurmd $pid" >>"$state/pids"

  for _ in $(seq 150); do
    while read -r name pid; do
      alive "$pid" || die "$name ($pid) exited: $(grep -h fatal "$state"/*.log "$state"/munge/*.log 2>/dev/null)"
    done <"$state/pids"
    if timeout 5 sinfo -h -N -o '%T' 2>/dev/null | grep -qx idle; then
      trap - EXIT
      echo "slurm_local: node $nodename idle (state in $state)"
      return 0
    fi
    sleep 0.2
  done
  timeout 5 sinfo -N -l >&2 || true
  die "the node did not become idle in 30 s (logs in $state)"
}

stop() {
  local state=$1
  [ -d "$state" ] || die "no state dir $state"
  state=$(cd "$state" && pwd)
  # Jobs first, so no job step outlives the daemons.
  if [ -s "$state/pids" ] && command -v scancel >/dev/null; then
    timeout 10 scancel --full --quiet --user="$(id -un)" 2>/dev/null || true
  fi
  if [ -f "$state/pids" ]; then
    # Reverse start order: slurmd, slurmctld, munged.
    tac "$state/pids" | while read -r name pid; do
      alive "$pid" || continue
      kill -TERM "$pid" 2>/dev/null || true
      for _ in $(seq 100); do alive "$pid" || break; sleep 0.1; done
      if alive "$pid"; then
        echo "slurm_local: $name ($pid) ignored SIGTERM; killing" >&2
        kill -KILL "$pid" 2>/dev/null || true
      fi
    done
  fi
  if [ -f "$state/created-run-munge" ]; then rmdir /run/munge 2>/dev/null || true; fi
  if ours "$CONF"; then rm -f "$CONF"; fi
  if ours "$GRES"; then rm -f "$GRES"; fi
  rm -rf "$state"
}

[ $# -eq 2 ] || usage
case $1 in
  start) start "$2" ;;
  stop) stop "$2" ;;
  *) usage ;;
esac
