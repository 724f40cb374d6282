package daemon

import (
	"context"
	"crypto/tls"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"

	ctrsvc "github.com/kantofw/kanto/services/containers/api/services/containers"
	cua "github.com/kantofw/kanto/services/containers/updateagent"
	"github.com/kantofw/kanto/services/internal/mqtt"
	"github.com/kantofw/kanto/services/internal/store"
	iua "github.com/kantofw/kanto/services/internal/updateagent"
)

// startUpdateAgent runs the containers domain agent of the update manager
// (package services/containers/updateagent) when update_agent.enable is set.
// It talks to this daemon through its own gRPC API. The returned function
// stops it and waits.
func startUpdateAgent(ctx context.Context, cfg Config, log *slog.Logger) (func(), error) {
	target := cfg.GRPCServer.AddressPath
	if strings.HasPrefix(cfg.GRPCServer.Protocol, "unix") {
		target = "unix://" + target
	} else {
		target = "passthrough:///" + target
	}
	conn, err := grpc.Dial(target, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		return nil, fmt.Errorf("update agent: dial the local API: %w", err)
	}
	db, err := store.Open(filepath.Join(cfg.Manager.HomeDir, "update-agent.db"), "containers-update-agent", iua.Migrations)
	if err != nil {
		conn.Close()
		return nil, fmt.Errorf("update agent database: %w", err)
	}
	cc := cfg.Connection
	tlsCfg, err := brokerTLSIfSecure(cc)
	if err != nil {
		conn.Close()
		db.Close()
		return nil, err
	}
	agent := cua.NewAgent(ctrsvc.NewContainersClient(conn), cua.Options{
		Domain: cfg.UpdateAgt.Domain, SystemContainers: cfg.UpdateAgt.SystemContainers,
		VerboseInventory: cfg.UpdateAgt.VerboseInventoryReport, Version: Version,
		MQTT: mqtt.Options{
			URL: cc.BrokerURL, ClientID: fmt.Sprintf("containers-update-agent-%d", os.Getpid()),
			Username: cc.ClientUsername, Password: cc.ClientPassword, TLS: tlsCfg,
			KeepAlive: time.Duration(cc.KeepAlive), ConnectTimeout: time.Duration(cc.ConnectTimeout),
			CleanSession: true, AutoReconnect: true, Log: log,
		},
		DB: db, Log: log,
	})
	runCtx, cancel := context.WithCancel(ctx)
	done := make(chan struct{})
	// Owned by startUpdateAgent: ends when the returned stop cancels it.
	go func() {
		defer close(done)
		if err := agent.Run(runCtx); err != nil && runCtx.Err() == nil {
			log.Error("update agent", "err", err)
		}
	}()
	return func() {
		cancel()
		<-done
		db.Close()
		conn.Close()
	}, nil
}

func brokerTLSIfSecure(cc ConnConfig) (*tls.Config, error) {
	if !mqtt.IsSecure(cc.BrokerURL) {
		return nil, nil
	}
	return brokerTLS(cc)
}
