#!/usr/bin/env bash
# The recipe of the shipped sentiment classifier, checkpoints/sst2.
#
# Trains on SST-2 train (67,349 phrases and sentences), selects the best evaluation by
# accuracy on SST-2 dev (872 sentences), exports it (int8 embedding and recurrent weights, the rest float16: 5.8 MB) to checkpoints/sst2
# and reports accuracy on SST-2 test (1,821 sentences, used for nothing else). Runs from
# the repository alone (the data is under corpora/sst2). Deterministic on a given machine:
# seeded, stopped by epochs, not by time.
#
#   bash benchmarks/sst2_recipe.sh            # about 6 minutes on a 2-core CPU
set -euo pipefail
cd "$(dirname "$0")/.."
run=${RUN_DIR:-$(mktemp -d)/sst2-run}
start=$(date +%s)
python -m textrnn train corpora/sst2/train.tsv --val-file corpora/sst2/dev.tsv --out "$run" --force \
  --hidden 384 --embed 256 --dropout 0.5 --embed-dropout 0.1 --batch-size 256 --lr 4e-3 \
  --epochs 5 \
  --eval-every 100 --seed 1234
end=$(date +%s)
echo "training time: $((end - start)) s (whole process)"
rm -rf checkpoints/sst2
python -m textrnn export "$run" checkpoints/sst2 --half --int8
python -m textrnn classify corpora/sst2/test.tsv -c checkpoints/sst2 > /dev/null
