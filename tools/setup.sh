#!/usr/bin/env bash
# Install everything edgebnn needs on a fresh Debian/Ubuntu x86_64 machine:
# the Arm cross compilers and QEMU (Debian packages) and the Python package
# with its training extra. Safe to run again.
set -euo pipefail
cd "$(dirname "$0")/.."

SUDO=""
if [ "$(id -u)" != 0 ]; then SUDO="sudo"; fi

APT_PACKAGES="gcc make cmake gcc-arm-none-eabi libnewlib-arm-none-eabi picolibc-arm-none-eabi qemu-system-arm gcc-aarch64-linux-gnu libc6-dev-arm64-cross gcc-arm-linux-gnueabihf libc6-dev-armhf-cross qemu-user gcc-riscv64-unknown-elf picolibc-riscv64-unknown-elf qemu-system-misc"
missing=""
for p in $APT_PACKAGES; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing="$missing $p"
done
if [ -n "$missing" ]; then
  echo "setup: installing Debian packages:$missing" >&2
  $SUDO apt-get update -q
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -q $missing
fi

PY=${PYTHON:-python3}
echo "setup: installing edgebnn[train,dev] with $($PY --version)" >&2
$PY -m pip install -q --disable-pip-version-check -e ".[train,dev]"

# larq-zoo for the zoo checks (tests/test_zoo_models.py, tools/zoo_check.py):
# its pinned dependencies do not resolve beside TF 2.16, so it goes in without
# them; zookeeper's tensorflow_datasets import is stood in for by
# edgebnn.zoo_models at run time.
$PY -m pip install -q --disable-pip-version-check --no-deps "larq-zoo==2.4.0" "zookeeper==1.4.0" "typeguard==4.6.1"
