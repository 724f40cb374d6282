package model

import (
	"fmt"
	"net"
	"regexp"
	"strconv"
	"strings"
)

var sizeRe = regexp.MustCompile(`^(\d+(\.\d+)*) ?([kKmMgG])$`)

// ParseSize parses a size such as "100M", "1.5g" or "512 k" into bytes,
// using binary multiples. A unit letter is mandatory, as upstream.
func ParseSize(s string) (int64, error) {
	m := sizeRe.FindStringSubmatch(s)
	if m == nil {
		return 0, invalidf("invalid size format %s", s)
	}
	v, err := strconv.ParseFloat(m[1], 64)
	if err != nil {
		return 0, invalidf("invalid size format %s", s)
	}
	mult := float64(1024)
	switch strings.ToLower(m[3]) {
	case "m":
		mult = 1024 * 1024
	case "g":
		mult = 1024 * 1024 * 1024
	}
	return int64(v * mult), nil
}

// ParseDevice parses host:container[:perms].
func ParseDevice(s string) (DeviceMapping, error) {
	parts := strings.Split(s, ":")
	d := DeviceMapping{CgroupPermissions: "rwm"}
	switch len(parts) {
	case 3:
		if !validPerms(parts[2]) {
			return d, invalidf("incorrect cgroup permissions format for device mapping %s", s)
		}
		d.CgroupPermissions = parts[2]
		fallthrough
	case 2:
		d.PathOnHost, d.PathInContainer = parts[0], parts[1]
	default:
		return d, invalidf("incorrect configuration value for device mapping %s", s)
	}
	if d.PathOnHost == "" || d.PathInContainer == "" {
		return d, invalidf("incorrect configuration value for device mapping %s", s)
	}
	return d, nil
}

func validPerms(p string) bool {
	if len(p) == 0 || len(p) > 3 {
		return false
	}
	for _, c := range p {
		if c != 'r' && c != 'w' && c != 'm' {
			return false
		}
	}
	return true
}

// ParseMount parses src:dst[:propagation]; propagation defaults to rprivate.
func ParseMount(s string) (MountPoint, error) {
	parts := strings.Split(s, ":")
	if len(parts) < 2 || len(parts) > 3 || parts[0] == "" || parts[1] == "" {
		return MountPoint{}, invalidf("incorrect number of parameters of the mount point %s", s)
	}
	m := MountPoint{Source: parts[0], Destination: parts[1], PropagationMode: "rprivate"}
	if len(parts) == 3 {
		m.PropagationMode = parts[2]
	}
	return m, nil
}

// ParsePort parses [hostIP:]hostPort[-hostPortEnd]:containerPort[/proto].
// The protocol is left empty when not given; FillDefaults sets tcp.
func ParsePort(s string) (PortMapping, error) {
	bad := func() (PortMapping, error) {
		return PortMapping{}, invalidf("incorrect port mapping configuration %s", s)
	}
	var pm PortMapping
	rest := s
	if i := strings.LastIndex(rest, "/"); i >= 0 {
		pm.Proto = rest[i+1:]
		rest = rest[:i]
		if pm.Proto == "" {
			return bad()
		}
	}
	i := strings.LastIndex(rest, ":")
	if i < 0 {
		return bad()
	}
	cport, err := strconv.ParseUint(rest[i+1:], 10, 16)
	if err != nil || cport == 0 {
		return bad()
	}
	pm.ContainerPort = uint16(cport)
	rest = rest[:i]
	if j := strings.LastIndex(rest, ":"); j >= 0 {
		ip := strings.Trim(rest[:j], "[]")
		if net.ParseIP(ip) == nil {
			return bad()
		}
		pm.HostIP = ip
		rest = rest[j+1:]
	}
	lo, hi, ranged := strings.Cut(rest, "-")
	hp, err := strconv.ParseUint(lo, 10, 16)
	if err != nil || hp == 0 {
		return bad()
	}
	pm.HostPort = uint16(hp)
	if ranged {
		he, err := strconv.ParseUint(hi, 10, 16)
		if err != nil || he < hp {
			return bad()
		}
		pm.HostPortEnd = uint16(he)
	}
	return pm, nil
}

// String formats a port mapping as ParsePort reads it; 0.0.0.0 is omitted
// and the range only printed when it spans more than one port.
func (p PortMapping) String() string {
	var b strings.Builder
	if p.HostIP != "" && p.HostIP != "0.0.0.0" {
		b.WriteString(p.HostIP + ":")
	}
	b.WriteString(strconv.Itoa(int(p.HostPort)))
	if p.HostPortEnd != 0 && p.HostPortEnd != p.HostPort {
		fmt.Fprintf(&b, "-%d", p.HostPortEnd)
	}
	fmt.Fprintf(&b, ":%d", p.ContainerPort)
	if p.Proto != "" {
		b.WriteString("/" + p.Proto)
	}
	return b.String()
}
