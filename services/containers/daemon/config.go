package daemon

import (
	"encoding/json"
	"flag"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/kantofw/kanto/services/internal/config"
)

// Config is the daemon configuration: upstream's JSON keys (container
// management §4), loaded as defaults < --cfg-file < explicit flags.
type Config struct {
	Log        LogConfig        `json:"log"`
	Manager    ManagerConfig    `json:"manager"`
	Containers ContainersConfig `json:"containers"`
	Network    NetworkConfig    `json:"network"`
	GRPCServer GRPCConfig       `json:"grpc_server"`
	Things     ThingsConfig     `json:"things"`
	UpdateAgt  UpdateAgent      `json:"update_agent"`
	Deployment DeployConfig     `json:"deployment"`
	Connection ConnConfig       `json:"connection"`
}

// LogConfig is the daemon's own log.
type LogConfig struct {
	File      string `json:"log_file"`
	Level     string `json:"log_level"`
	FileSize  int    `json:"log_file_size"`
	FileCount int    `json:"log_file_count"`
	MaxAge    int    `json:"log_file_max_age"`
	Syslog    bool   `json:"syslog"`
}

// ManagerConfig configures the container manager.
type ManagerConfig struct {
	HomeDir      string   `json:"home_dir"`
	ExecRootDir  string   `json:"exec_root_dir"`
	ContainerSID string   `json:"container_client_sid"`
	NetworkSID   string   `json:"network_manager_sid"`
	StopTimeout  Duration `json:"default_ctrs_stop_timeout"`
}

// RegistryConfig is one entry of containers.registry_configurations.
type RegistryConfig struct {
	Credentials struct {
		UserID   string `json:"user_id"`
		Password string `json:"password"`
	} `json:"credentials"`
	Transport struct {
		RootCA     string `json:"root_ca"`
		ClientCert string `json:"client_cert"`
		ClientKey  string `json:"client_key"`
	} `json:"transport"`
}

// ContainersConfig configures the containerd client.
type ContainersConfig struct {
	DefaultNS          string                    `json:"default_ns"`
	AddressPath        string                    `json:"address_path"`
	InsecureRegistries []string                  `json:"insecure_registries"`
	Registries         map[string]RegistryConfig `json:"registry_configurations"`
	ExecRootDir        string                    `json:"exec_root_dir"`
	HomeDir            string                    `json:"home_dir"`
	ImageDecKeys       []string                  `json:"image_dec_keys"`
	ImageDecRecipients []string                  `json:"image_dec_recipients"`
	RuncRuntime        string                    `json:"runc_runtime"`
	ImageExpiry        Duration                  `json:"image_expiry"`
	ImageExpiryDisable bool                      `json:"image_expiry_disable"`
	LeaseID            string                    `json:"lease_id"`
	ImageVerifierType  string                    `json:"image_verifier_type"`
	ImageVerifierCfg   map[string]string         `json:"image_verifier_config"`
}

// BridgeConfig is network.default_bridge.
type BridgeConfig struct {
	Name          string `json:"name"`
	Disable       bool   `json:"disable"`
	IP4           string `json:"ip4"`
	FixedCIDR4    string `json:"fcidr4"`
	GatewayIP4    string `json:"gwip4"`
	EnableIP6     bool   `json:"enable_ip6"`
	MTU           int    `json:"mtu"`
	ICC           bool   `json:"icc"`
	IPTables      bool   `json:"ip_tables"`
	IPForward     bool   `json:"ip_forward"`
	IPMasq        bool   `json:"ip_masq"`
	UserlandProxy bool   `json:"userland_proxy"`
}

// NetworkConfig configures the network manager.
type NetworkConfig struct {
	Type          string       `json:"type"`
	HomeDir       string       `json:"home_dir"`
	ExecRootDir   string       `json:"exec_root_dir"`
	DefaultBridge BridgeConfig `json:"default_bridge"`
	// CNIPluginDir is our addition: where the CNI plugins are.
	CNIPluginDir string `json:"cni_plugin_dir"`
}

// GRPCConfig is the local API endpoint.
type GRPCConfig struct {
	Protocol    string `json:"protocol"`
	AddressPath string `json:"address_path"`
}

// ThingsConfig configures the Ditto features.
type ThingsConfig struct {
	Enable   bool     `json:"enable"`
	HomeDir  string   `json:"home_dir"`
	Features []string `json:"features"`
}

