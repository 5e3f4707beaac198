package kernel

import (
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"runtime"
	"strconv"
	"syscall"
	"testing"

	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"

	"github.com/aegisbpf/aegisbpf/agent/engine"
	"github.com/aegisbpf/aegisbpf/bpf"
)

// Hooks and protocols as bpf/abi.h and the kernel number them.
const (
	hookConnect = 8
	hookSendmsg = 9
	protoTCP    = 6
	protoUDP    = 17
)

// The network the tests build: a veth pair whose peer end lives in a new
// network namespace, with an IPv4 and an IPv6 address denied by a CIDR and
// one of each allowed.
var (
	vethLocal4  = netip.MustParsePrefix("10.99.0.1/24")
	vethLocal6  = netip.MustParsePrefix("fd99::1/64")
	peerDenied4 = netip.MustParseAddr("10.99.0.2") // in 10.99.0.2/31
	peerAllow4  = netip.MustParseAddr("10.99.0.4")
	peerDenied6 = netip.MustParseAddr("fd99::8000:0:0:5") // in fd99:0:0:0:8000::/65
	peerAllow6  = netip.MustParseAddr("fd99::3")
)

// netRules is the policy of the network tests, one rule per target.
func netRules() []engine.NetTarget {
	p := netip.MustParsePrefix
	return []engine.NetTarget{
		{Prefix: p("127.0.0.2/32")},         // r0: an IPv4 address, any protocol
		{Prefix: p("127.9.0.0/16")},         // r1: an IPv4 CIDR
		{Prefix: p("::2/128")},              // r2: an IPv6 address (on lo, see withLoopback6)
		{Prefix: p("fd99:0:0:0:8000::/65")}, // r3: an IPv6 CIDR (the veth peer)
		{Prefix: p("10.99.0.2/31")},         // r4: an IPv4 CIDR (the veth peer)
		{Prefix: p("127.0.0.3/32"), Protocol: protoTCP, Ports: []engine.PortRange{{Lo: 8000, Hi: 8010}}}, // r5: TCP ports 8000-8010
	}
}

func applyNet(t *testing.T, e *engine.Engine, audit bool, targets []engine.NetTarget) *engine.Instance {
	t.Helper()
	spec := engine.Spec{Enforce: !audit}
	for i := range targets {
		targets[i].Rule = uint32(i)
		spec.Rules = append(spec.Rules, engine.RuleSpec{ID: "r" + strconv.Itoa(i), Audit: audit})
	}
	spec.Nets = targets
	rs, err := engine.Resolve(spec, engine.HostFS)
	if err != nil {
		t.Fatalf("resolving network rules: %v", err)
	}
	inst, err := e.Apply(rs)
	if err != nil {
		t.Fatalf("applying network rules: %v", err)
	}
	t.Cleanup(func() { inst.Close() })
	return inst
}

// sockaddr converts ap for a socket of family.
func sockaddr(family int, ap netip.AddrPort) unix.Sockaddr {
	if family == unix.AF_INET {
		return &unix.SockaddrInet4{Addr: ap.Addr().Unmap().As4(), Port: int(ap.Port())}
	}
	return &unix.SockaddrInet6{Addr: ap.Addr().As16(), Port: int(ap.Port())}
}

func familyOf(a netip.Addr) int {
	if a.Is4() {
		return unix.AF_INET
	}
	return unix.AF_INET6
}

// connectErr connects a new socket of family and type to ap.
func connectErr(family, sotype int, ap netip.AddrPort) error {
	fd, err := unix.Socket(family, sotype|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return fmt.Errorf("socket: %w", err)
	}
	defer unix.Close(fd)
	return unix.Connect(fd, sockaddr(family, ap))
}

