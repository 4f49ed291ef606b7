#!/bin/bash
# results table: full Fashion-MNIST, tune + best --retrain, timed
cd .
start=$(date +%s)
.venv/bin/digitsearch tune --space vgg --dataset ../shared/data/fashion-mnist --trials 10 --max-epochs 9 --grace-epochs 1 --reduction-factor 3 --set augment=none --results results --name fashion-vgg
echo "TUNE_SECONDS $(( $(date +%s) - start ))"
.venv/bin/digitsearch best --results results --name fashion-vgg --retrain --epochs 20
echo "TOTAL_SECONDS $(( $(date +%s) - start ))"
