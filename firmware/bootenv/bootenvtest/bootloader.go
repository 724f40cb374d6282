// Package bootenvtest simulates what the reference GRUB and U-Boot scripts
// (firmware/scripts) do at boot, so tests can "reboot" a device whose
// environment lives in a file.
package bootenvtest

import (
	"strconv"
	"strings"

	"github.com/kantofw/kanto/firmware/bootenv"
)

// GrubBoot runs the selection of firmware/scripts/grub-ab.cfg on store,
// including its save_env writes, and returns the slot GRUB boots.
func GrubBoot(store bootenv.Store) (string, error) {
	env, err := store.Read()
	if err != nil {
		return "", err
	}
	order := strings.Fields(env["ORDER"])
	if len(order) == 0 {
		order = []string{"A", "B"}
	}
	for _, s := range order {
		if env[s+"_OK"] != "1" {
			continue
		}
		switch env[s+"_TRY"] {
		case "0", "":
			return s, nil
		case "1":
			return s, store.Write(map[string]string{s + "_TRY": "2"})
		default:
			if err := store.Write(map[string]string{s + "_OK": "0", s + "_TRY": "0"}); err != nil {
				return "", err
			}
		}
	}
	return order[0], nil
}

// UBootBoot runs the selection of firmware/scripts/uboot-ab.cmd on store
// and returns the slot U-Boot boots.
func UBootBoot(store bootenv.Store) (string, error) {
	env, err := store.Read()
	if err != nil {
		return "", err
	}
	order := strings.Fields(env["BOOT_ORDER"])
	if len(order) == 0 {
		order = []string{"A", "B"}
	}
	left := func(s string) int { n, _ := strconv.Atoi(env["BOOT_"+s+"_LEFT"]); return n }
	start := 0
	if env["BOOT_TRIAL"] == "1" {
		first := order[0]
		if n := left(first); n > 0 {
			return first, store.Write(map[string]string{"BOOT_" + first + "_LEFT": strconv.Itoa(n - 1)})
		}
		if err := store.Write(map[string]string{"BOOT_TRIAL": "0"}); err != nil {
			return "", err
		}
		start = 1
	}
	for _, s := range order[start:] {
		if left(s) > 0 {
			return s, nil
		}
	}
	return order[0], nil
}
