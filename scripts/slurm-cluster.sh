#!/usr/bin/env bash
# A throw-away single-node SLURM cluster for tests (Debian 12, slurm-wlm 22.05).
#
#   scripts/slurm-cluster.sh install      apt-get install slurm-wlm + munge (no-op when present)
#   scripts/slurm-cluster.sh start DIR    write configs into DIR, start munged, slurmctld, slurmd,
#                                         record their PIDs in DIR/pids, wait for the node to be idle
#   scripts/slurm-cluster.sh stop DIR     cancel jobs, kill exactly the PIDs recorded in DIR/pids
#   scripts/slurm-cluster.sh env DIR      print `export ...` lines for clients (SLURM_CONF, PATH with DIR/bin wrappers)
#   scripts/slurm-cluster.sh status DIR   sinfo/squeue of the cluster in DIR
#
# Everything lives in DIR: its own munge key and socket (so a system munged, if any, is not
# touched), its own state/spool/log/pid files and free TCP ports (6817/6818 or the next free ones).
# No accounting (no slurmdbd): the Snakemake SLURM plugin must use `--slurm-status-command squeue`
# (MinJobAge=300 keeps finished jobs visible to squeue) and no slurm_account.
#
# Cluster: one node named `hostname -s` with CPUs=8 (SlurmdParameters=config_overrides, whatever
# the real core count), two partitions `cpu` (default) and `gpu`, and two fake GPUs (gres gpu:2
# backed by DIR/dev/nvidia0..1, character devices 1,3 = /dev/null) so that jobs asking for
# --gpus=1 get CUDA_VISIBLE_DEVICES=0 or 1 and a third one waits. The node has the feature
# `vanishing`, so that jobs may ask for it with -C (constraint).
#
# Tunables (environment): SLURM_CLUSTER_CPUS (8), SLURM_CLUSTER_GPUS (2),
# SLURM_CLUSTER_MEM_MB (80% of RAM, at most 64000), SLURM_CLUSTER_TIMEOUT (60 s to reach idle).
set -euo pipefail

die() { echo "slurm-cluster: error: $*" >&2; exit 1; }
log() { echo "slurm-cluster: $*" >&2; }

