SUMMARY = "Kanto edge services: one multi-call Go binary, one package per service"
DESCRIPTION = "The kanto binary runs every service of the stack through a symlink named \
after it (suite-connector, container-management, ...). Each service is its own \
package with its symlink, systemd unit and default config in /etc/kanto."
HOMEPAGE = "https://github.com/kantofw/kanto"
SECTION = "net"
LICENSE = "Apache-2.0"
LIC_FILES_CHKSUM = "file://src/${GO_IMPORT}/LICENSE;md5=3b83ef96387f14655fc854ddc3c6bd57"

GO_IMPORT = "github.com/kantofw/kanto"
GO_INSTALL = "${GO_IMPORT}/services/cmd/kanto"

KANTO_VERSION ?= "0.1.0"
PV = "${KANTO_VERSION}"

# Sources come from the repository holding this layer (KANTO_SRC_ROOT, set in
# layer.conf), never from the network. Only the module's top-level entries the
# binary is built from are copied, not the whole checkout (which may hold kas
# build directories); tools/yoctolint checks that every package the binary
# imports lies under one of them.
KANTO_GO_SRC = "go.mod go.sum LICENSE services firmware ota board init images"
FILESEXTRAPATHS:prepend := "${KANTO_SRC_ROOT}:"
SRC_URI = "${@' '.join('file://%s;subdir=${GO_SRCURI_DESTSUFFIX}' % p for p in d.getVar('KANTO_GO_SRC').split())} \
    file://suite-connector.service file://suite-connector.json \
    file://aws-connector.service file://aws-connector.json \
    file://local-digital-twins.service file://local-digital-twins.json \
    file://container-management.service file://container-management.json \
    file://update-manager.service file://update-manager.json \
    file://software-update.service file://software-update.json \
    file://file-upload.service file://file-upload.json \
    file://fw-update-agent.service file://fw-update-agent.json \
    file://fw-health-services \
"
S = "${UNPACKDIR}/${BP}"

# Go modules come through bitbake's gomod:// fetcher (generated from go.sum by
# `go run ./tools/yoctogen`; tools/yoctolint keeps the list in sync).
require kanto-go-mods.inc

inherit go-mod systemd

# Pure Go, statically linked: no cgo, no PIE (PIE on 32-bit arm needs the
# external linker and so cgo), no shared Go runtime.
CGO_ENABLED = "0"
GO_LINKSHARED = ""
GOBUILDFLAGS:remove = "-buildmode=pie"
GOBUILDFLAGS:append = " -buildvcs=false"
GO_EXTRA_LDFLAGS = "-X main.version=${KANTO_VERSION}"
# Everything must already be in the module cache: fail instead of fetching.
export GOPROXY = "off"
export GOTOOLCHAIN = "local"
export GOFLAGS = "-mod=readonly"

# Commands of services/cmd/kanto/builtins.go that run as a systemd service
# (symlink, package kanto-<cmd without "kanto-">, unit <cmd>.service, config
# /etc/kanto/<cmd without "kanto-">.json) and CLIs and helpers that only get a
# symlink (container-management-log is run by the containerd shim).
KANTO_SERVICES = "suite-connector aws-connector local-digital-twins container-management update-manager software-update file-upload fw-update-agent"
KANTO_CLIS = "kanto-cm container-management-log"
# Commands that stay subcommands of the binary (no symlink): `kanto fw ...`,
# `kanto bundle ...` (package kanto-fwtools), `kanto provision` (device identity),
# `kanto image` and `kanto flash` (build-host tools).
KANTO_SUBCOMMANDS = "fw bundle image flash provision"

