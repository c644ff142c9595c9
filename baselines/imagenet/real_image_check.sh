#!/bin/bash
# The real-image pipeline check (issue 14): CIFAR-10's JPEG copy arranged as an ImageNet
# class-folder tree (10 classes under the first 10 ILSVRC-2012 wnids), prepared by the ImageNet
# path as a class subset, and ResNet-50 trained briefly at 224 px with ResNet preprocessing.
# A PIPELINE CHECK (every step of the real path on real JPEG files), NOT an ImageNet result.
# Heavy: runs under /tmp/heavy.lock. Usage: baselines/imagenet/real_image_check.sh WORK_DIR
set -euo pipefail
work=${1:?work dir}
py=${PYTHON:-.venv/bin/python}
mkdir -p "$work"
[ -d "$work/cifar10-jpeg" ] || unzip -q /work/shared/data/cifar10-jpeg.zip -d "$work"
wnids=$($py -c "from uncertainty_baselines.datasets import imagenet_prepare as ip; print(' '.join(ip.wnids()[:10]))")
read -r -a W <<< "$wnids"
classes=(airplane automobile bird cat deer dog frog horse ship truck)
for split in train val; do
  src=$([ $split = train ] && echo train || echo test)
  for i in "${!classes[@]}"; do
    mkdir -p "$work/tree/$split"
    ln -sfn "$work/cifar10-jpeg/$src/${classes[$i]}" "$work/tree/$split/${W[$i]}"
  done
done
$py -m uncertainty_baselines.datasets.prepare imagenet2012 --source "$work/tree" --data_dir "$work/tfds" \
    --classes "$(IFS=,; echo "${W[*]}")" --nocheck_counts
flock /tmp/heavy.lock nice -n 19 $py baselines/imagenet/deterministic.py --data_dir="$work/tfds" \
    --output_dir="$work/run" --train_examples=2048 --batch_size=32 --train_epochs=1 --lr_warmup_epochs=0 \
    --base_learning_rate=0.01 --eval_batch_size=100 --log_interval_s=60
