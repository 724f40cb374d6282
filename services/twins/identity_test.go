package twins

import (
	"context"
	"os"
	"path/filepath"
	"testing"
	"time"
)

// A relaunch with a new device id swaps the twin database as a start
// would: the previous device's is kept aside with its twins, the new device
// starts empty, and local topics follow the new id. A relaunch with the
// same id keeps the database.
func TestAdoptNewDeviceID(t *testing.T) {
	s, _ := newOffline(t, true)
	path := filepath.Join(t.TempDir(), "things.db")
	s.things.close()
	var err error
	if s.things, err = openStore(path, "ns:dev", time.Now); err != nil {
		t.Fatal(err)
	}
	cur := *s.settings()
	cur.ThingsDB = path
	s.cur.Store(&cur)
	modify := []byte(`{"topic":"ns/dev/things/twin/commands/modify","path":"/features/f","value":{"properties":{"x":1}}}`)
	if !s.handleRaw(context.Background(), modify) {
		t.Fatal("modify not handled")
	}

	same := cur
	same.TenantID = "T2"
	if err := s.adopt(same); err != nil {
		t.Fatal(err)
	}
	if rec, err := s.things.get("ns:dev"); err != nil || rec == nil {
		t.Fatalf("same device: twin gone (%v)", err)
	}
	if got := s.cloudTopic("ns:dev"); got != "event/T2/ns:dev" {
		t.Errorf("cloud topic after a tenant change: %s", got)
	}

	next := same
	next.DeviceID = "ns:other"
	if err := s.adopt(next); err != nil {
		t.Fatal(err)
	}
	if ids, err := s.things.ids(); err != nil || len(ids) != 0 {
		t.Errorf("new device: things %v (%v), want none", ids, err)
	}
	if got := s.localTopic("ns:other", "modified"); got != "command///req//modified" {
		t.Errorf("local topic of the new device: %s", got)
	}
	if _, err := os.Stat(path + ".ns_dev"); err != nil {
		t.Fatalf("previous device's database not kept aside: %v", err)
	}
	old, err := openStore(path+".ns_dev", "ns:dev", time.Now)
	if err != nil {
		t.Fatal(err)
	}
	defer old.close()
	if rec, err := old.get("ns:dev"); err != nil || rec == nil {
		t.Errorf("previous device's twin not in the kept database (%v)", err)
	}
}
