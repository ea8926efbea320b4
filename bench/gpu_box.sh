#!/usr/bin/env bash
# Learning-evidence runs on a lent GPU machine (no network there). Carry `.gl` (the EGL loader
# .debs: libvulkan1 libegl1 libglvnd0 libopengl0 libgl1 libglx0 libgles2) and `.whl` (the cp312
# wheels beyond that machine's image: mujoco 3.9.0, glfw, pyopengl, gymnasium 1.4.0,
# farama-notifications, hydra-core 1.3.8, omegaconf 2.3.0, antlr4-python3-runtime 4.9.3,
# hydra-joblib-launcher, zarr 3.1.5, donfig, numcodecs, google-crc32c); bench/gpu_box_prepare.sh
# fills both here.
#   [GPU_TASKS=reach] [GPU_AGENTS=sac,svea,sgqn] [GPU_SEEDS=1,2] [GPU_PAPER=1] [GPU_THREADS=1] \
#     [GPU_EVAL_S=600] [SGQN_GIT_SHA=<commit>] bash bench/gpu_box.sh MINUTES [final [EPISODES]]
# The box gets the working tree without .git: pass the commit it was copied from as SGQN_GIT_SHA
# (written here, e.g. `git rev-parse HEAD`), so checkpoints and exports name the code that made them.
# Trains (or resumes) the evidence runs under runs/gpu* for MINUTES, then packs their logs, eval
# results and metrics into $OUT; with `final`, also evaluates every split (EPISODES each, default
# 30; stopped after GPU_EVAL_S seconds, so a lease's last minutes still bring the training back)
# and exports the SGQN actors to ONNX.
set -euo pipefail
minutes=${1:?minutes}
episodes=${3:-30}
tasks=${GPU_TASKS:-reach,peg_in_box}
agents=${GPU_AGENTS:-sac,svea,sgqn}
seeds=${GPU_SEEDS:-1,2}
threads=${GPU_THREADS:-1}
if ! (cd /tmp && python3 -c "import sgqn_robot.envs") 2>/dev/null; then
  for f in .gl/*.deb; do dpkg -x "$f" /; done
  ldconfig
  python3 -m pip install -q --no-index --no-deps --no-compile .whl/*.whl
  python3 -m pip install -q --no-index --no-deps --no-build-isolation .
fi
export MUJOCO_GL=egl
(cd /tmp && python3 -c "import torch, mujoco, sgqn_robot.envs; print('torch', torch.__version__, torch.cuda.get_device_name(0), 'mujoco', mujoco.__version__)")
ev="python3 bench/learning_evidence.py"
outs=()
train_set() {  # OUT_DIR ENCODER TASKS SEEDS: one set of runs, in the background
  outs+=("$1")
  $ev train --out "$1" --encoder "$2" --tasks "$3" --seeds "$4" --agents "$agents" \
    --device cuda --threads "$threads" --steps 250000 --eval-every 10000 --eval-episodes 10 \
    --snapshot-every 2000 --minutes "$minutes" &
}
train_set runs/gpu_fast fast "$tasks" "$seeds"
if [ "${GPU_PAPER:-1}" = 1 ]; then train_set runs/gpu_paper paper reach 1; fi
wait
pack() { tar czf "$OUT/evidence.tgz" --exclude=replay.zarr --exclude=checkpoints "${outs[@]}"; }
pack  # what training wrote comes back even if the evaluation below runs out of time
if [ "${2:-}" = final ]; then
  for d in "${outs[@]}"; do
    timeout "${GPU_EVAL_S:-600}" $ev evaluate --out "$d" --episodes "$episodes" &
  done
  wait || true
  for d in "${outs[@]}"; do
    for r in "$d"/*-sgqn-s*; do
      sgqn-export "$r" -o "$OUT/$(basename "$d")-$(basename "$r").onnx" || true
    done
  done
fi
for d in "${outs[@]}"; do
  for log in "$d"/logs/*.log; do echo "== $log"; tail -n 4 "$log"; done
done
pack
nvidia-smi --query-gpu=utilization.gpu,memory.used --format=csv