// UpdateAgent configures the update-manager agent of the containers domain.
type UpdateAgent struct {
	Enable                 bool     `json:"enable"`
	Domain                 string   `json:"domain"`
	SystemContainers       []string `json:"system_containers"`
	VerboseInventoryReport bool     `json:"verbose_inventory_report"`
}

// DeployConfig configures deployment from descriptors.
type DeployConfig struct {
	Enable  bool   `json:"enable"`
	Mode    string `json:"mode"`
	HomeDir string `json:"home_dir"`
	CtrDir  string `json:"ctr_dir"`
}

// ConnConfig is the local broker connection.
type ConnConfig struct {
	BrokerURL          string   `json:"broker_url"`
	KeepAlive          Duration `json:"keep_alive"`
	DisconnectTimeout  Duration `json:"disconnect_timeout"`
	ClientUsername     string   `json:"client_username"`
	ClientPassword     string   `json:"client_password"`
	ConnectTimeout     Duration `json:"connect_timeout"`
	AcknowledgeTimeout Duration `json:"acknowledge_timeout"`
	SubscribeTimeout   Duration `json:"subscribe_timeout"`
	UnsubscribeTimeout Duration `json:"unsubscribe_timeout"`
	Transport          struct {
		RootCA     string `json:"root_ca"`
		ClientCert string `json:"client_cert"`
		ClientKey  string `json:"client_key"`
	} `json:"transport"`
}

// Defaults returns upstream's defaults, except for the bridge subnet, which
// upstream elects automatically and we take from network.default_bridge
// (fcidr4, else ip4), defaulting to 172.29.0.0/16.
func Defaults() Config {
	var c Config
	c.Log = LogConfig{File: "log/container-management.log", Level: "INFO", FileSize: 2, FileCount: 5, MaxAge: 28}
	c.Manager = ManagerConfig{
		HomeDir: "/var/lib/container-management", ExecRootDir: "/var/run/container-management",
		ContainerSID: "container-management.service.local.v1.service-containerd-client",
		NetworkSID:   "container-management.service.local.v1.service-libnetwork-manager",
		StopTimeout:  Duration(30 * time.Second),
	}
	c.Containers = ContainersConfig{
		DefaultNS: "kanto-cm", AddressPath: "/run/containerd/containerd.sock",
		InsecureRegistries: []string{"localhost"},
		ExecRootDir:        "/var/run/container-management", HomeDir: "/var/lib/container-management",
		RuncRuntime: "io.containerd.runc.v2", ImageExpiry: Duration(744 * time.Hour),
		LeaseID: "kanto-cm.lease", ImageVerifierType: "none",
	}
	c.Network = NetworkConfig{
		Type: "bridge", HomeDir: "/var/lib/container-management", ExecRootDir: "/var/run/container-management",
		DefaultBridge: BridgeConfig{Name: "kanto-cm0", MTU: 1500, ICC: true, IPTables: true, IPForward: true, IPMasq: true},
		CNIPluginDir:  "/usr/lib/cni",
	}
	c.GRPCServer = GRPCConfig{Protocol: "unix", AddressPath: "/run/container-management/container-management.sock"}
	c.Things = ThingsConfig{Enable: true, HomeDir: "/var/lib/container-management", Features: []string{"ContainerFactory", "SoftwareUpdatable", "Metrics"}}
	c.UpdateAgt = UpdateAgent{Domain: "containers"}
	c.Deployment = DeployConfig{Enable: true, Mode: "update", HomeDir: "/var/lib/container-management", CtrDir: "/etc/container-management/containers"}
	c.Connection = ConnConfig{
		BrokerURL: "tcp://localhost:1883", KeepAlive: Duration(20 * time.Second), DisconnectTimeout: Duration(250 * time.Millisecond),
		ConnectTimeout: Duration(30 * time.Second), AcknowledgeTimeout: Duration(15 * time.Second),
		SubscribeTimeout: Duration(15 * time.Second), UnsubscribeTimeout: Duration(5 * time.Second),
	}
	return c
}

