#!/usr/bin/env bash
# Train CKNet on IU X-Ray on a GPU, the paper's way: the knowledge-graph stage first,
# then the report model, then reports and scores for the test split.
#
#   DATA=data/iu_xray RUNS=runs bash examples/train_iu_xray.sh
#
# DATA is an R2Gen-format folder: annotation.json, images/, and mesh_tags.csv (the
# human MeSH indexing; without it use --labels keyword). ImageNet weights for
# DenseNet-121 are read from the torch hub cache (downloaded when online).
set -euo pipefail
DATA=${DATA:-data/iu_xray}
RUNS=${RUNS:-runs}

# 1. The knowledge-graph stage: DenseNet-121 + GCN over the openi40 graph (Section III.A).
cknet pretrain-graph --data-dir "$DATA" --labels "mesh:$DATA/mesh_tags.csv" \
    --backbone densenet121 --backbone-weights imagenet --epochs 10 --batch-size 16 --lr 1e-4 \
    --output "$RUNS/graph"

# 2. The report model with the paper's recipe (Section IV.C), bf16 on the GPU.
cknet train --config iu_xray --data-dir "$DATA" --graph-model "$RUNS/graph" --output "$RUNS/iu" \
    --backbone-weights imagenet --mixed-precision bf16 --num-workers 4

# 3. An interrupted run continues where it stopped:
#    cknet train --resume "$RUNS/iu"

# 4. Reports for the test split with the kept model, and every metric.
cknet generate --model "$RUNS/iu/best" --annotation "$DATA/annotation.json" --split test \
    --output "$RUNS/iu/test_predictions_beam3.json" --overwrite
cknet evaluate --predictions "$RUNS/iu/test_predictions_beam3.json" \
    --output "$RUNS/iu/test_scores.json" --overwrite
