package model

import (
	"strconv"
	"strings"

	"github.com/google/uuid"
)

// DefaultRuntime is the containerd runtime containers get by default.
const DefaultRuntime = "io.containerd.runc.v2"

// FillDefaults sets what a container description may leave out, as upstream
// does at create and on every load. It never changes values that are set.
func FillDefaults(c *Container) {
	if c.ID == "" {
		c.ID = uuid.NewString()
	}
	if c.Name == "" {
		c.Name = c.ID
	}
	if c.DomainName == "" {
		c.DomainName = c.Name + "-domain"
	}
	if c.HostName == "" {
		c.HostName = c.Name + "-host"
	}
	for i := range c.Mounts {
		if c.Mounts[i].PropagationMode == "" {
			c.Mounts[i].PropagationMode = "rprivate"
		}
	}
	if c.HostConfig == nil {
		c.HostConfig = &HostConfig{}
	}
	h := c.HostConfig
	if h.NetworkMode == "" {
		h.NetworkMode = NetworkBridge
	}
	if h.RestartPolicy == nil {
		h.RestartPolicy = &RestartPolicy{Type: RestartUnlessStopped}
	} else if h.RestartPolicy.Type == "" {
		h.RestartPolicy.Type = RestartUnlessStopped
	}
	if h.Runtime == "" {
		h.Runtime = DefaultRuntime
	}
	for i := range h.Devices {
		d := &h.Devices[i]
		if d.PathInContainer == "" {
			d.PathInContainer = d.PathOnHost
		}
		if d.CgroupPermissions == "" {
			d.CgroupPermissions = "rwm"
		}
	}
	for i := range h.PortMappings {
		p := &h.PortMappings[i]
		if p.Proto == "" {
			p.Proto = "tcp"
		}
		if p.HostIP == "" {
			p.HostIP = "0.0.0.0"
		}
		if p.HostPortEnd == 0 {
			p.HostPortEnd = p.HostPort
		}
	}
	if h.LogConfig == nil {
		h.LogConfig = &LogConfiguration{}
	}
	if h.LogConfig.DriverConfig == nil {
		h.LogConfig.DriverConfig = &LogDriverConfiguration{Type: LogDriverJSONFile, MaxFiles: 2, MaxSize: "100M"}
	}
	dc := h.LogConfig.DriverConfig
	if dc.Type == "" {
		dc.Type = LogDriverJSONFile
	}
	if dc.Type == LogDriverNone {
		dc.MaxFiles, dc.MaxSize = 0, ""
	} else {
		if dc.MaxFiles == 0 {
			dc.MaxFiles = 2
		}
		if dc.MaxSize == "" {
			dc.MaxSize = "100M"
		}
	}
	if h.LogConfig.ModeConfig == nil {
		h.LogConfig.ModeConfig = &LogModeConfiguration{Mode: LogModeBlocking}
	}
	mc := h.LogConfig.ModeConfig
	if mc.Mode == "" {
		mc.Mode = LogModeBlocking
	}
	if mc.Mode == LogModeBlocking {
		mc.MaxBufferSize = ""
	} else if mc.MaxBufferSize == "" {
		mc.MaxBufferSize = "1M"
	}
	if c.IOConfig == nil {
		c.IOConfig = &IOConfig{}
	}
	if c.State == nil {
		c.State = &State{Status: Creating, Pid: -1}
	}
}

// FillMemorySwap sets swap to twice the memory when only memory is given
// (keeping the unit, "200M" becomes "400M") and turns swap "-1" into no
// limit. Upstream runs this at create only.
func FillMemorySwap(c *Container) {
	if c.HostConfig == nil || c.HostConfig.Resources == nil {
		return
	}
	r := c.HostConfig.Resources
	if r.MemorySwap == "-1" {
		r.MemorySwap = ""
		return
	}
	if r.Memory == "" || r.MemorySwap != "" {
		return
	}
	m := sizeRe.FindStringSubmatch(r.Memory)
	if m == nil {
		return
	}
	if n, err := ParseSize(r.Memory); err == nil {
		unit := strings.ToUpper(m[3])
		div := map[string]int64{"K": 1024, "M": 1024 * 1024, "G": 1024 * 1024 * 1024}[unit]
		if (2*n)%div == 0 {
			r.MemorySwap = strconv.FormatInt(2*n/div, 10) + unit
		} else {
			r.MemorySwap = strconv.FormatInt(2*n/1024, 10) + "K"
		}
	}
}