// RegisterFlags binds upstream's flag names to c. The list flags split their
// values on commas and are repeatable, as upstream's pflag string slices are.
func (c *Config) RegisterFlags(fs *flag.FlagSet, cfgFile *string) {
	fs.StringVar(cfgFile, "cfg-file", "", "the container management configuration file (JSON)")
	fs.StringVar(&c.Log.File, "log-file", c.Log.File, "the daemon's log file")
	fs.StringVar(&c.Log.Level, "log-level", c.Log.Level, "log level: ERROR, WARN, INFO, DEBUG or TRACE")
	fs.IntVar(&c.Log.FileSize, "log-file-size", c.Log.FileSize, "log file size in MB before it is rotated")
	fs.IntVar(&c.Log.FileCount, "log-file-count", c.Log.FileCount, "rotated log files kept")
	fs.IntVar(&c.Log.MaxAge, "log-file-max-age", c.Log.MaxAge, "days a rotated log file is kept")
	fs.BoolVar(&c.Log.Syslog, "log-syslog", c.Log.Syslog, "log to syslog (ignored when a log file is set)")

	fs.StringVar(&c.Manager.HomeDir, "cm-home-dir", c.Manager.HomeDir, "container metadata directory")
	fs.StringVar(&c.Manager.ExecRootDir, "cm-exec-root-dir", c.Manager.ExecRootDir, "runtime directory (lock file)")
	fs.StringVar(&c.Manager.ContainerSID, "cm-cc-sid", c.Manager.ContainerSID, "container client service id (only one exists)")
	fs.StringVar(&c.Manager.NetworkSID, "cm-net-sid", c.Manager.NetworkSID, "network manager service id (only one exists)")
	fs.Var(&c.Manager.StopTimeout, "cm-deflt-ctrs-stop-timeout", "default timeout for stopping a container (duration, or seconds)")

	fs.StringVar(&c.Containers.DefaultNS, "ccl-default-ns", c.Containers.DefaultNS, "containerd namespace")
	fs.StringVar(&c.Containers.AddressPath, "ccl-ap", c.Containers.AddressPath, "containerd socket")
	fs.Var(&config.StringList{Values: &c.Containers.InsecureRegistries, CSV: true}, "ccl-insecure-registries", "registry host[:port] reached without TLS verification (comma-separated, repeatable)")
	fs.StringVar(&c.Containers.ExecRootDir, "ccl-exec-root-dir", c.Containers.ExecRootDir, "runtime directory of the containerd client")
	fs.StringVar(&c.Containers.HomeDir, "ccl-home-dir", c.Containers.HomeDir, "directory for container logs and files")
	fs.Var(&config.StringList{Values: &c.Containers.ImageDecKeys, CSV: true}, "ccl-image-dec-keys", "image decryption key path[:password] (comma-separated, repeatable; not supported yet)")
	fs.Var(&config.StringList{Values: &c.Containers.ImageDecRecipients, CSV: true}, "ccl-image-dec-recipients", "image decryption recipient (comma-separated, repeatable; not supported yet)")
	fs.StringVar(&c.Containers.RuncRuntime, "ccl-runc-runtime", c.Containers.RuncRuntime, "runc runtime: io.containerd.runc.v2, io.containerd.runc.v1 or io.containerd.runtime.v1.linux")
	fs.Var(&c.Containers.ImageExpiry, "ccl-image-expiry", "age after which unused images are removed")
	fs.BoolVar(&c.Containers.ImageExpiryDisable, "ccl-image-expiry-disable", c.Containers.ImageExpiryDisable, "never remove unused images automatically")
	fs.StringVar(&c.Containers.LeaseID, "ccl-lease-id", c.Containers.LeaseID, "containerd lease protecting the snapshots")
	fs.StringVar(&c.Containers.ImageVerifierType, "ccl-image-verifier-type", c.Containers.ImageVerifierType, "image signature verifier: none (notation is not supported)")
	fs.Var(kvFlag{&c.Containers.ImageVerifierCfg}, "ccl-image-verifier-config", "verifier settings k=v,k=v")

	fs.StringVar(&c.Network.Type, "net-type", c.Network.Type, "default network type")
	fs.StringVar(&c.Network.HomeDir, "net-home-dir", c.Network.HomeDir, "network data directory (IP leases)")
	fs.StringVar(&c.Network.ExecRootDir, "net-exec-root-dir", c.Network.ExecRootDir, "network runtime directory (namespaces)")
	b := &c.Network.DefaultBridge
	fs.StringVar(&b.Name, "net-br-name", b.Name, "bridge interface name")
	fs.BoolVar(&b.Disable, "net-tbr-disable", b.Disable, "accepted for compatibility; unused")
	fs.StringVar(&b.IP4, "net-br-ip4", b.IP4, "bridge address in CIDR form (its subnet is used when fcidr4 is empty)")
	fs.StringVar(&b.FixedCIDR4, "net-br-fcidr4", b.FixedCIDR4, "bridge subnet containers get addresses from (default 172.29.0.0/16)")
	fs.StringVar(&b.GatewayIP4, "net-br-gwip4", b.GatewayIP4, "accepted for compatibility; the gateway is the subnet's first address")
	fs.BoolVar(&b.EnableIP6, "net-br-enable-ip6", b.EnableIP6, "accepted for compatibility; IPv6 is not supported")
	fs.IntVar(&b.MTU, "net-br-mtu", b.MTU, "bridge MTU")
	fs.BoolVar(&b.ICC, "net-br-icc", b.ICC, "accepted for compatibility; containers on the bridge can always talk")
	fs.BoolVar(&b.IPTables, "net-br-ipt", b.IPTables, "accepted for compatibility")
	fs.BoolVar(&b.IPForward, "net-br-ipfw", b.IPForward, "accepted for compatibility; IP forwarding is never changed")
	fs.BoolVar(&b.IPMasq, "net-br-ipmasq", b.IPMasq, "masquerade container traffic leaving the bridge")
	fs.BoolVar(&b.UserlandProxy, "net-br-ulp", b.UserlandProxy, "accepted for compatibility; unused")
	fs.StringVar(&c.Network.CNIPluginDir, "net-cni-plugin-dir", c.Network.CNIPluginDir, "directory of the CNI plugins")

	fs.StringVar(&c.GRPCServer.Protocol, "grpc-serv-netp", c.GRPCServer.Protocol, "local API network: unix, tcp, tcp4, tcp6 or unixpacket")
	fs.StringVar(&c.GRPCServer.AddressPath, "grpc-serv-ap", c.GRPCServer.AddressPath, "local API address or socket path")

	fs.BoolVar(&c.Things.Enable, "things-enable", c.Things.Enable, "serve the Ditto features over the local broker")
	fs.StringVar(&c.Things.HomeDir, "things-home-dir", c.Things.HomeDir, "things data directory")
	fs.Var(&config.StringList{Values: &c.Things.Features, CSV: true}, "things-features", "features to serve: ContainerFactory, SoftwareUpdatable, Metrics (comma-separated, repeatable)")

	fs.BoolVar(&c.UpdateAgt.Enable, "ua-enable", c.UpdateAgt.Enable, "run the containers update agent (update-manager domain \"containers\")")
	fs.StringVar(&c.UpdateAgt.Domain, "ua-domain", c.UpdateAgt.Domain, "update agent domain")
	fs.Var(&config.StringList{Values: &c.UpdateAgt.SystemContainers, CSV: true}, "ua-system-containers", "system containers (comma-separated, repeatable)")
	fs.BoolVar(&c.UpdateAgt.VerboseInventoryReport, "ua-verbose-inventory-report", c.UpdateAgt.VerboseInventoryReport, "report all container parameters")

	fs.BoolVar(&c.Deployment.Enable, "deployment-enable", c.Deployment.Enable, "deploy containers from descriptors at start")
	fs.StringVar(&c.Deployment.Mode, "deployment-mode", c.Deployment.Mode, "init (first start only) or update (every start)")
	fs.StringVar(&c.Deployment.HomeDir, "deployment-home-dir", c.Deployment.HomeDir, "deployment data directory")
	fs.StringVar(&c.Deployment.CtrDir, "deployment-ctr-dir", c.Deployment.CtrDir, "directory of the *.json container descriptors")

	cc := &c.Connection
	fs.StringVar(&cc.BrokerURL, "conn-broker-url", cc.BrokerURL, "local MQTT broker")
	fs.Var(&cc.KeepAlive, "conn-keep-alive", "MQTT keep alive")
	fs.Var(&cc.DisconnectTimeout, "conn-disconnect-timeout", "MQTT disconnect timeout")
	fs.StringVar(&cc.ClientUsername, "conn-client-username", cc.ClientUsername, "MQTT user name")
	fs.StringVar(&cc.ClientPassword, "conn-client-password", cc.ClientPassword, "MQTT password")
	fs.Var(&cc.ConnectTimeout, "conn-connect-timeout", "MQTT connect timeout")
	fs.Var(&cc.AcknowledgeTimeout, "conn-ack-timeout", "MQTT acknowledge timeout")
	fs.Var(&cc.SubscribeTimeout, "conn-sub-timeout", "MQTT subscribe timeout")
	fs.Var(&cc.UnsubscribeTimeout, "conn-unsub-timeout", "MQTT unsubscribe timeout")
	fs.StringVar(&cc.Transport.RootCA, "conn-root-ca", "", "MQTT TLS root CA")
	fs.StringVar(&cc.Transport.ClientCert, "conn-client-cert", "", "MQTT TLS client certificate")
	fs.StringVar(&cc.Transport.ClientKey, "conn-client-key", "", "MQTT TLS client key")
}

