SUMMARY = "Kanto A/B firmware image: the Kanto services under systemd, Mosquitto, containerd and runc"
LICENSE = "Apache-2.0"
LIC_FILES_CHKSUM = "file://${COMMON_LICENSE_DIR}/Apache-2.0;md5=89aea4e17d99a7cacdbeed46a0096b10"

inherit core-image

IMAGE_FEATURES += "ssh-server-dropbear"
IMAGE_INSTALL = "\
    packagegroup-core-boot \
    packagegroup-kanto \
    kanto-boot-config \
    kernel-image \
    ${CORE_IMAGE_EXTRA_INSTALL} \
"

# One root filesystem, written to slot A by wic and to slot B by updates
# (kanto-bundle carries the ext4 image).
IMAGE_FSTYPES = "ext4 wic wic.bmap"
WKS_FILE = "kanto-ab-${MACHINE}.wks"
do_image_wic[depends] += "kanto-bootfiles:do_deploy"
# bootimg_efi copies grub-efi-bootx64.efi from the deploy directory.
do_image_wic[depends] += "${@'${EFI_PROVIDER}:do_deploy' if d.getVar('KANTO_BOOTLOADER') == 'grub' else ''}"
# Slot size in the wic layouts (--fixed-size); the rootfs must fit.
IMAGE_ROOTFS_MAXSIZE = "1048576"

# Boot partition contents: GRUB's environment next to grub.cfg on the ESP,
# U-Boot's script and environment copies on the FAT boot partition.
IMAGE_EFI_BOOT_FILES:append:qemux86-64 = " kanto-grubenv;EFI/BOOT/grubenv"
IMAGE_BOOT_FILES:append:qemuarm64 = " boot.scr uboot.env uboot-redund.env"
IMAGE_BOOT_FILES:append:raspberrypi4-64 = " uboot.env uboot-redund.env"

# Mounts every slot needs. They are written into the image (not by wic) so
# that slot B, filled from a bundle, gets them too. /var/lib/kanto (services'
# state, slot status) lives on the data partition and survives updates.
KANTO_FSTAB ?= ""
KANTO_FSTAB:qemux86-64 = "PARTLABEL=esp /boot/efi vfat defaults,noatime,umask=0077 0 2;PARTLABEL=data /var/lib/kanto ext4 defaults,noatime,x-systemd.growfs 0 2"
KANTO_FSTAB:qemuarm64 = "/dev/vda1 /boot/firmware vfat defaults,noatime,umask=0077 0 2;/dev/vda4 /var/lib/kanto ext4 defaults,noatime,x-systemd.growfs 0 2"
KANTO_FSTAB:raspberrypi4-64 = "/dev/mmcblk0p1 /boot/firmware vfat defaults,noatime,umask=0077 0 2;/dev/mmcblk0p4 /var/lib/kanto ext4 defaults,noatime,x-systemd.growfs 0 2"

ROOTFS_POSTPROCESS_COMMAND += "kanto_rootfs_ab"
kanto_rootfs_ab() {
    echo "${KANTO_FSTAB}" | tr ';' '\n' | while read -r line; do
        [ -n "$line" ] || continue
        echo "$line" >> ${IMAGE_ROOTFS}${sysconfdir}/fstab
        install -d ${IMAGE_ROOTFS}$(echo "$line" | awk '{print $2}')
    done
    # The GRUB script (firmware/scripts/grub-ab.cfg) boots /boot/vmlinuz of
    # the slot.
    if [ -e ${IMAGE_ROOTFS}/boot/${KERNEL_IMAGETYPE} ]; then
        ln -sf ${KERNEL_IMAGETYPE} ${IMAGE_ROOTFS}/boot/vmlinuz
    fi
}
