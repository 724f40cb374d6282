package main

import (
	"github.com/kantofw/kanto/services/awsconnector"
	"github.com/kantofw/kanto/services/connector"
	cmcli "github.com/kantofw/kanto/services/containers/cli"
	cmdaemon "github.com/kantofw/kanto/services/containers/daemon"
	"github.com/kantofw/kanto/services/containers/logdriver"
	"github.com/kantofw/kanto/services/fileupload"
	"github.com/kantofw/kanto/services/fwagent"
	"github.com/kantofw/kanto/services/fwtool"
	"github.com/kantofw/kanto/services/imagetool"
	"github.com/kantofw/kanto/services/internal/cli"
	"github.com/kantofw/kanto/services/softwareupdate"
	"github.com/kantofw/kanto/services/twins"
	"github.com/kantofw/kanto/services/updatemanager"
)

type command struct {
	main    cli.Main
	summary string
}

// commands lists everything compiled into the binary. The key is both the
// subcommand and the symlink name (the upstream binary name).
var commands = map[string]command{
	"flash":                    {main: imagetool.FlashMain, summary: "write a disk image to a disk or file with its block map, and verify it"},
	"provision":                {main: imagetool.ProvisionMain, summary: "create the device identity (ECDSA P-256 key, certificate, Hono/AWS provisioning file)"},
	"fw-update-agent":          {main: fwagent.Main, summary: "the firmware domain agent: A/B OTA driven by the update manager"},
	"software-update":          {main: softwareupdate.Main, summary: "install software with scripts: hawkBit SoftwareUpdatable and the software update domain (Kanto software-update)"},
	"container-management":     {main: cmdaemon.Main, summary: "run containers on containerd (Kanto container-management daemon)"},
	"container-management-log": {main: logdriver.Main, summary: "json-file log driver the containerd shim runs for each container"},
	"kanto-cm":                 {main: cmcli.Main, summary: "manage the containers of container-management (Kanto kanto-cm CLI)"},
	"bundle":                   {main: fwtool.BundleMain, summary: "create, sign, verify and inspect firmware update bundles"},
	"fw":                       {main: fwtool.FwMain, summary: "A/B firmware: install bundles, boot environments, status, commit, rollback"},
	"image":                    {main: imagetool.ImageMain, summary: "build, provision and boot the A/B firmware disk image (QEMU)"},
	"update-manager":           {main: updatemanager.Main, summary: "orchestrate desired states across domain agents (Kanto update-manager)"},
	"file-upload":              {main: fileupload.Main, summary: "upload files to HTTP, S3 or Azure Blob on request or periodically (Kanto file-upload)"},
	"suite-connector":          {main: connector.Main, summary: "link the local broker to a Hono/Ditto cloud (Kanto suite-connector)"},
	"local-digital-twins":      {main: twins.Main, summary: "keep digital twins on the device and sync them with the cloud (Kanto local-digital-twins)"},
	"aws-connector":            {main: awsconnector.Main, summary: "link the local broker to AWS IoT Core with Device Shadows (Kanto aws-connector)"},
}