do_install() {
    install -d ${D}${bindir} ${D}${systemd_system_unitdir} ${D}${sysconfdir}/kanto
    install -m 0755 ${B}/${GO_BUILD_BINDIR}/kanto ${D}${bindir}/kanto
    for cmd in ${KANTO_SERVICES} ${KANTO_CLIS}; do
        ln -sf kanto ${D}${bindir}/$cmd
    done
    for cmd in ${KANTO_SERVICES}; do
        name=${cmd#kanto-}
        install -m 0644 ${UNPACKDIR}/$cmd.service ${D}${systemd_system_unitdir}/$cmd.service
        install -m 0644 ${UNPACKDIR}/$name.json ${D}${sysconfdir}/kanto/$name.json
    done
    install -d ${D}${sysconfdir}/kanto/firmware/health.d
    install -m 0755 ${UNPACKDIR}/fw-health-services ${D}${sysconfdir}/kanto/firmware/health.d/50-services
}

PACKAGE_BEFORE_PN = "kanto-suite-connector kanto-aws-connector kanto-local-digital-twins \
    kanto-container-management kanto-update-manager kanto-software-update kanto-file-upload \
    kanto-fw-update-agent kanto-cm kanto-fwtools"

SYSTEMD_PACKAGES = "kanto-suite-connector kanto-aws-connector kanto-local-digital-twins \
    kanto-container-management kanto-update-manager kanto-software-update kanto-file-upload \
    kanto-fw-update-agent"
SYSTEMD_AUTO_ENABLE = "enable"

SYSTEMD_SERVICE:kanto-suite-connector = "suite-connector.service"
FILES:kanto-suite-connector = "${bindir}/suite-connector ${systemd_system_unitdir}/suite-connector.service ${sysconfdir}/kanto/suite-connector.json"
CONFFILES:kanto-suite-connector = "${sysconfdir}/kanto/suite-connector.json"
RDEPENDS:kanto-suite-connector = "${PN} mosquitto ca-certificates"

# Installed but not enabled, as upstream: it needs a device certificate first.
SYSTEMD_SERVICE:kanto-aws-connector = "aws-connector.service"
SYSTEMD_AUTO_ENABLE:kanto-aws-connector = "disable"
FILES:kanto-aws-connector = "${bindir}/aws-connector ${systemd_system_unitdir}/aws-connector.service ${sysconfdir}/kanto/aws-connector.json"
CONFFILES:kanto-aws-connector = "${sysconfdir}/kanto/aws-connector.json"
RDEPENDS:kanto-aws-connector = "${PN} mosquitto ca-certificates"

# Installed but not enabled, as upstream: it replaces the suite connector.
SYSTEMD_SERVICE:kanto-local-digital-twins = "local-digital-twins.service"
SYSTEMD_AUTO_ENABLE:kanto-local-digital-twins = "disable"
FILES:kanto-local-digital-twins = "${bindir}/local-digital-twins ${systemd_system_unitdir}/local-digital-twins.service ${sysconfdir}/kanto/local-digital-twins.json"
CONFFILES:kanto-local-digital-twins = "${sysconfdir}/kanto/local-digital-twins.json"
RDEPENDS:kanto-local-digital-twins = "${PN} mosquitto ca-certificates"

SYSTEMD_SERVICE:kanto-container-management = "container-management.service"
FILES:kanto-container-management = "${bindir}/container-management ${bindir}/container-management-log ${systemd_system_unitdir}/container-management.service ${sysconfdir}/kanto/container-management.json"
CONFFILES:kanto-container-management = "${sysconfdir}/kanto/container-management.json"
# meta-virtualization's container runtime (the kanto distro sets it too).
VIRTUAL-RUNTIME_container_runtime ??= "runc"
# cni: meta-virtualization's plugins in ${libexecdir}/cni (network.cni_plugin_dir
# of container-management.json); iptables for port forwarding.
RDEPENDS:kanto-container-management = "${PN} mosquitto virtual-containerd ${VIRTUAL-RUNTIME_container_runtime} cni iptables"

SYSTEMD_SERVICE:kanto-update-manager = "update-manager.service"
FILES:kanto-update-manager = "${bindir}/update-manager ${systemd_system_unitdir}/update-manager.service ${sysconfdir}/kanto/update-manager.json"
CONFFILES:kanto-update-manager = "${sysconfdir}/kanto/update-manager.json"
RDEPENDS:kanto-update-manager = "${PN} mosquitto"

SYSTEMD_SERVICE:kanto-software-update = "software-update.service"
FILES:kanto-software-update = "${bindir}/software-update ${systemd_system_unitdir}/software-update.service ${sysconfdir}/kanto/software-update.json"
CONFFILES:kanto-software-update = "${sysconfdir}/kanto/software-update.json"
RDEPENDS:kanto-software-update = "${PN} mosquitto"

SYSTEMD_SERVICE:kanto-file-upload = "file-upload.service"
FILES:kanto-file-upload = "${bindir}/file-upload ${systemd_system_unitdir}/file-upload.service ${sysconfdir}/kanto/file-upload.json"
CONFFILES:kanto-file-upload = "${sysconfdir}/kanto/file-upload.json"
RDEPENDS:kanto-file-upload = "${PN} mosquitto"

# The firmware domain agent: installs signed bundles into the inactive slot
# (slots file and keyring from kanto-boot-config, which the image installs).
SYSTEMD_SERVICE:kanto-fw-update-agent = "fw-update-agent.service"
FILES:kanto-fw-update-agent = "${bindir}/fw-update-agent ${systemd_system_unitdir}/fw-update-agent.service ${sysconfdir}/kanto/fw-update-agent.json \
    ${sysconfdir}/kanto/firmware/health.d"
CONFFILES:kanto-fw-update-agent = "${sysconfdir}/kanto/fw-update-agent.json"
RDEPENDS:kanto-fw-update-agent = "${PN} mosquitto"

FILES:kanto-cm = "${bindir}/kanto-cm"
RDEPENDS:kanto-cm = "${PN}"

# The firmware tools are subcommands of the binary (`kanto fw`, `kanto
# bundle`); this package pulls in the binary (the image adds the board config).
ALLOW_EMPTY:kanto-fwtools = "1"
RDEPENDS:kanto-fwtools = "${PN}"

FILES:${PN} = "${bindir}/kanto"

# kanto-native runs `kanto bundle create` for kanto-bundle on the build host.
BBCLASSEXTEND = "native"
SYSTEMD_PACKAGES:class-native = ""
do_install:class-native() {
    install -d ${D}${bindir}
    install -m 0755 ${B}/${GO_BUILD_BINDIR}/kanto ${D}${bindir}/kanto
}
