package layer

import "flag"

var update = flag.Bool("update", false, "rewrite the golden files in testdata/")

// Exported for the external tests in package layer_test.
var (
	Update           = update
	ExtensionRelease = extensionRelease
)