// Validate applies upstream's start-up checks.
func (c *Config) Validate() error {
	switch c.Containers.RuncRuntime {
	case "io.containerd.runc.v2", "io.containerd.runc.v1", "io.containerd.runtime.v1.linux":
	default:
		return fmt.Errorf("unexpected runc runtime = %s: %w", c.Containers.RuncRuntime, config.ErrInvalid)
	}
	switch c.Containers.ImageVerifierType {
	case "none", "":
	case "notation":
		return fmt.Errorf("image verifier type notation is not supported: %w", config.ErrInvalid)
	default:
		return fmt.Errorf("unexpected image verifier type = %s: %w", c.Containers.ImageVerifierType, config.ErrInvalid)
	}
	switch c.GRPCServer.Protocol {
	case "unix", "tcp", "tcp4", "tcp6", "unixpacket":
	default:
		return fmt.Errorf("unsupported grpc_server.protocol %q: %w", c.GRPCServer.Protocol, config.ErrInvalid)
	}
	return nil
}

// Subnet is the bridge subnet: fcidr4, else the subnet of ip4, else
// 172.29.0.0/16.
func (b BridgeConfig) Subnet() string {
	if b.FixedCIDR4 != "" {
		return b.FixedCIDR4
	}
	if b.IP4 != "" {
		return b.IP4
	}
	return "172.29.0.0/16"
}

