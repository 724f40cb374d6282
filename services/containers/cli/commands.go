package cli

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"math"
	"os"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	ctrsvc "github.com/kantofw/kanto/services/containers/api/services/containers"
	imgsvc "github.com/kantofw/kanto/services/containers/api/services/images"
	pb "github.com/kantofw/kanto/services/containers/api/types/containers"
	"github.com/kantofw/kanto/services/containers/daemon"
	"github.com/kantofw/kanto/services/containers/model"
	"github.com/kantofw/kanto/services/containers/protoconv"
	"google.golang.org/protobuf/types/known/emptypb"
)

// selectContainer resolves the container from a positional id or --name.
func (a *app) selectContainer(ctx context.Context, args []string, name string) (*pb.Container, error) {
	switch {
	case len(args) == 0 && name == "":
		return nil, errors.New("You must provide either an ID or a name for the container via --name (-n) ")
	case len(args) > 0 && name != "":
		return nil, errors.New("Container ID and --name (-n) cannot be provided at the same time - use only one of them")
	case len(args) > 0:
		r, err := a.ctrs.Get(ctx, &ctrsvc.GetContainerRequest{Id: args[0]})
		if err != nil {
			return nil, err
		}
		if r.Container == nil {
			return nil, fmt.Errorf("The requested container with ID = %s was not found.", args[0])
		}
		return r.Container, nil
	}
	r, err := a.ctrs.List(ctx, &ctrsvc.ListContainersRequest{})
	if err != nil {
		return nil, err
	}
	var found []*pb.Container
	for _, c := range r.Containers {
		if c.Name == name {
			found = append(found, c)
		}
	}
	switch len(found) {
	case 0:
		return nil, fmt.Errorf("The requested container with name = %s was not found. Try using an ID instead.", name)
	case 1:
		return found[0], nil
	}
	return nil, fmt.Errorf("There are more than one containers with name = %s. Try using an ID instead.", name)
}

type createFlags struct {
	name, network, rp, logDriver, logMaxSize, logPath, logMode, logMaxBuf string
	memory, memRes, memSwap, file                                         string
	tty, interactive, privileged                                          bool
	rpCnt, logMaxFiles                                                    int
	rpTo                                                                  int64
	devices, ports, hosts, mounts, env, decKeys, decRecipients, caps      []string
}

func createCommand() *command { return createCommandWith(&createFlags{}) }

