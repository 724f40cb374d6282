# Generated from firmware/scripts/uboot-ab.cmd by `go run ./tools/yoctogen`; do not edit.
# Layout of qemuarm64 (meta-kanto/files/wic/kanto-ab-qemuarm64.wks).
setenv kanto_dev "virtio 0"
setenv kanto_part_A 2
setenv kanto_part_B 3
setenv kanto_root_A /dev/vda2
setenv kanto_root_B /dev/vda3
setenv kanto_kernel /boot/Image
setenv bootargs "console=ttyAMA0,115200"

# Kanto A/B slot selection for U-Boot (scheme: firmware/BOOTENV.md §2).
# Needs CONFIG_CMD_SETEXPR and CONFIG_CMD_SAVEENV. The Yocto layer sets
# kanto_dev, kanto_part_A/B, kanto_root_A/B, kanto_kernel to its layout.
test -n "${kanto_dev}" || setenv kanto_dev "mmc 0"
test -n "${kanto_part_A}" || setenv kanto_part_A 2
test -n "${kanto_part_B}" || setenv kanto_part_B 3
test -n "${kanto_root_A}" || setenv kanto_root_A /dev/mmcblk0p2
test -n "${kanto_root_B}" || setenv kanto_root_B /dev/mmcblk0p3
test -n "${kanto_kernel}" || setenv kanto_kernel /boot/Image

test -n "${BOOT_ORDER}" || setenv BOOT_ORDER "A B"
test -n "${BOOT_A_LEFT}" || setenv BOOT_A_LEFT 3
test -n "${BOOT_B_LEFT}" || setenv BOOT_B_LEFT 0
test -n "${BOOT_TRIAL}" || setenv BOOT_TRIAL 0

setenv kanto_slot
setenv kanto_first
for S in ${BOOT_ORDER}; do
  if test -z "${kanto_first}"; then
    setenv kanto_first ${S}
    if test "${BOOT_TRIAL}" = "1"; then
      # S is on trial: count the attempt, or end the trial when none is left.
      if test "${S}" = "A"; then
        if test ${BOOT_A_LEFT} -gt 0; then
          setexpr BOOT_A_LEFT ${BOOT_A_LEFT} - 1
          setenv kanto_slot A
        fi
      fi
      if test "${S}" = "B"; then
        if test ${BOOT_B_LEFT} -gt 0; then
          setexpr BOOT_B_LEFT ${BOOT_B_LEFT} - 1
          setenv kanto_slot B
        fi
      fi
      if test -z "${kanto_slot}"; then
        setenv BOOT_TRIAL 0
      fi
      saveenv
    fi
  fi
  if test -z "${kanto_slot}"; then
    if test "${S}" = "A"; then
      if test ${BOOT_A_LEFT} -gt 0; then setenv kanto_slot A; fi
    fi
    if test "${S}" = "B"; then
      if test ${BOOT_B_LEFT} -gt 0; then setenv kanto_slot B; fi
    fi
  fi
done
# Nothing bootable: last resort, the first slot of BOOT_ORDER (no write).
test -n "${kanto_slot}" || setenv kanto_slot ${kanto_first}
echo "KANTO-UBOOT slot=${kanto_slot} BOOT_ORDER=${BOOT_ORDER} A=${BOOT_A_LEFT} B=${BOOT_B_LEFT} TRIAL=${BOOT_TRIAL}"

if test "${kanto_slot}" = "B"; then
  setenv kanto_part ${kanto_part_B}
  setenv kanto_root ${kanto_root_B}
else
  setenv kanto_slot A
  setenv kanto_part ${kanto_part_A}
  setenv kanto_root ${kanto_root_A}
fi
setenv bootargs "${bootargs} root=${kanto_root} rootwait ro panic=5 kanto.slot=${kanto_slot}"
load ${kanto_dev}:${kanto_part} ${kernel_addr_r} ${kanto_kernel}
booti ${kernel_addr_r} - ${fdt_addr}
