#!/usr/bin/env bash
# Multi-GPU / multi-node pretraining with torchrun around `byol fit` (Lightning DDP).
#
#   [NNODES=2] [NPROC_PER_NODE=8] [MASTER_ADDR=node0] [MASTER_PORT=29500] \
#       scripts/launch_torchrun.sh CONFIG [byol fit options ...]
#
# Run the same command on every node, with MASTER_ADDR set to an address of the first node that the
# others can reach (torchrun's c10d rendezvous assigns the node ranks). Extra options go to `byol fit`
# unchanged, e.g. `--trainer.max_epochs 300 --data.init_args.batch_size 256`.
#
#   NNODES          number of nodes (default 1)
#   NPROC_PER_NODE  processes = devices per node (default: the node's GPUs, 1 without any)
#   MASTER_ADDR     rendezvous host (default 127.0.0.1: single node)
#   MASTER_PORT     rendezvous port (default 29500)
#   RDZV_ID         rendezvous id, the same on every node (default: byol-$MASTER_PORT)
#   TORCHRUN        the torchrun executable (default: .venv/bin/torchrun of this repo, else torchrun on PATH)
#
# `--trainer.num_nodes` and `--trainer.devices` are set from NNODES and NPROC_PER_NODE (they must match
# what torchrun starts, so they come after the extra options); `--trainer.strategy ddp` is a default the
# extra options may override. The batch size in the config is per device: at the start of fit, rank 0
# prints the effective batch (per device x devices x nodes x accumulation) and the learning rate.
# On CPU-only machines add `--trainer.accelerator cpu` (DDP then uses gloo).
set -euo pipefail

if [[ $# -lt 1 || "$1" == "-h" || "$1" == "--help" ]]; then
    sed -n '2,22p' "$0" | sed 's/^# \{0,1\}//'
    exit 2
fi
CONFIG=$1
shift
if [[ ! -f "$CONFIG" ]]; then
    echo "launch_torchrun.sh: config file not found: $CONFIG" >&2
    exit 2
fi

repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
if [[ -z "${TORCHRUN:-}" ]]; then
    if [[ -x "$repo/.venv/bin/torchrun" ]]; then TORCHRUN="$repo/.venv/bin/torchrun"; else TORCHRUN=torchrun; fi
fi
if [[ -z "${NPROC_PER_NODE:-}" ]]; then
    NPROC_PER_NODE=$( (nvidia-smi -L 2>/dev/null || true) | grep -c '^GPU' || true)
    [[ "$NPROC_PER_NODE" -ge 1 ]] || NPROC_PER_NODE=1
fi
NNODES=${NNODES:-1}
MASTER_ADDR=${MASTER_ADDR:-127.0.0.1}
MASTER_PORT=${MASTER_PORT:-29500}
RDZV_ID=${RDZV_ID:-byol-$MASTER_PORT}

echo "launch_torchrun.sh: $NNODES node(s) x $NPROC_PER_NODE process(es), rendezvous $MASTER_ADDR:$MASTER_PORT" >&2
exec "$TORCHRUN" \
    --nnodes "$NNODES" \
    --nproc_per_node "$NPROC_PER_NODE" \
    --rdzv_backend c10d \
    --rdzv_endpoint "$MASTER_ADDR:$MASTER_PORT" \
    --rdzv_id "$RDZV_ID" \
    -m byol.cli fit -c "$CONFIG" \
    --trainer.strategy ddp \
    "$@" \
    --trainer.num_nodes "$NNODES" \
    --trainer.devices "$NPROC_PER_NODE"
