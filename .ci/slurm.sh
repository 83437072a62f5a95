#!/usr/bin/env bash
# A real single-node SLURM on this machine, for bench's `slurm` test tier.
#
#   .ci/slurm.sh start    install slurm-wlm + munge if absent (apt-get), write a one-node config sized from
#                         nproc / free, start munged, slurmctld and slurmd, wait until the node is idle
#   .ci/slurm.sh stop     stop the three daemons by the pids they wrote (slurmd, slurmctld, munged)
#   .ci/slurm.sh status   sinfo + the pids
#
# Needs root (Debian/Ubuntu, no systemd needed: daemons are started directly). No accounting daemon: `sacct` does
# not work here, as on many small clusters; bench tracks jobs through result files and `squeue` instead.
# Settings that differ from a production cluster, to keep the tests fast: KillWait=5 (a cancelled or requeued job
# is killed 5 s after SIGTERM instead of 30 s) and cred_expire=10 (a requeued job may start again after ~10 s
# instead of 120 s) with the scheduler looking at pending jobs every 2 s.
set -euo pipefail

STATE=${BENCH_SLURM_STATE:-/run/bench-slurm}  # pid files
CONF=/etc/slurm/slurm.conf
HOST=$(hostname -s)

log() { echo "[slurm.sh] $*" >&2; }

alive() {  # alive PIDFILE -> 0 when the pid in it runs
  [[ -s $1 ]] && kill -0 "$(cat "$1")" 2>/dev/null
}

install_packages() {
  if command -v slurmctld >/dev/null && command -v slurmd >/dev/null && command -v munged >/dev/null; then
    return
  fi
  [[ $(id -u) == 0 ]] || { log "must run as root to install slurm-wlm and munge"; exit 1; }
  log "installing slurm-wlm and munge (apt-get)"
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq slurm-wlm munge >/dev/null
}

write_config() {
  local cpus mem_mb
  cpus=$(nproc)
  # 90% of physical memory in MB: slurmd drains a node that reports less memory than configured
  mem_mb=$(awk '/MemTotal/ {printf "%d", $2 / 1024 * 0.9}' /proc/meminfo)
  mkdir -p /etc/slurm
  cat >"$CONF" <<EOF
# written by bench .ci/slurm.sh for host $HOST ($cpus CPUs, ${mem_mb} MB given to SLURM)
ClusterName=bench-ci
SlurmctldHost=$HOST
SlurmUser=slurm
AuthType=auth/munge
AuthInfo=cred_expire=10
MpiDefault=none
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
SelectType=select/cons_tres
SelectTypeParameters=CR_Core
ReturnToService=2
KillWait=5
SchedulerParameters=sched_interval=2,bf_interval=2
StateSaveLocation=/var/spool/slurmctld
SlurmdSpoolDir=/var/spool/slurmd
SlurmctldPidFile=$STATE/slurmctld.pid
SlurmdPidFile=$STATE/slurmd.pid
SlurmctldLogFile=/var/log/slurm/slurmctld.log
SlurmdLogFile=/var/log/slurm/slurmd.log
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
JobCompType=jobcomp/none
NodeName=$HOST CPUs=$cpus RealMemory=$mem_mb State=UNKNOWN
PartitionName=debug Nodes=$HOST Default=YES MaxTime=INFINITE State=UP OverSubscribe=NO
EOF
  log "wrote $CONF: NodeName=$HOST CPUs=$cpus RealMemory=$mem_mb"
}

start() {
  install_packages
  mkdir -p "$STATE"
  # munge: key made by the package's postinst; make one if it is missing
  install -d -o munge -g munge -m 0755 /run/munge /var/log/munge /var/lib/munge
  install -d -o munge -g munge -m 0700 /etc/munge
  if [[ ! -s /etc/munge/munge.key ]]; then
    dd if=/dev/urandom of=/etc/munge/munge.key bs=1 count=1024 status=none
    chown munge:munge /etc/munge/munge.key && chmod 0400 /etc/munge/munge.key
  fi
  if ! alive "$STATE/munged.pid"; then
    runuser -u munge -- /usr/sbin/munged --force
    for _ in $(seq 50); do [[ -s /run/munge/munged.pid ]] && break; sleep 0.1; done
    cp /run/munge/munged.pid "$STATE/munged.pid"
  fi
  munge -n | unmunge >/dev/null || { log "munge does not work"; exit 1; }

  install -d -o slurm -g slurm /var/spool/slurmctld /var/log/slurm
  install -d /var/spool/slurmd
  write_config
  alive "$STATE/slurmctld.pid" || /usr/sbin/slurmctld
  alive "$STATE/slurmd.pid" || /usr/sbin/slurmd
  local state=""
  for _ in $(seq 120); do
    state=$(sinfo -h -n "$HOST" -o %T 2>/dev/null | head -1 || true)
    case $state in
      idle|mixed|allocated) break ;;
      down*|drain*) scontrol update NodeName="$HOST" State=RESUME 2>/dev/null || true ;;
    esac
    sleep 0.5
  done
  if [[ ! $state =~ ^(idle|mixed|allocated)$ ]]; then
    log "node $HOST did not become idle (state: '${state:-none}'); see /var/log/slurm/*.log"
    exit 1
  fi
  srun --immediate=30 -N1 true || { log "srun true failed"; exit 1; }
  log "SLURM up: $(sinfo -h -o '%P %a %D %T %c CPUs %m MB')"
}

stop() {
  local name f pid
  for name in slurmd slurmctld munged; do
    f=$STATE/$name.pid
    alive "$f" || continue
    pid=$(cat "$f")
    kill "$pid"
    for _ in $(seq 100); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    if kill -0 "$pid" 2>/dev/null; then log "$name ($pid) ignored SIGTERM; sending SIGKILL"; kill -9 "$pid"; fi
    rm -f "$f"
    log "stopped $name ($pid)"
  done
}

status() {
  local name
  for name in munged slurmctld slurmd; do
    if alive "$STATE/$name.pid"; then echo "$name: running (pid $(cat "$STATE/$name.pid"))"; else echo "$name: stopped"; fi
  done
  sinfo 2>/dev/null || true
}

case ${1:-} in
  start) start ;;
  stop) stop ;;
  status) status ;;
  *) echo "usage: $0 start|stop|status" >&2; exit 2 ;;
esac
