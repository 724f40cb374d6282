#!/usr/bin/env bash
# Installs what the tests and the demo need on Debian 12, as root. Idempotent:
# packages already present are not fetched again. Progress goes to the terminal.
set -euo pipefail

# Real components the tests run against (see README "Tests").
DEBS=(
  mosquitto mosquitto-clients            # local and cloud brokers
  containerd runc containernetworking-plugins iptables  # container management
  protobuf-compiler                      # regenerating the containers gRPC code (optional)
  docker-registry busybox-static         # OCI registry and test images
  libubootenv-tool grub-common           # fw_printenv/fw_setenv, grub-editenv
  bc time                                # bench/fw-install.sh (ratios, peak RSS)
  u-boot-tools                           # mkenvimage, mkimage (Yocto layer boot files)
  qemu-system-arm u-boot-qemu            # the layer's U-Boot A/B script in real U-Boot (qemu_arm64)
  grub-efi-amd64-bin ovmf qemu-system-x86 qemu-utils  # A/B image boot tests
  linux-image-amd64 mtools dosfstools e2fsprogs gdisk cpio
  openssl ca-certificates git make gcc
  systemd kas python3                    # Yocto layer checks (systemd-analyze, kas schema)
  swtpm tpm2-tools libtss2-tcti-swtpm0   # TPM2 client keys (tpmDevice): software TPM, tools and their swtpm TCTI
)

# Node.js and npm for the Azure emulator: Debian's, unless a Node.js is
# already installed (e.g. NodeSource's, whose nodejs package conflicts with
# Debian's npm).
command -v npm >/dev/null || DEBS+=(nodejs npm)

missing=()
for p in "${DEBS[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if ((${#missing[@]})); then
  echo "deps: installing ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -q
  apt-get install -y -q --no-install-recommends "${missing[@]}"
fi

export PATH="$PATH:$(go env GOPATH)/bin"
command -v staticcheck >/dev/null || { echo "deps: go install staticcheck"; go install honnef.co/go/tools/cmd/staticcheck@2026.1; }
command -v versitygw >/dev/null || { echo "deps: go install versitygw"; go install github.com/versity/versitygw/cmd/versitygw@v1.8.0; }  # S3 server for file upload tests
command -v azurite-blob >/dev/null || { echo "deps: npm install azurite"; npm install -g azurite; }  # Azure Blob emulator for file upload tests
echo "deps: ok"