// createCommandWith binds the create flags to f (tests read them back).
func createCommandWith(fp *createFlags) *command {
	f := fp
	var fsRef *flagSet
	return &command{
		name: "create", short: "Create a container from an image, or from a JSON description.", noInterspersed: true,
		use:     "create [option]... container-image-id [command] [command-arg]...",
		example: "  create docker.io/library/busybox:latest\n  create -n web --ports 8080:80 docker.io/library/httpd:latest\n  create -f container.json",
		flags: func(fs *flagSet) {
			fsRef = fs
			fs.String(&f.name, "name", "n", "", "Name for the new container: a letter, digit or underscore first, then also dots and hyphens.")
			fs.Bool(&f.tty, "t", "", false, "Give the container a pseudo-terminal")
			fs.Bool(&f.interactive, "i", "", false, "Keep the container's standard input open (see start --i)")
			fs.Bool(&f.privileged, "privileged", "", false, "Run the container with all privileges and host devices")
			fs.String(&f.rp, "rp", "", "", "Restart policy: no, always, unless-stopped (the daemon default) or on-failure.\nno - never restart\nalways - restart whenever the container exits (a manual stop is respected)\nunless-stopped - restart unless the container was stopped by the user\non-failure - restart when the exit code is not 0; --rp-cnt and --rp-to apply to this policy only")
			fs.Int(&f.rpCnt, "rp-cnt", "", 1, "Maximum number of restarts for the on-failure policy (0 means no limit)")
			fs.Int64(&f.rpTo, "rp-to", "", 30, "Upper bound in seconds of the delay between restarts for the on-failure policy")
			fs.StringSlice(&f.devices, "devices", "", "Host devices to expose, host-path:container-path[:perms] with perms from r, w, m (default rwm).\nExample: --devices=/dev/ttyACM0:/dev/ttyUSB0:rw")
			fs.StringSlice(&f.ports, "ports", "", "Ports to publish, [host-ip:]host-port[-host-port-end]:container-port[/proto] (proto tcp by default).\nExamples: --ports=80:80  --ports=127.0.0.1:8080:80/tcp  --ports=5000-6000:80/udp")
			fs.String(&f.network, "network", "", "bridge", "Network mode:\nbridge - attach the container to the engine's bridge network with its own IP (default)\nhost - share the host's network stack (no isolation)")
			fs.StringSlice(&f.hosts, "hosts", "", "Extra /etc/hosts entries name:value; value is an IP, host_ip (the bridge's address),\nhost_ip_<iface> (the host's address on iface) or container_<host-name> (a bridged container's IP)")
			fs.StringSlice(&f.mounts, "mp", "", "Bind mounts source:destination[:propagation], propagation one of rprivate (default), private,\nrshared, shared, rslave, slave")
			fs.StringArray(&f.env, "e", "", "Environment variable VAR=value (repeatable); VAR= sets it empty, VAR alone removes it from the image's environment")
			fs.String(&f.logDriver, "log-driver", "", "json-file", "Log driver: json-file or none")
			fs.Int(&f.logMaxFiles, "log-max-files", "", 2, "Number of log files kept, the current one included (json-file only)")
			fs.String(&f.logMaxSize, "log-max-size", "", "100M", "Size at which the log file is rotated, such as 512k, 1.5M, 1G (json-file only)")
			fs.String(&f.logPath, "log-path", "", "", "Directory for the log files (json-file only); a per-container subdirectory is used")
			fs.String(&f.logMode, "log-mode", "", "blocking", "Log mode: blocking or non-blocking")
			fs.String(&f.logMaxBuf, "log-max-buffer-size", "", "1M", "Buffer size for the non-blocking mode, such as 1M")
			fs.String(&f.memory, "memory", "m", "", "Memory limit such as 200M or 1.2G (at least 3M); no limit by default")
			fs.String(&f.memRes, "memory-reservation", "", "", "Soft memory limit, lower than --memory")
			fs.String(&f.memSwap, "memory-swap", "", "", "Memory plus swap limit, at least --memory; twice --memory when only --memory is set; -1 for unlimited swap")
			fs.StringSlice(&f.decKeys, "dec-keys", "", "Image decryption keys path[:password] (not supported by this daemon yet)")
			fs.StringSlice(&f.decRecipients, "dec-recipients", "", "Image decryption recipients (not supported by this daemon yet)")
			fs.StringSlice(&f.caps, "cap-add", "", "Add Linux capabilities, such as CAP_NET_ADMIN")
			fs.String(&f.file, "file", "f", "", "Create the container from a JSON file in the container-management format; no other flags allowed")
		},
		run: func(ctx context.Context, a *app, args []string) error {
			var c *model.Container
			if f.file != "" {
				others := 0
				fsRef.Visit(func(fl *flag.Flag) {
					if fl.Name != "file" && fl.Name != "f" && fl.Name != "host" && fl.Name != "timeout" && fl.Name != "debug" {
						others++
					}
				})
				if others > 0 {
					return errors.New("no other flags are expected when creating a container from file")
				}
				if len(args) > 0 {
					return errors.New("no arguments are expected when creating a container from file")
				}
				data, err := os.ReadFile(f.file)
				if err != nil {
					return err
				}
				if c, err = model.Decode(f.file, data); err != nil {
					return err
				}
			} else {
				if len(args) == 0 {
					return errors.New("container image argument is expected")
				}
				var err error
				if c, err = f.container(fsRef, args); err != nil {
					return err
				}
			}
			check := c.Clone()
			model.FillDefaults(check)
			model.FillMemorySwap(check)
			if err := model.Validate(check); err != nil {
				return err
			}
			a.pull(ctx, c.Image.Name)
			r, err := a.ctrs.Create(ctx, &ctrsvc.CreateContainerRequest{Container: protoconv.ToProto(c)})
			if err != nil {
				return err
			}
			fmt.Fprintln(a.out(), r.Container.Id)
			return nil
		},
	}
}

