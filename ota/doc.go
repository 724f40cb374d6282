// Package ota is the firmware update agent: a persisted state machine that
// installs a bundle into the inactive slot (package firmware/install),
// reboots into it, runs health checks, and commits the slot or rolls back.
//
// # States
//
//	idle ─Install─▶ downloading ─verified─▶ installing ─armed─▶ installed
//	                    │                      │                  │ Reboot (or AutoReboot)
//	                    ▼                      ▼                  ▼
//	                  failed ◀──────────── failed            rebooting
//	                                                              │ boot (Resume)
//	          rolled-back ◀─ checks fail / loop cap ─ verifying ◀─┘
//	                                                      │ checks pass (or Commit)
//	                                                      ▼
//	                                                  committed
//
// A crash or power cut in downloading or installing (before the target is
// armed) makes the next Resume install again (up to MaxInstallAttempts),
// keeping the chunks the target already holds and downloading only the
// rest with an HTTP Range request.
//
// committed, rolled-back and failed are terminal: the record stays for
// clients to read until the next Install. Every transition is stored
// before the work of the new state starts (and the AfterPersist hook runs),
// so that after a crash, kill -9 or power cut, Resume applies the recovery
// table (recovery in state.go, one reason per row) to continue. Two caps
// stop loops: MaxBoots (boots of the target while rebooting or verifying)
// and MaxTransitions (records written for one update).
//
// # Database (bbolt), schema version 1
//
//	meta/
//	  schema        -> uint64 big endian: number of migrations applied
//	v1/
//	  current       -> JSON Record: the current or last update
//	  lastBoot      -> the kernel boot id last counted in the slot status
//	  history/      -> NextSequence (uint64 big endian) -> JSON Transition,
//	                   the last 200 transitions of all updates
//
// The database is opened for each operation and closed after it, so the
// agent daemon and the kanto fw CLI share it; operations that change the
// update also hold an flock on <db>.lock, and a second one gets ErrBusy.
//
// Migrations live in the ordered migrations table in db.go; each has its
// own test. A database with a schema newer than the agent is refused
// (ErrSchemaTooNew) rather than misread.
//
// # Use
//
//	a, err := ota.New(ota.Config{DBPath: ..., Slots: slots, Keyring: kr},
//		ota.Deps{Log: log, Rebooter: board.Rebooter(...), Checks: checks})
//	a.Resume(ctx)                 // once per start: recovery, verification
//	a.Install(ctx, "https://...") // download + install + arm
//	a.Reboot(ctx)                 // unless Config.AutoReboot
//	a.Status(); a.Commit(ctx); a.Rollback(ctx)
package ota
