SUMMARY = "Kanto signed update bundle (.kfw) of the kanto-image root filesystem"
DESCRIPTION = "Runs `kanto bundle create` (firmware/FORMAT.md) on the ext4 root filesystem \
of KANTO_BUNDLE_IMAGE and deploys <image>-<machine>.kfw next to the image."
LICENSE = "Apache-2.0"
LIC_FILES_CHKSUM = "file://${COMMON_LICENSE_DIR}/Apache-2.0;md5=89aea4e17d99a7cacdbeed46a0096b10"

PACKAGE_ARCH = "${MACHINE_ARCH}"
COMPATIBLE_MACHINE = "^(qemux86-64|qemuarm64|raspberrypi4-64)$"

KANTO_BUNDLE_IMAGE ?= "kanto-image"
KANTO_BUNDLE_VERSION ?= "${KANTO_VERSION}"
KANTO_VERSION ?= "0.1.0"
# The board name devices compare with the bundle (the "compatible" of
# /etc/kanto/firmware/slots.json, recipes-bsp/kanto-boot/files/slots-<machine>.json).
KANTO_BUNDLE_COMPATIBLE ??= "${MACHINE}"
KANTO_BUNDLE_COMPATIBLE:qemux86-64 = "qemu-x86_64"
KANTO_BUNDLE_COMPATIBLE:qemuarm64 = "qemu-aarch64"
KANTO_BUNDLE_COMPATIBLE:raspberrypi4-64 = "raspberrypi4-64"

# Signing key (PKCS#8/SEC1/PKCS#1 PEM) and certificate. The defaults are the
# public development keys of this layer: tests only. Set both to your own
# files in local.conf or kas (README: "Signing bundles with your own keys").
KANTO_SIGNING_KEY ?= "${KANTO_LAYERDIR}/recipes-kanto/bundles/files/dev-keys/signing.key"
KANTO_SIGNING_CERT ?= "${KANTO_LAYERDIR}/recipes-kanto/bundles/files/dev-keys/signing.crt"

inherit deploy nopackages

DEPENDS = "kanto-native"
do_compile[depends] += "${KANTO_BUNDLE_IMAGE}:do_image_complete"
do_compile[file-checksums] += "${KANTO_SIGNING_KEY}:True ${KANTO_SIGNING_CERT}:True"
# The key is a file outside the build: never part of the task hash by value.
do_compile[vardepsexclude] += "KANTO_SIGNING_KEY KANTO_SIGNING_CERT"

python () {
    if '/dev-keys/' in (d.getVar('KANTO_SIGNING_KEY') or ''):
        bb.warn('kanto-bundle: signing with the public development key; set KANTO_SIGNING_KEY and KANTO_SIGNING_CERT for real devices')
}

do_compile() {
    kanto bundle create \
        --key ${KANTO_SIGNING_KEY} \
        --cert ${KANTO_SIGNING_CERT} \
        --compatible ${KANTO_BUNDLE_COMPATIBLE} \
        --version ${KANTO_BUNDLE_VERSION} \
        --image rootfs=${DEPLOY_DIR_IMAGE}/${KANTO_BUNDLE_IMAGE}-${MACHINE}.rootfs.ext4 \
        -q -o ${B}/${KANTO_BUNDLE_IMAGE}-${MACHINE}.kfw
}

do_deploy() {
    install -m 0644 ${B}/${KANTO_BUNDLE_IMAGE}-${MACHINE}.kfw ${DEPLOYDIR}/
}
addtask deploy after do_compile before do_build