func (f *createFlags) container(fs *flagSet, args []string) (*model.Container, error) {
	if f.privileged && f.devices != nil {
		return nil, errors.New("cannot create the container as privileged and with specified devices at the same time - choose one of the options")
	}
	if f.privileged && f.caps != nil {
		return nil, errors.New("cannot create the container as privileged and with extra capabilities at the same time - choose one of the options")
	}
	c := &model.Container{
		Name:  f.name,
		Image: model.Image{Name: args[0]},
		HostConfig: &model.HostConfig{
			Privileged: f.privileged, ExtraHosts: f.hosts, ExtraCapabilities: f.caps, NetworkMode: f.network,
		},
		IOConfig: &model.IOConfig{Tty: f.tty, OpenStdin: f.interactive},
	}
	if f.env != nil || len(args) > 1 {
		c.Config = &model.ContainerConfiguration{Env: f.env}
		if len(args) > 1 {
			c.Config.Cmd = args[1:]
		}
	}
	for _, d := range f.devices {
		dm, err := model.ParseDevice(d)
		if err != nil {
			return nil, err
		}
		c.HostConfig.Devices = append(c.HostConfig.Devices, dm)
	}
	for _, m := range f.mounts {
		mp, err := model.ParseMount(m)
		if err != nil {
			return nil, err
		}
		c.Mounts = append(c.Mounts, mp)
	}
	for _, p := range f.ports {
		pm, err := model.ParsePort(p)
		if err != nil {
			return nil, err
		}
		c.HostConfig.PortMappings = append(c.HostConfig.PortMappings, pm)
	}
	switch f.rp {
	case model.RestartAlways, model.RestartNo, model.RestartUnlessStopped:
		c.HostConfig.RestartPolicy = &model.RestartPolicy{Type: f.rp}
	case model.RestartOnFailure:
		c.HostConfig.RestartPolicy = &model.RestartPolicy{Type: f.rp, MaximumRetryCount: f.rpCnt, RetryTimeout: time.Duration(f.rpTo) * time.Second}
	case "":
	default:
		c.HostConfig.RestartPolicy = &model.RestartPolicy{Type: f.rp}
	}
	lc := &model.LogConfiguration{}
	switch f.logDriver {
	case model.LogDriverJSONFile:
		lc.DriverConfig = &model.LogDriverConfiguration{Type: f.logDriver, MaxFiles: f.logMaxFiles, MaxSize: f.logMaxSize, RootDir: f.logPath}
	case model.LogDriverNone:
		lc.DriverConfig = &model.LogDriverConfiguration{Type: f.logDriver}
	default:
		lc.DriverConfig = &model.LogDriverConfiguration{Type: f.logDriver}
	}
	switch f.logMode {
	case model.LogModeNonBlock:
		lc.ModeConfig = &model.LogModeConfiguration{Mode: f.logMode, MaxBufferSize: f.logMaxBuf}
	default:
		lc.ModeConfig = &model.LogModeConfiguration{Mode: f.logMode}
	}
	c.HostConfig.LogConfig = lc
	if f.memory != "" || f.memRes != "" || f.memSwap != "" {
		c.HostConfig.Resources = &model.Resources{Memory: f.memory, MemoryReservation: f.memRes, MemorySwap: f.memSwap}
	}
	if len(f.decKeys) > 0 || len(f.decRecipients) > 0 {
		c.Image.DecryptConfig = &model.DecryptConfig{Keys: f.decKeys, Recipients: f.decRecipients}
	}
	return c, nil
}

// pull shows pull progress on stderr before Create (which would pull
// silently). An upstream daemon has no image service; then nothing shows.
func (a *app) pull(ctx context.Context, ref string) {
	st, err := a.imgs.Pull(ctx, &imgsvc.PullRequest{Name: ref})
	if err != nil {
		return
	}
	for {
		p, err := st.Recv()
		if err != nil {
			return // the error, if any, comes again from Create
		}
		fmt.Fprintln(a.env.Stderr, p.Line)
	}
}

