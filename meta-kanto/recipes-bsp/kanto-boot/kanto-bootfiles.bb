SUMMARY = "Kanto A/B boot partition files: initial GRUB environment, or U-Boot script and environment"
DESCRIPTION = "Deploys, for wic: kanto-grubenv (GRUB machines), or boot.scr, uboot.env and \
uboot-redund.env (U-Boot machines). The initial environments are the fresh-image \
environments of firmware/BOOTENV.md; the boot scripts are generated from firmware/scripts."
LICENSE = "Apache-2.0"
LIC_FILES_CHKSUM = "file://${COMMON_LICENSE_DIR}/Apache-2.0;md5=89aea4e17d99a7cacdbeed46a0096b10"

PACKAGE_ARCH = "${MACHINE_ARCH}"
COMPATIBLE_MACHINE = "^(qemux86-64|qemuarm64|raspberrypi4-64)$"
# meta-raspberrypi boots boot.scr from u-boot-default-script (images/kas/raspberrypi4-64.yml
# makes this recipe its preferred provider).
PROVIDES:append:raspberrypi4-64 = " u-boot-default-script"

# U-Boot environment size (CONFIG_ENV_SIZE of recipes-bsp/u-boot/files/kanto-env-*.cfg).
KANTO_UBOOT_ENV_SIZE ?= "0x4000"

SRC_URI = "file://grubenv.txt file://uboot-env.txt"
SRC_URI:append:qemuarm64 = " file://kanto-boot-qemuarm64.cmd"
SRC_URI:append:raspberrypi4-64 = " file://kanto-boot-raspberrypi4-64.cmd"

inherit deploy nopackages

DEPENDS += "${@'u-boot-tools-native' if d.getVar('KANTO_BOOTLOADER') == 'uboot' else ''}"
do_compile[depends] += "${@'virtual/bootloader:do_deploy' if d.getVar('KANTO_BOOTLOADER') == 'uboot' else ''}"

do_compile() {
    if [ "${KANTO_BOOTLOADER}" = "grub" ]; then
        # A 1024-byte GRUB environment block, '#'-padded (grub-editenv's format).
        { printf '# GRUB Environment Block\n'; cat ${UNPACKDIR}/grubenv.txt; } > ${B}/kanto-grubenv
        size=$(stat -c %s ${B}/kanto-grubenv)
        [ "$size" -le 1024 ] || bbfatal "grubenv too large: $size bytes"
        head -c $(expr 1024 - $size) /dev/zero | tr '\0' '#' >> ${B}/kanto-grubenv
    else
        mkimage -A arm64 -T script -C none -d ${UNPACKDIR}/kanto-boot-${MACHINE}.cmd ${B}/boot.scr
        # U-Boot's built-in default environment plus the A/B variables.
        cat ${DEPLOY_DIR_IMAGE}/u-boot-initial-env-${MACHINE} ${UNPACKDIR}/uboot-env.txt > ${B}/uboot-env.all
        mkenvimage -r -s ${KANTO_UBOOT_ENV_SIZE} -o ${B}/uboot.env ${B}/uboot-env.all
        cp ${B}/uboot.env ${B}/uboot-redund.env
    fi
}

do_deploy() {
    for f in kanto-grubenv boot.scr uboot.env uboot-redund.env; do
        if [ -e ${B}/$f ]; then
            install -m 0644 ${B}/$f ${DEPLOYDIR}/$f
        fi
    done
}
addtask deploy after do_compile before do_build
