//go:build tools

// Package tools pins the Pulumi Python language host that `make setup` builds into .tools/bin.
package tools

import _ "github.com/pulumi/pulumi/sdk/v3/python/cmd/pulumi-language-python"