func getCommand() *command {
	var name string
	return &command{
		name: "get", short: "Print a container's configuration and state as JSON.", use: "get <container-id>", nargs: atMost(1),
		example: "  get <container-id>\n  get --name <container-name>",
		flags: func(fs *flagSet) {
			fs.String(&name, "name", "n", "", "Select the container by name instead of by ID.")
		},
		run: func(ctx context.Context, a *app, args []string) error {
			c, err := a.selectContainer(ctx, args, name)
			if err != nil {
				return err
			}
			b, err := json.MarshalIndent(protoconv.FromProto(c), "", "   ")
			if err != nil {
				return err
			}
			fmt.Fprintln(a.out(), string(b))
			return nil
		},
	}
}

const tableRow = "%-37s\t%-37s\t%-60s\t%-10s\t%-32s\t%-10s\t\n"

func listCommand() *command {
	var name string
	var quiet bool
	var filters []string
	return &command{
		name: "list", short: "Show the containers in a table.", use: "list", nargs: noArgs,
		example: "  list\n  list --name <container-name>\n  list --quiet\n  list --filter status=created",
		flags: func(fs *flagSet) {
			fs.String(&name, "name", "n", "", "Show only the containers with this name.")
			fs.Bool(&quiet, "quiet", "q", false, "Print only the IDs, on one line.")
			fs.StringSlice(&filters, "filter", "", "List only containers matching filters: status=<status>, image=<image>, exitcode=<code> (comma separated or repeated).")
		},
		run: func(ctx context.Context, a *app, args []string) error {
			r, err := a.ctrs.List(ctx, &ctrsvc.ListContainersRequest{})
			if err != nil {
				return err
			}
			var ctrs []*model.Container
			for _, p := range r.Containers {
				if name == "" || p.Name == name {
					ctrs = append(ctrs, protoconv.FromProto(p))
				}
			}
			if ctrs, err = filterContainers(filters, ctrs); err != nil {
				return err
			}
			w := a.out()
			if quiet {
				ids := make([]string, len(ctrs))
				for i, c := range ctrs {
					ids[i] = c.ID
				}
				if len(ids) > 0 {
					fmt.Fprintln(w, strings.Join(ids, " "))
				}
				return nil
			}
			if len(ctrs) == 0 {
				fmt.Fprintln(w, "No containers found.")
				return nil
			}
			tw := tabwriter.NewWriter(w, 8, 8, 0, '\t', tabwriter.Debug)
			fmt.Fprintln(tw, "")
			fmt.Fprintf(tw, tableRow, "ID", "Name", "Image", "Status", "Finished At", "Exit Code")
			fmt.Fprintf(tw, tableRow, strings.Repeat("-", 37), strings.Repeat("-", 37), strings.Repeat("-", 60), strings.Repeat("-", 10), strings.Repeat("-", 30), strings.Repeat("-", 10))
			for _, c := range ctrs {
				fmt.Fprintf(tw, tableRow, c.ID, c.Name, c.Image.Name, c.State.Status.String(), c.State.FinishedAt, strconv.FormatInt(c.State.ExitCode, 10))
			}
			fmt.Fprintln(tw, "")
			return tw.Flush()
		},
	}
}

func filterContainers(filters []string, ctrs []*model.Container) ([]*model.Container, error) {
	if len(filters) == 0 {
		return ctrs, nil
	}
	var st, img string
	code := int64(-1)
	for _, f := range filters {
		k, v, _ := strings.Cut(f, "=")
		switch k {
		case "status":
			st = v
		case "image":
			img = v
		case "exitcode":
			n, err := strconv.Atoi(v)
			if err != nil {
				return nil, err
			}
			code = int64(n)
		default:
			return nil, fmt.Errorf("no filter: %s", k)
		}
	}
	out := []*model.Container{}
	for _, c := range ctrs {
		if st != "" && !strings.EqualFold(c.State.Status.String(), st) {
			continue
		}
		if img != "" && !strings.EqualFold(c.Image.Name, img) {
			continue
		}
		if code != -1 && c.State.ExitCode != code {
			continue
		}
		out = append(out, c)
	}
	return out, nil
}

