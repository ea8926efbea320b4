#!/usr/bin/env bash
# Learning-evidence runs on a lent GPU machine (no network there). Carry `.device/` with the EGL
# loader .debs (.device/gl) and the cp312 wheels this project needs beyond that machine's image
# (.device/wheels: mujoco, gymnasium, hydra-core + joblib launcher, zarr, antlr4 4.9.3).
#   bash bench/gpu_box.sh MINUTES [final]
# Trains (or resumes) the evidence runs under runs/gpu* for MINUTES, then packs their logs, eval
# results and metrics into $OUT; with `final`, also evaluates every split and exports ONNX.
set -euo pipefail
minutes=${1:?minutes}
if ! python3 -c "import sgqn_robot.envs" 2>/dev/null; then
  for f in .device/gl/*.deb; do dpkg -x "$f" /; done
  ldconfig
  python3 -m pip install -q --no-index --find-links .device/wheels mujoco==3.9.0 \
    gymnasium==1.4.0 hydra-core==1.3.8 hydra-joblib-launcher zarr==3.1.5
  python3 -m pip install -q --no-index --no-deps --no-build-isolation .
fi
export MUJOCO_GL=egl
ev="python3 bench/learning_evidence.py"
$ev train --out runs/gpu_fast --tasks reach,peg_in_box --agents sac,svea,sgqn --seeds 1,2 \
  --encoder fast --device cuda --steps 250000 --eval-every 10000 --eval-episodes 10 \
  --snapshot-every 2000 --minutes "$minutes" &
$ev train --out runs/gpu_paper --tasks reach --agents sac,svea,sgqn --seeds 1 \
  --encoder paper --device cuda --steps 250000 --eval-every 10000 --eval-episodes 10 \
  --snapshot-every 2000 --minutes "$minutes" &
wait
if [ "${2:-}" = final ]; then
  $ev evaluate --out runs/gpu_fast --episodes 30 &
  $ev evaluate --out runs/gpu_paper --episodes 30 &
  wait
  for d in runs/gpu_fast runs/gpu_paper; do
    for r in "$d"/*-sgqn-s1; do
      sgqn-export "$r" -o "$OUT/$(basename "$d")-$(basename "$r").onnx" || true
    done
  done
fi
for d in runs/gpu_fast runs/gpu_paper; do
  for log in "$d"/logs/*.log; do echo "== $log"; tail -n 4 "$log"; done
done
tar czf "$OUT/evidence.tgz" --exclude=replay.zarr --exclude=checkpoints runs/gpu_fast runs/gpu_paper
nvidia-smi --query-gpu=utilization.gpu,memory.used --format=csv