need_dir() {
    [[ $# -ge 1 && -n "$1" ]] || die "missing DIR argument"
    mkdir -p "$1"
    DIR=$(cd "$1" && pwd -P)
}

# ----------------------------------------------------------------------------- install
cmd_install() {
    local bin missing=0
    for bin in munged slurmctld slurmd sinfo sbatch squeue scontrol; do
        command -v "$bin" >/dev/null 2>&1 || missing=1
    done
    if [[ $missing -eq 0 ]]; then
        log "already installed (slurm-wlm $(dpkg-query -W -f='${Version}' slurmctld 2>/dev/null))"
        return 0
    fi
    [[ $(id -u) -eq 0 ]] || die "install needs root (apt-get)"
    export DEBIAN_FRONTEND=noninteractive
    # Keep package scripts from starting system services (no systemd here anyway): a
    # policy-rc.d that exits 101 is the Debian way; only add one if there is none.
    local added_policy=0
    if [[ ! -e /usr/sbin/policy-rc.d ]]; then
        printf '#!/bin/sh\nexit 101\n' >/usr/sbin/policy-rc.d
        chmod 755 /usr/sbin/policy-rc.d
        added_policy=1
    fi
    local rc=0
    if ! apt-cache show slurm-wlm >/dev/null 2>&1; then
        apt-get update -qq || rc=$?
    fi
    if ! apt-get install -y -qq --no-install-recommends slurm-wlm munge >/dev/null; then
        # a stale package list can name versions the mirror no longer has: refresh, try again
        rc=0
        apt-get update -qq || rc=$?
        apt-get install -y -qq --no-install-recommends slurm-wlm munge >/dev/null || rc=$?
    fi
    [[ $added_policy -eq 1 ]] && rm -f /usr/sbin/policy-rc.d
    [[ $rc -eq 0 ]] || die "apt-get failed (rc=$rc)"
    log "installed slurm-wlm $(dpkg-query -W -f='${Version}' slurmctld 2>/dev/null)"
}

# ----------------------------------------------------------------------------- helpers
port_in_use() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

free_port() {
    local p=$1 taken=" ${2:-} "
    while port_in_use "$p" || [[ $taken == *" $p "* ]]; do
        p=$((p + 1))
        [[ $p -lt 65000 ]] || die "no free TCP port found"
    done
    echo "$p"
}

pid_alive() { [[ -n "$1" ]] && kill -0 "$1" 2>/dev/null; }

recorded_pids() {
    # prints "name pid" lines from DIR/pids
    [[ -f "$DIR/pids" ]] && cat "$DIR/pids" || true
}

# Start "$@" in its own session, output to a log file, and record its PID under NAME.
# setsid execs in place (we are not a process-group leader), so $! is the daemon itself.
spawn() {
    local name=$1; shift
    setsid "$@" </dev/null >>"$DIR/log/$name.out" 2>&1 &
    local pid=$!
    echo "$name $pid" >>"$DIR/pids"
    echo "$pid"
}

# Client wrappers in DIR/bin that pin SLURM_CONF to this cluster. Needed because the Snakemake
# jobstep plugin (0.6) removes every SLURM_* variable except the job id before its nested
# `srun` inside the job, and srun then looks for /etc/slurm/slurm.conf (absent here). With
# DIR/bin first on PATH (see `env`; sbatch --export=ALL carries PATH into jobs) the nested srun
# still finds this cluster, without touching /etc.
write_client_wrappers() {
    mkdir -p "$DIR/bin"
    local c d real
    for c in srun sbatch salloc squeue scancel sinfo scontrol sacct sstat sprio sshare; do
        real=""
        local IFS=:
        for d in $PATH; do
            # skip other clusters' wrapper dirs
            [[ -n "$d" && -x "$d/$c" && ! -f "$d/../slurm.conf" ]] && { real="$d/$c"; break; }
        done
        unset IFS
        [[ -n "$real" ]] || continue
        printf '#!/bin/bash\n# generated by slurm-cluster.sh: pin this command to the cluster in %s\nSLURM_CONF=%q; export SLURM_CONF\nexec %q "$@"\n' \
            "$DIR" "$DIR/slurm.conf" "$real" >"$DIR/bin/$c"
        chmod 755 "$DIR/bin/$c"
    done
}

tail_logs() {
    local f
    for f in "$DIR"/log/*; do
        [[ -s "$f" ]] || continue
        echo "---- $f (last 15 lines)" >&2
        tail -n 15 "$f" >&2
    done
}

# ----------------------------------------------------------------------------- start
cmd_start() {
    need_dir "${1:-}"
    for bin in munged slurmctld slurmd sinfo; do
        command -v "$bin" >/dev/null 2>&1 || die "$bin not found; run '$0 install' first"
    done
    # A previous cluster in this DIR that is still running: stop it (only its recorded PIDs).
    if [[ -f "$DIR/pids" ]]; then
        local name pid alive=0
        while read -r name pid; do pid_alive "$pid" && alive=1; done < <(recorded_pids)
        if [[ $alive -eq 1 ]]; then
            log "cluster in $DIR still running, stopping it first"
            cmd_stop "$DIR"
        fi
        rm -f "$DIR/pids"
    fi
    # Fresh state every time (stale job state, pid files and sockets break restarts).
    rm -rf "$DIR/state" "$DIR/spool" "$DIR/log" "$DIR/run" "$DIR/munge" "$DIR/dev" "$DIR/bin"
    mkdir -p "$DIR/state" "$DIR/spool" "$DIR/log" "$DIR/run" "$DIR/munge" "$DIR/dev"
    chmod 700 "$DIR/munge"

    local host cpus gpus mem_mb total_mb cport dport sock
    host=$(hostname -s)
    cpus=${SLURM_CLUSTER_CPUS:-8}
    gpus=${SLURM_CLUSTER_GPUS:-2}
    total_mb=$(awk '/^MemTotal:/ {print int($2 / 1024)}' /proc/meminfo)
    mem_mb=${SLURM_CLUSTER_MEM_MB:-$((total_mb * 8 / 10))}
    [[ $mem_mb -gt 64000 && -z "${SLURM_CLUSTER_MEM_MB:-}" ]] && mem_mb=64000
    cport=$(free_port 6817)
    dport=$(free_port $((cport + 1)) "$cport")
    sock="$DIR/munge/munge.socket.2"
    [[ ${#sock} -lt 100 ]] || die "DIR path too long for a unix socket: $sock"

    # Fake GPU device files (character devices 1,3 like /dev/null); slurmd drops GRES without File=.
    local i
    for ((i = 0; i < gpus; i++)); do mknod "$DIR/dev/nvidia$i" c 1 3; done

    cat >"$DIR/slurm.conf" <<EOF
# Generated by scripts/slurm-cluster.sh for a single-node test cluster.
ClusterName=vanishing
SlurmctldHost=${host}(127.0.0.1)
SlurmctldPort=${cport}
SlurmdPort=${dport}
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
CredType=cred/munge
AuthInfo=socket=${sock}
StateSaveLocation=${DIR}/state
SlurmdSpoolDir=${DIR}/spool
SlurmctldPidFile=${DIR}/run/slurmctld.pid
SlurmdPidFile=${DIR}/run/slurmd.pid
SlurmctldLogFile=${DIR}/log/slurmctld.log
SlurmdLogFile=${DIR}/log/slurmd.log
SlurmctldDebug=info
SlurmdDebug=info
PlugStackConfig=${DIR}/plugstack.conf
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
JobCompType=jobcomp/none
MpiDefault=none
SwitchType=switch/none
SelectType=select/cons_tres
SelectTypeParameters=CR_Core_Memory
DefMemPerCPU=500
SchedulerType=sched/backfill
SchedulerParameters=batch_sched_delay=0,sched_min_interval=0,bf_interval=1
# squeue must still list finished jobs when Snakemake polls (plugin: MinJobAge >= 3x poll interval)
MinJobAge=300
ReturnToService=2
SlurmdParameters=config_overrides
MailProg=/bin/true
KillWait=5
InactiveLimit=0
Waittime=0
SlurmctldTimeout=60
SlurmdTimeout=300
GresTypes=gpu
NodeName=${host} NodeAddr=127.0.0.1 CPUs=${cpus} RealMemory=${mem_mb} Gres=gpu:${gpus} Features=vanishing State=UNKNOWN
PartitionName=cpu Nodes=${host} Default=YES MaxTime=INFINITE State=UP
PartitionName=gpu Nodes=${host} Default=NO MaxTime=INFINITE State=UP
EOF
    if [[ $gpus -gt 0 ]]; then
        echo "Name=gpu File=${DIR}/dev/nvidia[0-$((gpus - 1))]" >"$DIR/gres.conf"
    else
        sed -i -e 's/ Gres=gpu:0//' "$DIR/slurm.conf"
        : >"$DIR/gres.conf"
    fi
    cat >"$DIR/cgroup.conf" <<EOF
# Not used (proctrack/linuxproc, task/none), present so nothing falls back to /etc/slurm.
CgroupAutomount=no
ConstrainCores=no
ConstrainRAMSpace=no
ConstrainDevices=no
EOF
    : >"$DIR/plugstack.conf"
    export SLURM_CONF="$DIR/slurm.conf"
    write_client_wrappers

    # munge with its own key and socket.
    dd if=/dev/urandom of="$DIR/munge/munge.key" bs=1024 count=1 status=none
    chmod 400 "$DIR/munge/munge.key"
    spawn munged munged --foreground --force \
        --socket="$sock" --key-file="$DIR/munge/munge.key" \
        --pid-file="$DIR/run/munged.pid" --seed-file="$DIR/munge/munge.seed" \
        --log-file="$DIR/log/munged.log" >/dev/null
    local t0=$SECONDS
    until munge -n -S "$sock" 2>/dev/null | unmunge -S "$sock" >/dev/null 2>&1; do
        if (( SECONDS - t0 > 15 )); then tail_logs; cmd_stop "$DIR" || true; die "munged did not come up"; fi
        sleep 0.2
    done

    spawn slurmctld slurmctld -D -c -f "$SLURM_CONF" >/dev/null
    spawn slurmd slurmd -D -f "$SLURM_CONF" -N "$host" >/dev/null

    local timeout=${SLURM_CLUSTER_TIMEOUT:-60} state="" name pid
    t0=$SECONDS
    while :; do
        state=$(sinfo -h -N -n "$host" -o '%t' 2>/dev/null | head -n 1 || true)
        [[ $state == idle ]] && break
        while read -r name pid; do
            if ! pid_alive "$pid"; then
                tail_logs; cmd_stop "$DIR" || true
                die "$name (pid $pid) exited during start-up; logs in $DIR/log"
            fi
        done < <(recorded_pids)
        if (( SECONDS - t0 > timeout )); then
            tail_logs; cmd_stop "$DIR" || true
            die "node $host not idle after ${timeout}s (state: '${state:-none}'); logs in $DIR/log"
        fi
        sleep 0.3
    done
    log "cluster up in $((SECONDS - t0))s+: node $host idle, ports $cport/$dport, SLURM_CONF=$SLURM_CONF"
}

# ----------------------------------------------------------------------------- stop
cmd_stop() {
    need_dir "${1:-}"
    [[ -f "$DIR/pids" ]] || { log "nothing recorded in $DIR/pids"; return 0; }
    local name pid pids=() ctld_alive=0
    while read -r name pid; do
        pid_alive "$pid" || continue
        pids+=("$pid")
        [[ $name == slurmctld ]] && ctld_alive=1
    done < <(recorded_pids)
    # Cancel this cluster's jobs first so that no slurmstepd / job processes outlive it.
    if [[ $ctld_alive -eq 1 && -f "$DIR/slurm.conf" ]]; then
        if [[ -n $(SLURM_CONF="$DIR/slurm.conf" timeout 10 squeue -h -o %i 2>/dev/null) ]]; then
            SLURM_CONF="$DIR/slurm.conf" timeout 10 scancel --full --quiet --user="$(id -un)" 2>/dev/null || true
            local t0=$SECONDS
            while [[ -n $(SLURM_CONF="$DIR/slurm.conf" timeout 10 squeue -h -t R,CG -o %i 2>/dev/null) ]] \
                  && (( SECONDS - t0 < 15 )); do sleep 0.5; done
        fi
    fi
    # Stop in reverse start order: slurmd, slurmctld, munged.
    local i
    for ((i = ${#pids[@]} - 1; i >= 0; i--)); do kill -TERM "${pids[i]}" 2>/dev/null || true; done
    local t0=$SECONDS left
    while :; do
        left=()
        for pid in "${pids[@]}"; do pid_alive "$pid" && left+=("$pid"); done
        [[ ${#left[@]} -eq 0 ]] && break
        if (( SECONDS - t0 > 15 )); then
            log "killing ${left[*]} with SIGKILL"
            kill -KILL "${left[@]}" 2>/dev/null || true
            sleep 0.5
            break
        fi
        sleep 0.2
    done
    mv -f "$DIR/pids" "$DIR/pids.stopped"
    log "stopped (${#pids[@]} processes)"
}

# ----------------------------------------------------------------------------- env / status
cmd_env() {
    need_dir "${1:-}"
    [[ -f "$DIR/slurm.conf" ]] || die "no cluster config in $DIR (run start first)"
    printf 'export SLURM_CONF=%q\n' "$DIR/slurm.conf"
    printf 'export VANISHING_SLURM_CLUSTER_DIR=%q\n' "$DIR"
    printf 'export PATH=%q\n' "$DIR/bin:$PATH"
}

cmd_status() {
    need_dir "${1:-}"
    export SLURM_CONF="$DIR/slurm.conf"
    recorded_pids
    sinfo -N -o '%N %P %t %c %m %G'
    squeue
}

case "${1:-}" in
    install) shift; cmd_install "$@" ;;
    start) shift; cmd_start "$@" ;;
    stop) shift; cmd_stop "$@" ;;
    env) shift; cmd_env "$@" ;;
    status) shift; cmd_status "$@" ;;
    *) echo "usage: $0 {install|start DIR|stop DIR|env DIR|status DIR}" >&2; exit 2 ;;
esac
