SUMMARY = "Kanto A/B slot configuration of the board: slots file, fw_env.config, update keyring"
DESCRIPTION = "Installs /etc/kanto/firmware/slots.json (firmware/FORMAT.md section 4; the default of kanto fw), /etc/fw_env.config \
on U-Boot machines and the keyring that update bundles are verified against."
LICENSE = "Apache-2.0"
LIC_FILES_CHKSUM = "file://${COMMON_LICENSE_DIR}/Apache-2.0;md5=89aea4e17d99a7cacdbeed46a0096b10"

PACKAGE_ARCH = "${MACHINE_ARCH}"
COMPATIBLE_MACHINE = "^(qemux86-64|qemuarm64|raspberrypi4-64)$"

SRC_URI = "file://slots-${MACHINE}.json"
SRC_URI:append:qemuarm64 = " file://fw_env-qemuarm64.config"
SRC_URI:append:raspberrypi4-64 = " file://fw_env-raspberrypi4-64.config"

# PEM keyring (CA certificates or public keys) trusted for update bundles.
# The default is the development CA of this layer: tests only.
KANTO_KEYRING ?= "${KANTO_LAYERDIR}/recipes-kanto/bundles/files/dev-keys/ca.crt"
do_install[file-checksums] += "${KANTO_KEYRING}:True"

# Anti-rollback (firmware/FORMAT.md section 4): "refuse" makes the installer
# refuse bundles older than the running firmware (KANTO_VERSION must then be a
# semantic version); baseVersion is this image's version for that check and
# for the firmware agent's current state.
KANTO_DOWNGRADE ?= "allow"

do_install() {
    install -d ${D}${sysconfdir}/kanto/firmware
    sed -e 's/"baseVersion": "@KANTO_VERSION@"/"baseVersion": "${KANTO_VERSION}"/' \
        -e 's/"downgrade": "allow"/"downgrade": "${KANTO_DOWNGRADE}"/' \
        ${UNPACKDIR}/slots-${MACHINE}.json > ${D}${sysconfdir}/kanto/firmware/slots.json
    chmod 0644 ${D}${sysconfdir}/kanto/firmware/slots.json
    install -m 0644 ${KANTO_KEYRING} ${D}${sysconfdir}/kanto/firmware/keyring.pem
    if [ -e ${UNPACKDIR}/fw_env-${MACHINE}.config ]; then
        install -m 0644 ${UNPACKDIR}/fw_env-${MACHINE}.config ${D}${sysconfdir}/fw_env.config
    fi
}

FILES:${PN} = "${sysconfdir}/kanto/firmware/slots.json ${sysconfdir}/kanto/firmware/keyring.pem ${sysconfdir}/fw_env.config"
CONFFILES:${PN} = "${sysconfdir}/kanto/firmware/keyring.pem"
