// Package network attaches containers to the bridge network with the
// standard CNI plugins (bridge, host-local, portmap from Debian's
// containernetworking-plugins), or leaves them in the host's network.
//
// What it touches on the host, and nothing else:
//   - the Linux bridge Config.Bridge (kanto-cm0) with the gateway address of
//     Config.Subnet, and one veth per bridged container;
//   - network namespaces bind-mounted under Config.NetNSDir;
//   - host-local IP leases under Config.DataDir;
//   - with IPMasq, the bridge plugin's per-container nat chain CNI-<hash>
//     jumped to from POSTROUTING; with port mappings, the portmap plugin's
//     chains CNI-HOSTPORT-DNAT/-SETMARK/-MASQ and CNI-DN-<hash>, and
//     route_localnet on the bridge (so 127.0.0.1 can reach published ports).
//     Per-container rules and chains go away when the container stops;
//     Cleanup removes the bridge and the now-empty CNI-HOSTPORT-* chains.
//
// It never sets net.ipv4.ip_forward nor any chain policy: the bridge plugin
// runs with isGateway=false (which would enable forwarding globally) and the
// gateway address is assigned here instead. Reaching networks beyond the
// host from a bridged container therefore needs forwarding enabled by the
// device's own network configuration.
package network

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"

	"github.com/containerd/containerd/pkg/netns"
	gocni "github.com/containerd/go-cni"
	"github.com/vishvananda/netlink"

	"github.com/kantofw/kanto/services/containers/model"
)

// ErrNetwork marks a failure to set up or tear down a container's network.
var ErrNetwork = errors.New("network error")

// Config configures the bridge network.
type Config struct {
	Bridge    string // Linux bridge name, kanto-cm0
	Subnet    string // IPv4 CIDR, e.g. 172.29.0.0/16
	MTU       int
	IPMasq    bool
	PluginDir string // /usr/lib/cni
	DataDir   string // host-local leases and CNI cache
	NetNSDir  string // bind-mounted namespaces
}

// Manager sets up and tears down container networks.
type Manager struct {
	cfg  Config
	log  *slog.Logger
	cni  gocni.CNI
	gw   net.IP
	mask net.IPMask
	mu   sync.Mutex
}

// Attachment is a container's network after Setup.
type Attachment struct {
	NetNS   string // empty in host mode
	IP      string
	Gateway string
	MAC     string
}

// New prepares the CNI configuration; nothing on the host changes yet.
func New(cfg Config, log *slog.Logger) (*Manager, error) {
	ip, ipn, err := net.ParseCIDR(cfg.Subnet)
	if err != nil || ip.To4() == nil {
		return nil, fmt.Errorf("bridge subnet %q: must be an IPv4 CIDR: %w", cfg.Subnet, ErrNetwork)
	}
	gw := make(net.IP, 4)
	copy(gw, ipn.IP.To4())
	gw[3]++
	if cfg.MTU == 0 {
		cfg.MTU = 1500
	}
	conf := map[string]any{
		"cniVersion": "1.0.0",
		"name":       "kanto-cm-" + cfg.Bridge,
		"plugins": []any{
			map[string]any{
				"type": "bridge", "bridge": cfg.Bridge, "isGateway": false, "ipMasq": cfg.IPMasq,
				"hairpinMode": true, "mtu": cfg.MTU,
				"ipam": map[string]any{
					"type":    "host-local",
					"ranges":  [][]map[string]string{{{"subnet": ipn.String(), "gateway": gw.String()}}},
					"routes":  []map[string]string{{"dst": "0.0.0.0/0"}},
					"dataDir": filepath.Join(cfg.DataDir, "ipam"),
				},
			},
			map[string]any{"type": "portmap", "capabilities": map[string]bool{"portMappings": true}, "snat": true},
		},
	}
	b, _ := json.Marshal(conf)
	c, err := gocni.New(gocni.WithPluginDir([]string{cfg.PluginDir}), gocni.WithInterfacePrefix("eth"),
		gocni.WithMinNetworkCount(1), gocni.WithConfListBytes(b))
	if err != nil {
		return nil, fmt.Errorf("cni config: %w: %w", err, ErrNetwork)
	}
	if err := os.MkdirAll(cfg.NetNSDir, 0o755); err != nil {
		return nil, err
	}
	return &Manager{cfg: cfg, log: log, cni: c, gw: gw, mask: ipn.Mask}, nil
}