// sendtoErr sends one datagram from a new unconnected UDP socket to ap.
func sendtoErr(family int, ap netip.AddrPort) error {
	fd, err := unix.Socket(family, unix.SOCK_DGRAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return fmt.Errorf("socket: %w", err)
	}
	defer unix.Close(fd)
	return unix.Sendto(fd, []byte("x"), 0, sockaddr(family, ap))
}

// sendmsgErr is sendtoErr through sendmsg.
func sendmsgErr(family int, ap netip.AddrPort) error {
	fd, err := unix.Socket(family, unix.SOCK_DGRAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return fmt.Errorf("socket: %w", err)
	}
	defer unix.Close(fd)
	return unix.Sendmsg(fd, []byte("x"), nil, sockaddr(family, ap), 0)
}

// listen opens a TCP listener at ap, closed when the test ends.
func listen(t *testing.T, ap netip.AddrPort) {
	t.Helper()
	l, err := net.Listen("tcp", ap.String())
	if err != nil {
		t.Fatalf("listening on %s: %v", ap, err)
	}
	t.Cleanup(func() { l.Close() })
}

// withLoopback6 adds ::2 to lo, so a local IPv6 address can be denied.
func withLoopback6(t *testing.T) {
	t.Helper()
	lo, err := netlink.LinkByName("lo")
	if err != nil {
		t.Fatalf("finding lo: %v", err)
	}
	addr := &netlink.Addr{IPNet: netipNet(netip.MustParsePrefix("::2/128")), Flags: unix.IFA_F_NODAD}
	if err := netlink.AddrReplace(lo, addr); err != nil {
		t.Fatalf("adding ::2 to lo: %v", err)
	}
	t.Cleanup(func() { netlink.AddrDel(lo, addr) })
}

func netipNet(p netip.Prefix) *net.IPNet {
	return &net.IPNet{IP: p.Addr().AsSlice(), Mask: net.CIDRMask(p.Bits(), p.Addr().BitLen())}
}

