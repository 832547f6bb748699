#!/usr/bin/env bash
# `make slurm`: a one-node Slurm cluster on this machine, from Debian's packages (munge, slurmctld,
# slurmd, slurm-client), for running exported CWL with `toil-cwl-runner --batchSystem slurm`.
# Safe to run again: what is installed, configured and running is left alone.
#  - root only (packages, daemons); Debian or Ubuntu (apt-get);
#  - /etc/slurm/slurm.conf is written only when missing or written by this script before
#    (its first line says so): a cluster configured by someone else is never touched;
#  - accounting is off (no slurmdbd): `sacct` knows nothing, `scontrol show jobs` shows jobs for
#    5 minutes after they end. Logs: /var/log/slurm/.
set -euo pipefail

say() { printf '\033[1m==> %s\033[0m\n' "$*"; }
die() { printf 'slurm: error: %s\n' "$*" >&2; exit 3; }

CONF=/etc/slurm/slurm.conf
MARK="# Written by gefreg scripts/slurm.sh (make slurm): a one-node cluster on this machine."
HOST=$(hostname -s)
PARTITION=gefreg

installed() { dpkg-query -W -f='${Status}' "$1" 2>/dev/null | grep -q "install ok installed"; }
munge_answers() { munge -n 2>/dev/null | unmunge >/dev/null 2>&1; }
ctld_answers() { timeout 10 scontrol ping 2>/dev/null | grep -q "is UP"; }
node_state() { timeout 10 sinfo -h -n "$HOST" -o '%T' 2>/dev/null | head -n1; }

[ "$(id -u)" = 0 ] || die "a local Slurm cluster needs root (packages, daemons): run make slurm as root"

# 1. Packages.
missing=()
for pkg in munge slurmctld slurmd slurm-client; do installed "$pkg" || missing+=("$pkg"); done
if ((${#missing[@]})); then
  [ -f /etc/debian_version ] && command -v apt-get >/dev/null 2>&1 ||
    die "missing ${missing[*]}; automatic installation needs Debian or Ubuntu (apt-get)"
  say "Installing from Debian: ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
else
  say "Slurm packages present: munge slurmctld slurmd slurm-client"
fi

# 2. munge: a key, and the daemon (as user munge).
if [ ! -s /etc/munge/munge.key ]; then
  say "Creating the munge key"
  install -d -m 0700 -o munge -g munge /etc/munge
  dd if=/dev/urandom bs=1 count=1024 of=/etc/munge/munge.key status=none
  chown munge:munge /etc/munge/munge.key
  chmod 0400 /etc/munge/munge.key
fi
if ! munge_answers; then
  say "Starting munged"
  install -d -m 0755 -o munge -g munge /run/munge
  install -d -m 0700 -o munge -g munge /var/log/munge /var/lib/munge
  runuser -u munge -- /usr/sbin/munged
  for _ in $(seq 50); do munge_answers && break; sleep 0.1; done
  munge_answers || die "munged did not start; see /var/log/munge/munged.log"
fi

# 3. slurm.conf for this host (CPUs and memory as slurmd sees them).
if [ -f "$CONF" ] && [ "$(head -n1 "$CONF")" != "$MARK" ]; then
  say "$CONF was not written by gefreg: using the cluster it describes as it is"
else
  cpus=$(nproc)
  memory=$(slurmd -C 2>/dev/null | sed -n 's/.*RealMemory=\([0-9]*\).*/\1/p' | head -n1)
  memory=${memory:-$(($(awk '/MemTotal/ {print $2}' /proc/meminfo) / 1024))}
  wanted=$(cat <<CONF
$MARK
ClusterName=gefreg
SlurmctldHost=$HOST
SlurmUser=slurm
AuthType=auth/munge
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
SelectType=select/cons_tres
SelectTypeParameters=CR_Core_Memory
SchedulerType=sched/backfill
ReturnToService=2
MinJobAge=300
AccountingStorageType=accounting_storage/none
JobAcctGatherType=jobacct_gather/none
JobCompType=jobcomp/none
MpiDefault=none
StateSaveLocation=/var/lib/slurm/slurmctld
SlurmdSpoolDir=/var/lib/slurm/slurmd
SlurmctldPidFile=/run/slurmctld.pid
SlurmdPidFile=/run/slurmd.pid
SlurmctldLogFile=/var/log/slurm/slurmctld.log
SlurmdLogFile=/var/log/slurm/slurmd.log
NodeName=$HOST CPUs=$cpus RealMemory=$memory State=UNKNOWN
PartitionName=$PARTITION Nodes=$HOST Default=YES MaxTime=INFINITE State=UP
CONF
)
  if [ ! -f "$CONF" ] || [ "$(cat "$CONF")" != "$wanted" ]; then
    say "Writing $CONF ($HOST: $cpus CPUs, $memory MB)"
    printf '%s\n' "$wanted" > "$CONF"
    changed=1
  fi
fi
install -d -m 0755 -o slurm -g slurm /var/lib/slurm/slurmctld /var/log/slurm
install -d -m 0755 /var/lib/slurm/slurmd

# 4. The daemons (a changed configuration is re-read).
if ctld_answers && [ "${changed:-0}" = 1 ]; then
  say "Reconfiguring the running cluster"
  scontrol reconfigure || true
fi
if ! ctld_answers; then
  say "Starting slurmctld"
  pgrep -x slurmctld >/dev/null || /usr/sbin/slurmctld
  for _ in $(seq 100); do ctld_answers && break; sleep 0.2; done
  ctld_answers || die "slurmctld did not start; see /var/log/slurm/slurmctld.log"
fi
if ! pgrep -x slurmd >/dev/null; then
  say "Starting slurmd"
  /usr/sbin/slurmd
fi
state=""
for _ in $(seq 150); do
  state=$(node_state)
  case "$state" in
    idle*|mixed*|allocated*|completing*) break ;;
    down*|drain*|fail*) scontrol update NodeName="$HOST" State=RESUME >/dev/null 2>&1 || true ;;
  esac
  sleep 0.2
done
case "$state" in
  idle*|mixed*|allocated*|completing*) ;;
  *) die "node $HOST is '${state:-unknown}', not idle; see /var/log/slurm/slurmd.log" ;;
esac

say "Slurm answers: node $HOST is $state in partition $PARTITION"
cat <<USAGE
Use it:
  sinfo                                 # the node and its state
  srun hostname                         # a job
  gefreg export cwl NAME@VERSION --scatter -o tool.cwl
  gefreg export job --port PORT DIR... -o jobs.json
  .venv/bin/toil-cwl-runner --batchSystem slurm --jobStore ./jobstore --outdir ./results tool.cwl jobs.json
    (cwl-docker-extract must be on PATH: PATH=\$PWD/.venv/bin:\$PATH)
  scontrol show jobs                    # jobs (accounting is off: no sacct)
USAGE
