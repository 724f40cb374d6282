package mgr

import (
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strings"

	"github.com/kantofw/kanto/services/containers/model"
	"github.com/kantofw/kanto/services/containers/network"
)

func settings(c *model.Container, a *network.Attachment) *model.NetworkSettings {
	ns := &model.NetworkSettings{SandboxID: c.ID, SandboxKey: a.NetNS, Networks: map[string]*model.EndpointSettings{}}
	ns.Networks[c.HostConfig.NetworkMode] = &model.EndpointSettings{
		ID: c.ID + "-ep", Gateway: a.Gateway, IPAddress: a.IP, MacAddress: a.MAC, NetworkID: c.HostConfig.NetworkMode,
	}
	return ns
}

type netFiles struct{ hosts, resolv, hostname string }

// writeNetFiles writes the container's /etc/hostname, /etc/hosts (with its
// extra hosts resolved) and /etc/resolv.conf under its directory.
func (m *Manager) writeNetFiles(c *model.Container, a *network.Attachment) (netFiles, error) {
	dir := m.ctrDir(c.ID)
	f := netFiles{
		hosts:    filepath.Join(dir, "hosts"),
		resolv:   filepath.Join(dir, "resolv.conf"),
		hostname: filepath.Join(dir, "hostname"),
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return f, err
	}
	var hosts strings.Builder
	hosts.WriteString("127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\n")
	if a.IP != "" {
		fmt.Fprintf(&hosts, "%s\t%s\n", a.IP, c.HostName)
	} else {
		fmt.Fprintf(&hosts, "127.0.1.1\t%s\n", c.HostName)
	}
	for _, eh := range c.HostConfig.ExtraHosts {
		name, val, ok := strings.Cut(eh, ":")
		if !ok {
			return f, model.Errorf(model.ErrInvalid, "invalid extra host %s", eh)
		}
		ip, err := m.resolveExtraHost(c, val, a)
		if err != nil {
			return f, err
		}
		fmt.Fprintf(&hosts, "%s\t%s\n", ip, name)
	}
	resolv, err := os.ReadFile("/etc/resolv.conf")
	if err != nil {
		resolv = nil
	}
	if a.NetNS != "" {
		resolv = dropLoopbackNameservers(resolv)
	}
	for p, data := range map[string][]byte{f.hosts: []byte(hosts.String()), f.resolv: resolv, f.hostname: []byte(c.HostName + "\n")} {
		if err := os.WriteFile(p, data, 0o644); err != nil {
			return f, err
		}
	}
	c.HostsPath, c.ResolvConfPath, c.HostnamePath = f.hosts, f.resolv, f.hostname
	return f, nil
}

func (m *Manager) resolveExtraHost(c *model.Container, val string, a *network.Attachment) (string, error) {
	switch {
	case net.ParseIP(val) != nil:
		return val, nil
	case val == "host_ip":
		if a.Gateway == "" {
			return "", model.Errorf(model.ErrInvalid, "cannot resolve host_ip in host network mode")
		}
		return a.Gateway, nil
	case strings.HasPrefix(val, "host_ip_"):
		return ifaceIPv4(strings.TrimPrefix(val, "host_ip_"))
	case strings.HasPrefix(val, "container_"):
		want := strings.TrimPrefix(val, "container_")
		var found []string
		for _, o := range m.listUnlocked(c.ID) {
			if o.HostName == want && o.NetworkSettings != nil {
				if ep := o.NetworkSettings.Networks[model.NetworkBridge]; ep != nil && ep.IPAddress != "" {
					found = append(found, ep.IPAddress)
				}
			}
		}
		if len(found) != 1 {
			return "", model.Errorf(model.ErrInvalid, "cannot resolve %s: %d bridged containers with that host name", val, len(found))
		}
		return found[0], nil
	}
	return "", model.Errorf(model.ErrInvalid, "invalid extra host value %s", val)
}

// listUnlocked copies the other containers; it skips self, whose lock the
// caller holds, and any container whose lock is busy.
func (m *Manager) listUnlocked(self string) []*model.Container {
	m.mu.Lock()
	es := make([]*entry, 0, len(m.entries))
	for id, e := range m.entries {
		if id != self {
			es = append(es, e)
		}
	}
	m.mu.Unlock()
	var out []*model.Container
	for _, e := range es {
		if e.mu.TryLock() {
			out = append(out, e.c.Clone())
			e.mu.Unlock()
		}
	}
	return out
}

func ifaceIPv4(name string) (string, error) {
	ifc, err := net.InterfaceByName(name)
	if err != nil {
		return "", model.Errorf(model.ErrInvalid, "no network interface %s", name)
	}
	addrs, _ := ifc.Addrs()
	for _, ad := range addrs {
		if ipn, ok := ad.(*net.IPNet); ok && ipn.IP.To4() != nil && !ipn.IP.IsLoopback() {
			return ipn.IP.String(), nil
		}
	}
	return "", model.Errorf(model.ErrInvalid, "no IPv4 address on interface %s", name)
}

// dropLoopbackNameservers removes nameservers a separate network namespace
// cannot reach (e.g. systemd-resolved's 127.0.0.53).
func dropLoopbackNameservers(b []byte) []byte {
	var out []string
	for _, l := range strings.Split(string(b), "\n") {
		f := strings.Fields(l)
		if len(f) >= 2 && f[0] == "nameserver" {
			if ip := net.ParseIP(f[1]); ip != nil && ip.IsLoopback() {
				continue
			}
		}
		out = append(out, l)
	}
	return []byte(strings.Join(out, "\n"))
}
