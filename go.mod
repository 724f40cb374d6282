module github.com/kantofw/kanto

go 1.26

require (
	github.com/coreos/go-systemd/v22 v22.7.0
	go.etcd.io/bbolt v1.5.0
	gopkg.in/natefinch/lumberjack.v2 v2.2.1
)

require golang.org/x/sys v0.45.0 // indirect
