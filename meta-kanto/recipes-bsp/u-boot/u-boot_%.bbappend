# Kanto distro only: the U-Boot environment lives in two redundant files on
# the FAT boot partition (fw_env.config of kanto-boot-config), and the boot
# script needs setexpr and saveenv. Inert in other distros.
FILESEXTRAPATHS:prepend:kanto := "${THISDIR}/files:"
SRC_URI:append:kanto:qemuarm64 = " file://kanto-env-qemuarm64.cfg"
SRC_URI:append:kanto:raspberrypi4-64 = " file://kanto-env-raspberrypi4-64.cfg"