// Setup creates the container's network namespace and connects it to the
// bridge (bridge mode), or does nothing (host mode).
func (m *Manager) Setup(ctx context.Context, c *model.Container) (*Attachment, error) {
	if c.HostConfig.NetworkMode == model.NetworkHost {
		return &Attachment{}, nil
	}
	// The bridge must have its gateway address before the plugins run:
	// portmap looks for the host interface routing to the container.
	if err := m.ensureBridge(); err != nil {
		return nil, fmt.Errorf("bridge %s: %w: %w", m.cfg.Bridge, err, ErrNetwork)
	}
	ns, err := netns.NewNetNS(m.cfg.NetNSDir)
	if err != nil {
		return nil, fmt.Errorf("create netns: %w: %w", err, ErrNetwork)
	}
	pm := gocni.WithCapabilityPortMap(portMaps(c))
	res, err := m.cni.Setup(ctx, c.ID, ns.GetPath(), pm)
	if err != nil {
		// A run that died half-way (crash, cancelled start) may have left an
		// address lease or rules for this id: clean up and try once more.
		_ = m.cni.Remove(context.WithoutCancel(ctx), c.ID, ns.GetPath(), pm)
		res, err = m.cni.Setup(ctx, c.ID, ns.GetPath(), pm)
	}
	if err != nil {
		_ = m.cni.Remove(context.WithoutCancel(ctx), c.ID, ns.GetPath(), pm)
		_ = ns.Remove()
		return nil, fmt.Errorf("cni setup: %w: %w", err, ErrNetwork)
	}
	a := &Attachment{NetNS: ns.GetPath(), Gateway: m.gw.String()}
	if cfg, ok := res.Interfaces["eth0"]; ok {
		a.MAC = cfg.Mac
		for _, ipc := range cfg.IPConfigs {
			if ipc.IP.To4() != nil {
				a.IP = ipc.IP.String()
			}
		}
	}
	return a, nil
}

// Teardown disconnects the container and removes its namespace. It is safe
// to call for a container that has no network (again).
func (m *Manager) Teardown(ctx context.Context, c *model.Container) error {
	if c.HostConfig.NetworkMode == model.NetworkHost {
		return nil
	}
	path := ""
	if c.NetworkSettings != nil {
		path = c.NetworkSettings.SandboxKey
	}
	if path == "" {
		path = filepath.Join(m.cfg.NetNSDir, "none")
	}
	err := m.cni.Remove(ctx, c.ID, path, gocni.WithCapabilityPortMap(portMaps(c)))
	if path != "" {
		if rerr := netns.LoadNetNS(path).Remove(); rerr != nil && !errors.Is(rerr, os.ErrNotExist) {
			m.log.Debug("remove netns", "path", path, "err", rerr)
		}
	}
	if err != nil {
		return fmt.Errorf("cni teardown: %w: %w", err, ErrNetwork)
	}
	return nil
}

// ensureBridge creates the bridge if needed and gives it the gateway
// address (the bridge plugin's isGateway would also turn on global IP
// forwarding, which we never do).
func (m *Manager) ensureBridge() error {
	m.mu.Lock()
	defer m.mu.Unlock()
	link, err := netlink.LinkByName(m.cfg.Bridge)
	if err != nil {
		br := &netlink.Bridge{LinkAttrs: netlink.LinkAttrs{Name: m.cfg.Bridge, MTU: m.cfg.MTU}}
		if err := netlink.LinkAdd(br); err != nil && !errors.Is(err, os.ErrExist) {
			return err
		}
		if link, err = netlink.LinkByName(m.cfg.Bridge); err != nil {
			return err
		}
	}
	addr := &netlink.Addr{IPNet: &net.IPNet{IP: m.gw, Mask: m.mask}}
	if err := netlink.AddrReplace(link, addr); err != nil {
		return err
	}
	return netlink.LinkSetUp(link)
}

// Cleanup removes the bridge and the portmap plugin's top-level chains when
// they are empty. Call it only when no container is attached.
func (m *Manager) Cleanup() error {
	var errs []error
	if link, err := netlink.LinkByName(m.cfg.Bridge); err == nil {
		if err := netlink.LinkDel(link); err != nil {
			errs = append(errs, err)
		}
	}
	for _, chain := range []string{"CNI-HOSTPORT-DNAT", "CNI-HOSTPORT-SETMARK", "CNI-HOSTPORT-MASQ"} {
		out, err := exec.Command("iptables", "-w", "-t", "nat", "-S", chain).Output()
		if err != nil {
			continue
		}
		if strings.Count(strings.TrimSpace(string(out)), "\n") > 0 {
			continue // still has rules of some other CNI user
		}
		for _, parent := range []string{"PREROUTING", "OUTPUT", "POSTROUTING"} {
			for exec.Command("iptables", "-w", "-t", "nat", "-D", parent, "-m", "comment", "--comment", "CNI portfwd requiring masquerade", "-j", chain).Run() == nil {
			}
			for exec.Command("iptables", "-w", "-t", "nat", "-D", parent, "-m", "addrtype", "--dst-type", "LOCAL", "-j", chain).Run() == nil {
			}
		}
		_ = exec.Command("iptables", "-w", "-t", "nat", "-X", chain).Run()
	}
	return errors.Join(errs...)
}

func portMaps(c *model.Container) []gocni.PortMapping {
	var out []gocni.PortMapping
	for _, p := range c.HostConfig.PortMappings {
		end := p.HostPortEnd
		if end < p.HostPort {
			end = p.HostPort
		}
		for hp := int(p.HostPort); hp <= int(end); hp++ {
			hostIP := p.HostIP
			if hostIP == "0.0.0.0" {
				hostIP = ""
			}
			out = append(out, gocni.PortMapping{
				HostPort: int32(hp), ContainerPort: int32(p.ContainerPort),
				Protocol: p.Proto, HostIP: hostIP,
			})
		}
	}
	return out
}
