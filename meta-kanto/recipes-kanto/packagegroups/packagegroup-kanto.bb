SUMMARY = "Kanto edge stack: broker, container runtime and the Kanto services"
LICENSE = "Apache-2.0"
LIC_FILES_CHKSUM = "file://${COMMON_LICENSE_DIR}/Apache-2.0;md5=89aea4e17d99a7cacdbeed46a0096b10"

# meta-virtualization's container runtime (the kanto distro sets it too).
VIRTUAL-RUNTIME_container_runtime ??= "runc"

inherit packagegroup

RDEPENDS:${PN} = "\
    mosquitto \
    virtual-containerd \
    ${VIRTUAL-RUNTIME_container_runtime} \
    ca-certificates \
    kanto \
    kanto-suite-connector \
    kanto-aws-connector \
    kanto-local-digital-twins \
    kanto-container-management \
    kanto-update-manager \
    kanto-software-update \
    kanto-file-upload \
    kanto-fw-update-agent \
    kanto-cm \
    kanto-fwtools \
"