func logsCommand() *command {
	var name string
	var tail int32
	return &command{
		name: "logs", short: "Print the log entries a container wrote.", use: "logs <container-id>", nargs: atMost(1),
		example: "  logs <container-id>\n  logs --name <container-name>\n  logs --tail 10 <container-id>",
		flags: func(fs *flagSet) {
			fs.String(&name, "name", "n", "", "Select the container by name instead of by ID.")
			fs.Int32(&tail, "tail", "t", 100, "Number of lines from the end of the logs; -1 for all.")
		},
		run: func(ctx context.Context, a *app, args []string) error {
			c, err := a.selectContainer(ctx, args, name)
			if err != nil {
				return err
			}
			st, err := a.ctrs.Logs(ctx, &ctrsvc.GetLogsRequest{Id: c.Id, Tail: tail})
			if err != nil {
				return err
			}
			for {
				r, err := st.Recv()
				if errors.Is(err, io.EOF) {
					return nil
				}
				if err != nil {
					return err
				}
				fmt.Fprintln(a.out(), r.Log)
			}
		},
	}
}

func removeCommand() *command {
	var name, timeout string
	var force bool
	return &command{
		name: "remove", short: "Remove one or more containers.", use: "remove <container-id>...",
		example: "  remove <container-id>\n  remove --name <container-name>\n  remove -f <container-id> <container-id>",
		flags: func(fs *flagSet) {
			fs.String(&name, "name", "n", "", "Select the container by name instead of by ID.")
			fs.Bool(&force, "force", "f", false, "Force the removal of a running or paused container (it is stopped first).")
			fs.String(&timeout, "time", "t", "", "Time to wait for the container to stop before it is killed, such as 10s (only with --force).")
		},
		run: func(ctx context.Context, a *app, args []string) error {
			// --time applies to a forced removal only; without --force it
			// is ignored, as upstream does.
			var opts *pb.StopOptions
			if force {
				opts = &pb.StopOptions{Force: true, Signal: "SIGTERM"}
				if timeout != "" {
					d, err := time.ParseDuration(timeout)
					if err != nil {
						return err
					}
					opts.Timeout = int64(d.Round(time.Second) / time.Second)
				}
			}
			remove := func(sel []string) error {
				c, err := a.selectContainer(ctx, sel, name)
				if err != nil {
					return err
				}
				_, err = a.ctrs.Remove(ctx, &ctrsvc.RemoveContainerRequest{Id: c.Id, Force: force, StopOptions: opts})
				return err
			}
			if len(args) == 0 {
				return remove(nil)
			}
			// Each argument is tried; the failures are reported together.
			var errs []error
			for _, id := range args {
				if err := remove([]string{id}); err != nil {
					errs = append(errs, err)
				}
			}
			return removeErrors(errs)
		},
	}
}

// removeErrors reports the failures of a removal of several containers the
// way upstream does: one failure as it is, several as a list under a
// heading.
func removeErrors(errs []error) error {
	switch len(errs) {
	case 0:
		return nil
	case 1:
		return errs[0]
	}
	lines := make([]string, len(errs))
	for i, err := range errs {
		lines[i] = "* " + message(err)
	}
	return fmt.Errorf("containers couldn't be removed due to the following reasons: \n\n%s", strings.Join(lines, "\n"))
}

func renameCommand() *command {
	var name string
	return &command{
		name: "rename", short: "Give a container a new name.", use: "rename <container-id> <new-name>", nargs: atMost(2),
		example: "  rename <container-id> <new-name>\n  rename --name <container-name> <new-name>",
		flags:   func(fs *flagSet) { fs.String(&name, "name", "n", "", "Select the container by name instead of by ID.") },
		run: func(ctx context.Context, a *app, args []string) error {
			var sel []string
			var newName string
			switch {
			case name != "" && len(args) == 1:
				newName = args[0]
			case name == "" && len(args) == 2:
				sel, newName = args[:1], args[1]
			default:
				return errors.New("a container (ID or --name) and a new name are expected")
			}
			c, err := a.selectContainer(ctx, sel, name)
			if err != nil {
				return err
			}
			if err := model.ValidateName(newName); err != nil {
				return err
			}
			if newName == c.Name {
				return fmt.Errorf("the new name = %s shouldn't be the same", newName)
			}
			_, err = a.ctrs.Rename(ctx, &ctrsvc.RenameContainerRequest{Id: c.Id, Name: newName})
			return err
		},
	}
}

