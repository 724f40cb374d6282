package imagetool

import "flag"

// cliFlags is a flag set shared by commands with common flags.
type cliFlags struct{ *flag.FlagSet }
