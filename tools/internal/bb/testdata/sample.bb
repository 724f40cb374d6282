SUMMARY = "sample"
LICENSE = "MIT"
SRC_URI = "file://a.service \
           file://b.json;subdir=x"
SRC_URI:append = " file://c"
DEPENDS ??= "weak"
DEPENDS ?= "soft"
GOBUILDFLAGS = "-v -buildmode=pie -trimpath"
GOBUILDFLAGS:remove = "-buildmode=pie"
do_compile[network] = "1"
export GOPROXY = "off"
inherit go-mod systemd
require sample.inc

do_install() {
    install -d ${D}${bindir}
}

python __anonymous() {
    d.setVar('X', '1')
}