func startCommand() *command {
	var name string
	var attach, interactive bool
	return &command{
		name: "start", short: "Start a created or stopped container.", use: "start <container-id>", nargs: atMost(1),
		example: "  start <container-id>\n  start --name <container-name>\n  start --a <container-id>",
		flags: func(fs *flagSet) {
			fs.String(&name, "name", "n", "", "Select the container by name instead of by ID.")
			fs.Bool(&attach, "a", "", false, "Attach to the container's STDOUT and STDERR and print its output until it stops.")
			fs.Bool(&interactive, "i", "", false, "Attach to the container's STDIN (the container must be created with --i); output is shown too.")
		},
		run: func(ctx context.Context, a *app, args []string) error {
			c, err := a.selectContainer(ctx, args, name)
			if err != nil {
				return err
			}
			switch model.ParseStatus(c.State.GetStatus()) {
			case model.Dead:
				return fmt.Errorf("the container with ID = %s is dead and to be removed - cannot start it", c.Id)
			case model.Running:
				return fmt.Errorf("the container with ID = %s is already running - cannot start it again", c.Id)
			case model.Paused:
				return fmt.Errorf("the container with ID = %s is paused - cannot start it - use unpause instead", c.Id)
			}
			if !attach && !interactive {
				_, err := a.ctrs.Start(ctx, &ctrsvc.StartContainerRequest{Id: c.Id})
				return err
			}
			actx, cancel := context.WithCancel(ctx)
			defer cancel()
			st, err := a.ctrs.Attach(actx)
			if err != nil {
				return err
			}
			if err := st.Send(&ctrsvc.AttachContainerRequest{Id: c.Id, StdIn: interactive}); err != nil {
				return err
			}
			// Our daemon confirms the attach in the headers; an upstream one
			// may not send them before output, so wait only briefly.
			hdr := make(chan struct{})
			go func() { _, _ = st.Header(); close(hdr) }()
			select {
			case <-hdr:
			case <-time.After(2 * time.Second):
			}
			done := make(chan error, 1)
			go func() {
				for {
					r, err := st.Recv()
					if err != nil {
						if errors.Is(err, io.EOF) {
							err = nil
						}
						done <- err
						return
					}
					if len(r.ReadData) == 0 {
						done <- nil
						return
					}
					_, _ = a.out().Write(r.ReadData)
				}
			}()
			if interactive && c.GetIoConfig().GetOpenStdin() {
				// Owned by the attach: ends at stdin EOF or when the stream ends.
				go func() {
					buf := make([]byte, 32<<10)
					for {
						n, err := a.env.Stdin.Read(buf)
						if n > 0 {
							if st.Send(&ctrsvc.AttachContainerRequest{Id: c.Id, DataToWrite: append([]byte(nil), buf[:n]...)}) != nil {
								return
							}
						}
						if err != nil {
							_ = st.Send(&ctrsvc.AttachContainerRequest{Id: c.Id, FinishWrite: true})
							return
						}
					}
				}()
			}
			if _, err := a.ctrs.Start(ctx, &ctrsvc.StartContainerRequest{Id: c.Id}); err != nil {
				return err
			}
			return <-done
		},
	}
}

func stopCommand() *command {
	var name, timeout, signal string
	var force bool
	return &command{
		name: "stop", short: "Stop a running or paused container.", use: "stop <container-id>", nargs: atMost(1),
		example: "  stop <container-id>\n  stop --name <container-name>\n  stop -s SIGKILL <container-id>",
		flags: func(fs *flagSet) {
			fs.String(&name, "name", "n", "", "Select the container by name instead of by ID.")
			fs.String(&timeout, "time", "t", "", "Time to wait for the container to stop, such as 15s; the daemon's default when empty.")
			fs.Bool(&force, "force", "f", false, "Kill the container (SIGKILL) if it has not stopped within the time.")
			fs.String(&signal, "signal", "s", "SIGTERM", "Signal to stop the container with, by name or number.")
		},
		run: func(ctx context.Context, a *app, args []string) error {
			opts := &model.StopOptions{Force: force, Signal: signal}
			if timeout != "" {
				d, err := time.ParseDuration(timeout)
				if err != nil {
					return err
				}
				opts.Timeout = int64(d.Round(time.Second) / time.Second)
			}
			if err := model.ValidateStopOptions(opts); err != nil {
				return err
			}
			c, err := a.selectContainer(ctx, args, name)
			if err != nil {
				return err
			}
			_, err = a.ctrs.Stop(ctx, &ctrsvc.StopContainerRequest{Id: c.Id, StopOptions: protoconv.StopOptionsToProto(opts)})
			return err
		},
	}
}

