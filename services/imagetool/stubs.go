package imagetool

import (
	"context"

	"github.com/kantofw/kanto/services/internal/cli"
)

func imageProvisionMain(ctx context.Context, env *cli.Env, args []string) error {
	return cli.Usagef("not yet")
}

