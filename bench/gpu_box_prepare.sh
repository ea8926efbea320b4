#!/usr/bin/env bash
# Fill `.gl` and `.whl` for bench/gpu_box.sh, here (where apt and pip reach their indexes); the GPU
# machine has none. Both folders are git-ignored; name them in the device call's `carry`.
#   bash bench/gpu_box_prepare.sh
set -euo pipefail
cd "$(dirname "$0")/.."
mkdir -p .gl .whl /tmp/amd64/partial
apt_opts=(-oAPT::Architecture=amd64 -oAPT::Architectures=amd64 -oDir::State::Lists=/tmp/amd64)
apt-get "${apt_opts[@]}" update -qq
(cd .gl && apt-get "${apt_opts[@]}" download libvulkan1 libegl1 libglvnd0 libopengl0 libgl1 \
  libglx0 libgles2)
platforms=()
for p in manylinux_2_28 manylinux_2_27 manylinux_2_17 manylinux2014 manylinux1; do
  platforms+=(--platform "${p}_x86_64")
done
# the box's image is Python 3.12 with torch, numpy 2, onnx and onnxruntime already there
python3 -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 \
  --implementation cp "${platforms[@]}" -d .whl mujoco==3.9.0 glfw pyopengl gymnasium==1.4.0 \
  farama-notifications hydra-core==1.3.8 omegaconf==2.3.0 hydra-joblib-launcher zarr==3.1.5 \
  donfig numcodecs google-crc32c
# antlr4-python3-runtime 4.9.3 (hydra's parser) is published as a source archive only
python3 -m pip wheel -q --no-deps -w .whl antlr4-python3-runtime==4.9.3
ls .gl .whl