func updateCommand() *command {
	var name, rp, mem, memRes, memSwap string
	var rpCnt int
	var rpTo int64
	var fsRef *flagSet
	return &command{
		name: "update", short: "Change the restart policy or memory limits of a container.", use: "update <container-id>", nargs: atMost(1),
		example: "  update <container-id> --rp always\n  update --name <container-name> -m 200M",
		flags: func(fs *flagSet) {
			fsRef = fs
			fs.String(&name, "name", "n", "", "Select the container by name instead of by ID.")
			fs.String(&rp, "rp", "", "", "New restart policy: no, always, unless-stopped or on-failure; unchanged when empty.")
			fs.Int(&rpCnt, "rp-cnt", "", math.MinInt32, "Maximum restarts for the on-failure policy; the current value when not given.")
			fs.Int64(&rpTo, "rp-to", "", math.MinInt64, "Upper bound in seconds of the delay between restarts for on-failure; the current value when not given.")
			fs.String(&mem, "memory", "m", "", "Memory limit such as 200M; -1 removes the limit.")
			fs.String(&memRes, "memory-reservation", "", "", "Soft memory limit; -1 removes it.")
			fs.String(&memSwap, "memory-swap", "", "", "Memory plus swap limit; -1 removes it.")
		},
		run: func(ctx context.Context, a *app, args []string) error {
			c, err := a.selectContainer(ctx, args, name)
			if err != nil {
				return err
			}
			cur := protoconv.FromProto(c)
			opts := &ctrsvc.UpdateContainerRequest{Id: c.Id, UpdateOptions: &pb.UpdateOptions{}}
			if fsRef.Changed("rp") || fsRef.Changed("rp-cnt") || fsRef.Changed("rp-to") {
				pol := model.RestartPolicy{Type: rp}
				if cur.HostConfig != nil && cur.HostConfig.RestartPolicy != nil {
					if pol.Type == "" {
						pol.Type = cur.HostConfig.RestartPolicy.Type
					}
					if pol.Type == model.RestartOnFailure && cur.HostConfig.RestartPolicy.Type == model.RestartOnFailure {
						pol.MaximumRetryCount = cur.HostConfig.RestartPolicy.MaximumRetryCount
						pol.RetryTimeout = cur.HostConfig.RestartPolicy.RetryTimeout
					}
				}
				if pol.Type == model.RestartOnFailure {
					if rpCnt != math.MinInt32 {
						pol.MaximumRetryCount = rpCnt
					}
					if rpTo != math.MinInt64 {
						pol.RetryTimeout = time.Duration(rpTo) * time.Second
					}
				}
				if err := model.ValidateRestartPolicy(&pol); err != nil {
					return err
				}
				opts.UpdateOptions.RestartPolicy = protoconv.RestartPolicyToProto(&pol)
			}
			if fsRef.Changed("memory") || fsRef.Changed("memory-reservation") || fsRef.Changed("memory-swap") {
				r := model.Resources{}
				if cur.HostConfig != nil && cur.HostConfig.Resources != nil {
					r = *cur.HostConfig.Resources
				}
				set := func(dst *string, v, flagName string) {
					if fsRef.Changed(flagName) {
						if v == "-1" {
							*dst = ""
						} else {
							*dst = v
						}
					}
				}
				set(&r.Memory, mem, "memory")
				set(&r.MemoryReservation, memRes, "memory-reservation")
				set(&r.MemorySwap, memSwap, "memory-swap")
				if err := model.ValidateResources(&r); err != nil {
					return err
				}
				opts.UpdateOptions.Resources = protoconv.ResourcesToProto(&r)
			}
			_, err = a.ctrs.Update(ctx, opts)
			return err
		},
	}
}