// Duration is a Go duration string in JSON and on the command line; a JSON
// number or a digits-only string means seconds (upstream's legacy form).
type Duration time.Duration

// UnmarshalJSON accepts "30s", 30 and "30".
func (d *Duration) UnmarshalJSON(b []byte) error {
	var n json.Number
	if err := json.Unmarshal(b, &n); err == nil {
		s, err := strconv.ParseInt(n.String(), 10, 64)
		if err != nil {
			return fmt.Errorf("duration %s: %w", b, config.ErrInvalid)
		}
		*d = Duration(time.Duration(s) * time.Second)
		return nil
	}
	var s string
	if err := json.Unmarshal(b, &s); err != nil {
		return fmt.Errorf("duration must be a string or a number, not %s: %w", b, config.ErrInvalid)
	}
	return d.Set(s)
}

// MarshalJSON writes the duration string.
func (d Duration) MarshalJSON() ([]byte, error) { return json.Marshal(d.String()) }

// Set parses a duration string or digits-only seconds.
func (d *Duration) Set(s string) error {
	if n, err := strconv.ParseInt(s, 10, 64); err == nil {
		*d = Duration(time.Duration(n) * time.Second)
		return nil
	}
	v, err := time.ParseDuration(s)
	if err != nil {
		return fmt.Errorf("invalid duration %q: %w", s, config.ErrInvalid)
	}
	*d = Duration(v)
	return nil
}

func (d Duration) String() string { return time.Duration(d).String() }

// kvFlag parses k=v,k=v into a map.
type kvFlag struct{ m *map[string]string }

func (k kvFlag) String() string {
	if k.m == nil || *k.m == nil {
		return ""
	}
	var parts []string
	for a, b := range *k.m {
		parts = append(parts, a+"="+b)
	}
	return strings.Join(parts, ",")
}

func (k kvFlag) Set(s string) error {
	m := map[string]string{}
	for _, p := range strings.Split(s, ",") {
		a, b, ok := strings.Cut(p, "=")
		if !ok {
			return fmt.Errorf("expected k=v, got %q", p)
		}
		m[a] = b
	}
	*k.m = m
	return nil
}
