# Kanto distro only: the local broker listens on loopback for the services and
# gets the settings the connectors rely on (files/kanto.conf). Inert in other
# distros.
FILESEXTRAPATHS:prepend:kanto := "${THISDIR}/files:"
SRC_URI:append:kanto = " file://kanto.conf"

do_install:append:kanto() {
    install -d ${D}${sysconfdir}/mosquitto/conf.d
    install -m 0644 ${UNPACKDIR}/kanto.conf ${D}${sysconfdir}/mosquitto/conf.d/kanto.conf
    grep -q '^include_dir ${sysconfdir}/mosquitto/conf.d' ${D}${sysconfdir}/mosquitto/mosquitto.conf || \
        printf '\nlistener 1883 127.0.0.1\nallow_anonymous true\ninclude_dir ${sysconfdir}/mosquitto/conf.d\n' \
        >> ${D}${sysconfdir}/mosquitto/mosquitto.conf
}

FILES:${PN}:append:kanto = " ${sysconfdir}/mosquitto/conf.d/kanto.conf"
CONFFILES:${PN}:append:kanto = " ${sysconfdir}/mosquitto/conf.d/kanto.conf"
