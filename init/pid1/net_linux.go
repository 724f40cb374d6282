package pid1

import (
	"context"
	"errors"
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
		if addr, err := dhcp(ctx, log, link, c); err == nil {
			writeResolvConf(c.DNS)
			return addr, "dhcp", nil
		} else {
			log.Warn("dhcp failed, using the static address", "iface", c.Interface, "err", err)
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

// dhcp asks for a DHCPv4 lease with u-root's dhclient. The client does not
// always honour its context, so the wait is bounded here as well.
func dhcp(ctx context.Context, log *slog.Logger, link netlink.Link, c initcfg.Network) (string, error) {
	timeout := time.Duration(c.TimeoutSec) * time.Second
	dctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	type result struct {
		addr string
		err  error
	}
	done := make(chan result, 1)
	// Owned by dhcp; may outlive it by the client's own timeout, after
	// which SendRequests closes its channel and the goroutine ends.
	go func() {
		cfg := dhclient.Config{Timeout: timeout / 2, Retries: 1}
		var last error = errors.New("no DHCP answer")
		for r := range dhclient.SendRequests(dctx, []netlink.Link{link}, true, false, cfg, timeout) {
			if r.Err != nil {
				last = r.Err
				continue
			}
			if err := r.Lease.Configure(); err != nil {
				last = err
				continue
			}
			done <- result{addr: leaseAddr(link)}
			return
		}
		done <- result{err: last}
	}()
	select {
	case r := <-done:
		return r.addr, r.err
	case <-time.After(timeout + time.Second):
		return "", fmt.Errorf("no lease within %v", timeout)
	}
}