func sysinfoCommand() *command {
	return &command{
		name: "sysinfo", short: "Show information about the container management engine and this CLI.", use: "sysinfo", nargs: noArgs,
		run: func(ctx context.Context, a *app, _ []string) error {
			r, err := a.sys.ProjectInfo(ctx, &emptypb.Empty{})
			if err != nil {
				return err
			}
			p := r.ProjectInfo
			fmt.Fprintf(a.out(), "Engine v%s, API v%s, (build %s %s) \n", p.GetProjectVersion(), p.GetApiVersion(), p.GetGitCommit(), p.GetBuildTime())
			fmt.Fprintf(a.out(), "CLI v%s, API v%s, (build %s %s) \n", daemon.Version, daemon.APIVersion, daemon.GitCommit, daemon.BuildTime)
			return nil
		},
	}
}

func pauseCommand() *command {
	var name string
	return &command{
		name: "pause", short: "Pause a running container (extension: upstream has it in the API only).", use: "pause <container-id>", nargs: atMost(1),
		flags: func(fs *flagSet) { fs.String(&name, "name", "n", "", "Select the container by name instead of by ID.") },
		run: func(ctx context.Context, a *app, args []string) error {
			c, err := a.selectContainer(ctx, args, name)
			if err != nil {
				return err
			}
			_, err = a.ctrs.Pause(ctx, &ctrsvc.PauseContainerRequest{Id: c.Id})
			return err
		},
	}
}

func unpauseCommand() *command {
	var name string
	return &command{
		name: "unpause", short: "Unpause a paused container (extension: upstream has it in the API only).", use: "unpause <container-id>", nargs: atMost(1),
		flags: func(fs *flagSet) { fs.String(&name, "name", "n", "", "Select the container by name instead of by ID.") },
		run: func(ctx context.Context, a *app, args []string) error {
			c, err := a.selectContainer(ctx, args, name)
			if err != nil {
				return err
			}
			_, err = a.ctrs.Unpause(ctx, &ctrsvc.UnpauseContainerRequest{Id: c.Id})
			return err
		},
	}
}

func pullCommand() *command {
	return &command{
		name: "pull", short: "Pull an image, showing progress (extension).", use: "pull <image>",
		run: func(ctx context.Context, a *app, args []string) error {
			if len(args) != 1 {
				return errors.New("exactly one image reference is expected")
			}
			st, err := a.imgs.Pull(ctx, &imgsvc.PullRequest{Name: args[0]})
			if err != nil {
				return err
			}
			for {
				p, err := st.Recv()
				if errors.Is(err, io.EOF) {
					return nil
				}
				if err != nil {
					return err
				}
				fmt.Fprintln(a.out(), p.Line)
			}
		},
	}
}

func importCommand() *command {
	return &command{
		name: "import", short: "Import an OCI or docker image archive from the daemon's file system (extension).", use: "import <archive.tar>",
		run: func(ctx context.Context, a *app, args []string) error {
			if len(args) != 1 {
				return errors.New("exactly one archive path is expected")
			}
			r, err := a.imgs.Import(ctx, &imgsvc.ImportRequest{Path: args[0]})
			if err != nil {
				return err
			}
			for _, n := range r.Names {
				fmt.Fprintln(a.out(), n)
			}
			return nil
		},
	}
}

func pruneCommand() *command {
	return &command{
		name: "prune", short: "Remove the images no container uses (extension).", use: "prune", nargs: noArgs,
		run: func(ctx context.Context, a *app, _ []string) error {
			r, err := a.imgs.Prune(ctx, &imgsvc.PruneRequest{})
			if err != nil {
				return err
			}
			for _, n := range r.Removed {
				fmt.Fprintln(a.out(), "removed "+n)
			}
			return nil
		},
	}
}

func imagesCommand() *command {
	return &command{
		name: "images", short: "List the images (extension).", use: "images", nargs: noArgs,
		run: func(ctx context.Context, a *app, _ []string) error {
			r, err := a.imgs.List(ctx, &imgsvc.ListImagesRequest{})
			if err != nil {
				return err
			}
			for _, n := range r.Names {
				fmt.Fprintln(a.out(), n)
			}
			return nil
		},
	}
}
