package pid1

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"os"
	"strings"
	"time"

	"github.com/kantofw/kanto/init/initcfg"
	"github.com/u-root/u-root/pkg/dhclient"
	"github.com/vishvananda/netlink"
)

// netUp brings up loopback and the configured interface: DHCP when enabled
// (u-root's dhclient), else or on failure the static address. It returns
// the address and how it was obtained.
func netUp(ctx context.Context, log *slog.Logger, c initcfg.Network) (addr, via string, err error) {
	if lo, err := netlink.LinkByName("lo"); err == nil {
		_ = netlink.LinkSetUp(lo)
	}
	var link netlink.Link
	deadline := time.Now().Add(5 * time.Second)
	for {
		link, err = netlink.LinkByName(c.Interface)
		if err == nil || time.Now().After(deadline) {
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	if err != nil {
		return "", "", fmt.Errorf("interface %s: %w", c.Interface, err)
	}
	if c.DHCP {
		dctx, cancel := context.WithTimeout(ctx, time.Duration(c.TimeoutSec)*time.Second)
		defer cancel()
		cfg := dhclient.Config{Timeout: time.Duration(c.TimeoutSec) * time.Second / 2, Retries: 1}
		for r := range dhclient.SendRequests(dctx, []netlink.Link{link}, true, false, cfg, 5*time.Second) {
			if r.Err != nil {
				log.Warn("dhcp", "iface", c.Interface, "err", r.Err)
				continue
			}
			if err := r.Lease.Configure(); err != nil {
				log.Warn("dhcp configure", "err", err)
				continue
			}
			writeResolvConf(c.DNS)
			return leaseAddr(link), "dhcp", nil
		}
	}
	if c.Address == "" {
		return "", "", fmt.Errorf("no DHCP lease and no static address for %s", c.Interface)
	}
	if err := netlink.LinkSetUp(link); err != nil {
		return "", "", err
	}
	a, err := netlink.ParseAddr(c.Address)
	if err != nil {
		return "", "", err
	}
	if err := netlink.AddrReplace(link, a); err != nil {
		return "", "", err
	}
	if c.Gateway != "" {
		gw := net.ParseIP(c.Gateway)
		if err := netlink.RouteReplace(&netlink.Route{LinkIndex: link.Attrs().Index, Gw: gw}); err != nil {
			return "", "", fmt.Errorf("default route via %s: %w", c.Gateway, err)
		}
	}
	writeResolvConf(c.DNS)
	return c.Address, "static", nil
}

func leaseAddr(link netlink.Link) string {
	as, err := netlink.AddrList(link, netlink.FAMILY_V4)
	if err != nil || len(as) == 0 {
		return "?"
	}
	return as[0].IPNet.String()
}

// writeResolvConf writes /run/resolv.conf (the image links /etc/resolv.conf
// there) unless DHCP already did; QEMU's slirp resolver is 10.0.2.3.
func writeResolvConf(dns []string) {
	if _, err := os.Stat("/run/resolv.conf"); err == nil && len(dns) == 0 {
		return
	}
	if len(dns) == 0 {
		dns = []string{"10.0.2.3"}
	}
	var b strings.Builder
	for _, d := range dns {
		fmt.Fprintf(&b, "nameserver %s\n", d)
	}
	_ = os.WriteFile("/run/resolv.conf", []byte(b.String()), 0o644)
}