// vethPeer creates a veth pair, moves its peer end into a new network
// namespace with the peer addresses, and listens there on port on each of
// them. The namespace and pair go when the test ends.
func vethPeer(t *testing.T, port uint16) {
	t.Helper()
	peerNS, err := newNetNS()
	if err != nil {
		t.Fatalf("creating a network namespace: %v", err)
	}
	t.Cleanup(func() { unix.Close(peerNS) })
	veth := &netlink.Veth{LinkAttrs: netlink.LinkAttrs{Name: "aegis0"}, PeerName: "aegis1", PeerNamespace: netlink.NsFd(peerNS)}
	if err := netlink.LinkAdd(veth); err != nil {
		t.Fatalf("creating the veth pair (module veth loaded?): %v", err)
	}
	t.Cleanup(func() { netlink.LinkDel(veth) })
	if err := linkUp("aegis0", vethLocal4, vethLocal6); err != nil {
		t.Fatal(err)
	}
	err = inNetNS(peerNS, func() error {
		if err := linkUp("lo"); err != nil {
			return err
		}
		if err := linkUp("aegis1", netip.PrefixFrom(peerDenied4, 24), netip.PrefixFrom(peerAllow4, 24),
			netip.PrefixFrom(peerDenied6, 64), netip.PrefixFrom(peerAllow6, 64)); err != nil {
			return err
		}
		// Sockets keep the namespace they were made in.
		for _, a := range []netip.Addr{peerDenied4, peerAllow4, peerDenied6, peerAllow6} {
			l, err := net.Listen("tcp", netip.AddrPortFrom(a, port).String())
			if err != nil {
				return fmt.Errorf("listening on %s in the peer namespace: %w", a, err)
			}
			t.Cleanup(func() { l.Close() })
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}

// linkUp adds addrs (without duplicate address detection) to the link
// called name in the current thread's namespace and sets it up.
func linkUp(name string, addrs ...netip.Prefix) error {
	l, err := netlink.LinkByName(name)
	if err != nil {
		return fmt.Errorf("finding link %s: %w", name, err)
	}
	for _, a := range addrs {
		if err := netlink.AddrAdd(l, &netlink.Addr{IPNet: netipNet(a), Flags: unix.IFA_F_NODAD}); err != nil {
			return fmt.Errorf("adding %s to %s: %w", a, name, err)
		}
	}
	if err := netlink.LinkSetUp(l); err != nil {
		return fmt.Errorf("setting %s up: %w", name, err)
	}
	return nil
}

// newNetNS returns a descriptor of a new network namespace; the calling
// goroutine's namespace does not change.
func newNetNS() (int, error) {
	fd := -1
	err := onLockedThread(func() error {
		orig, err := unix.Open("/proc/thread-self/ns/net", unix.O_RDONLY|unix.O_CLOEXEC, 0)
		if err != nil {
			return err
		}
		defer unix.Close(orig)
		if err := unix.Unshare(unix.CLONE_NEWNET); err != nil {
			return fmt.Errorf("unshare: %w", err)
		}
		fd, err = unix.Open("/proc/thread-self/ns/net", unix.O_RDONLY|unix.O_CLOEXEC, 0)
		if rerr := unix.Setns(orig, unix.CLONE_NEWNET); rerr != nil {
			return fmt.Errorf("returning to the test's namespace: %w", rerr)
		}
		return err
	})
	return fd, err
}

// inNetNS runs f on a thread in namespace ns.
func inNetNS(ns int, f func() error) error {
	return onLockedThread(func() error {
		orig, err := unix.Open("/proc/thread-self/ns/net", unix.O_RDONLY|unix.O_CLOEXEC, 0)
		if err != nil {
			return err
		}
		defer unix.Close(orig)
		if err := unix.Setns(ns, unix.CLONE_NEWNET); err != nil {
			return fmt.Errorf("setns: %w", err)
		}
		ferr := f()
		if err := unix.Setns(orig, unix.CLONE_NEWNET); err != nil {
			return errors.Join(ferr, fmt.Errorf("returning to the test's namespace: %w", err))
		}
		return ferr
	})
}

// onLockedThread runs f on a goroutine locked to its thread. If f leaves
// the thread in another namespace (it failed to return), the thread dies
// with the goroutine instead of serving others.
func onLockedThread(f func() error) error {
	done := make(chan error, 1)
	go func() {
		runtime.LockOSThread()
		err := f()
		if err == nil {
			runtime.UnlockOSThread()
		}
		done <- err
	}()
	return <-done
}

// netCase is one destination and whether the policy denies it.
type netCase struct {
	name   string
	family int
	sotype int
	dest   netip.AddrPort
	denied bool
	rule   int
}

// netCases are the connects of the tests: loopback listeners (IPv4 and
// IPv6), the veth peer in its namespace, an IPv4-mapped IPv6 destination,
// and the edges of a port range.
func netCases(port uint16) []netCase {
	ap := func(s string, p uint16) netip.AddrPort { return netip.AddrPortFrom(netip.MustParseAddr(s), p) }
	tcp, udp := unix.SOCK_STREAM, unix.SOCK_DGRAM
	return []netCase{
		{"allowed IPv4 loopback", unix.AF_INET, tcp, ap("127.0.0.1", port), false, -1},
		{"denied IPv4 address", unix.AF_INET, tcp, ap("127.0.0.2", port), true, 0},
		{"denied IPv4 address over UDP", unix.AF_INET, udp, ap("127.0.0.2", port), true, 0},
		{"denied IPv4 CIDR", unix.AF_INET, tcp, ap("127.9.1.1", port), true, 1},
		{"allowed IPv6 loopback", unix.AF_INET6, tcp, ap("::1", port), false, -1},
		{"denied IPv6 address", unix.AF_INET6, tcp, ap("::2", port), true, 2},
		{"denied IPv6 address over UDP", unix.AF_INET6, udp, ap("::2", port), true, 2},
		{"IPv4-mapped IPv6 to a denied IPv4 address", unix.AF_INET6, tcp, ap("::ffff:127.0.0.2", port), true, 0},
		{"IPv4-mapped IPv6 over UDP", unix.AF_INET6, udp, ap("::ffff:127.9.0.1", port), true, 1},
		{"IPv4-mapped IPv6 to an allowed address", unix.AF_INET6, tcp, ap("::ffff:127.0.0.1", port), false, -1},
		{"veth peer, denied IPv4 CIDR", unix.AF_INET, tcp, netip.AddrPortFrom(peerDenied4, port), true, 4},
		{"veth peer, allowed IPv4", unix.AF_INET, tcp, netip.AddrPortFrom(peerAllow4, port), false, -1},
		{"veth peer, denied IPv6 CIDR", unix.AF_INET6, tcp, netip.AddrPortFrom(peerDenied6, port), true, 3},
		{"veth peer, allowed IPv6", unix.AF_INET6, tcp, netip.AddrPortFrom(peerAllow6, port), false, -1},
		{"port range, below", unix.AF_INET, tcp, ap("127.0.0.3", 7999), false, -1},
		{"port range, low edge", unix.AF_INET, tcp, ap("127.0.0.3", 8000), true, 5},
		{"port range, high edge", unix.AF_INET, tcp, ap("127.0.0.3", 8010), true, 5},
		{"port range, above", unix.AF_INET, tcp, ap("127.0.0.3", 8011), false, -1},
		{"port range, other protocol", unix.AF_INET, udp, ap("127.0.0.3", 8005), false, -1},
	}
}

// netFixture sets up listeners for every TCP case of netCases.
func netFixture(t *testing.T) uint16 {
	t.Helper()
	const port = 7000
	withLoopback6(t)
	vethPeer(t, port)
	// Every TCP destination of netCases listens, the denied ones too: a
	// refusal is then the policy's, never a missing listener's.
	for _, a := range []string{"127.0.0.1:7000", "[::1]:7000", "127.0.0.3:7999", "127.0.0.3:8011",
		"127.0.0.2:7000", "127.9.1.1:7000", "[::2]:7000", "127.0.0.3:8000", "127.0.0.3:8010"} {
		listen(t, netip.MustParseAddrPort(a))
	}
	return port
}

func TestNetworkDenyEnforce(t *testing.T) {
	e, _ := setup(t)
	port := netFixture(t)
	for _, c := range netCases(port) {
		wantAllowed(t, c.name+" without a policy", connectErr(c.family, c.sotype, c.dest))
	}
	inst := applyNet(t, e, false, netRules())
	for _, c := range netCases(port) {
		t.Run(c.name, func(t *testing.T) {
			err := connectErr(c.family, c.sotype, c.dest)
			if c.denied {
				wantDenied(t, "connect", err)
			} else {
				wantAllowed(t, "connect", err)
			}
		})
	}
	if n := sumPerCPU(t, inst, bpf.AegisMapDecisions, hookConnect*4+1); n < 10 {
		t.Errorf("connect deny decisions = %d, want >= 10", n)
	}
}

// TestNetworkUnconnectedSend: sendto and sendmsg on unconnected UDP
// sockets name their destination per datagram; a denied one is refused.
func TestNetworkUnconnectedSend(t *testing.T) {
	e, _ := setup(t)
	withLoopback6(t)
	inst := applyNet(t, e, false, netRules())
	ap := netip.MustParseAddrPort
	for _, c := range []struct {
		name   string
		family int
		dest   netip.AddrPort
		denied bool
	}{
		{"IPv4 allowed", unix.AF_INET, ap("127.0.0.1:9"), false},
		{"IPv4 denied", unix.AF_INET, ap("127.0.0.2:9"), true},
		{"IPv4 CIDR denied", unix.AF_INET, ap("127.9.200.1:9"), true},
		{"IPv6 allowed", unix.AF_INET6, ap("[::1]:9"), false},
		{"IPv6 denied", unix.AF_INET6, ap("[::2]:9"), true},
		{"IPv4-mapped denied", unix.AF_INET6, ap("[::ffff:127.0.0.2]:9"), true},
		{"IPv4-mapped allowed", unix.AF_INET6, ap("[::ffff:127.0.0.1]:9"), false},
	} {
		t.Run(c.name, func(t *testing.T) {
			for what, err := range map[string]error{"sendto": sendtoErr(c.family, c.dest), "sendmsg": sendmsgErr(c.family, c.dest)} {
				if c.denied {
					wantDenied(t, what, err)
				} else {
					wantAllowed(t, what, err)
				}
			}
		})
	}
	if n := sumPerCPU(t, inst, bpf.AegisMapDecisions, hookSendmsg*4+1); n < 8 {
		t.Errorf("sendmsg deny decisions = %d, want >= 8", n)
	}
}

// TestNetworkAuditMode: the same policy in audit mode lets every connect
// through and reports the would-be denials with address, port, protocol.
func TestNetworkAuditMode(t *testing.T) {
	e, _ := setup(t)
	port := netFixture(t)
	inst := applyNet(t, e, true, netRules())
	want := map[string]bool{}
	for _, c := range netCases(port) {
		wantAllowed(t, c.name+" (audit)", connectErr(c.family, c.sotype, c.dest))
		if c.denied {
			want[fmt.Sprintf("r%d %s", c.rule, c.dest)] = true
		}
	}
	for _, ev := range readEvents(t, inst) {
		if ev.Hook != hookConnect || ev.Action != 2 {
			continue
		}
		var ap netip.AddrPort
		switch ev.Family {
		case unix.AF_INET:
			ap = netip.AddrPortFrom(netip.AddrFrom4([4]byte(ev.Addr[:4])), ev.Port)
		case unix.AF_INET6:
			ap = netip.AddrPortFrom(netip.AddrFrom16(ev.Addr), ev.Port)
		}
		if ev.Protocol != protoTCP && ev.Protocol != protoUDP {
			t.Errorf("event for %s has protocol %d", ap, ev.Protocol)
		}
		delete(want, fmt.Sprintf("r%d %s", ev.Rule, ap))
	}
	for k := range want {
		t.Errorf("no audit event for %s", k)
	}
}

// TestNetworkScope: a rule scoped to a cgroup denies there only.
func TestNetworkScope(t *testing.T) {
	e, _ := setup(t)
	cg := filepath.Join("/sys/fs/cgroup", "aegis-net-scoped")
	if err := os.Mkdir(cg, 0o755); err != nil && !os.IsExist(err) {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.Remove(cg) })
	rs, err := engine.Resolve(engine.Spec{
		Enforce: true,
		Rules:   []engine.RuleSpec{{ID: "scoped", Only: []string{"/aegis-net-scoped"}}},
		Nets:    []engine.NetTarget{{Rule: 0, Prefix: netip.MustParsePrefix("127.0.0.2/32")}},
	}, engine.HostFS)
	if err != nil {
		t.Fatal(err)
	}
	inst, err := e.Apply(rs)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { inst.Close() })
	wantAllowed(t, "UDP connect outside the scope", connectErr(unix.AF_INET, unix.SOCK_DGRAM, netip.MustParseAddrPort("127.0.0.2:9")))
	fd, err := unix.Open(cg, unix.O_DIRECTORY|unix.O_RDONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer unix.Close(fd)
	cmd := helper("udp-connect", "127.0.0.2:9")
	cmd.SysProcAttr = &syscall.SysProcAttr{UseCgroupFD: true, CgroupFD: fd}
	if got := status(t, cmd); got != 13 {
		t.Errorf("UDP connect in the scoped cgroup: status %d, want 13 (EPERM)", got)
	}
}
