// Command dashboard-lint checks Grafana dashboard JSON files against Grafana's
// published dashboard schema (v1, the classic JSON model), as generated into
// typed Go structures by the Apache-licensed grafana-foundation-sdk.
//
// Each file is decoded with the SDK's strict decoder, with every core panel
// plugin and data source query type registered, so that an unknown field, a
// field of the wrong type or a missing required field anywhere in the
// dashboard, its panels' options and field configs, or its Prometheus queries
// is an error; the SDK's Validate then checks the schema's constraints (e.g.
// ranges). Errors name the JSON path.
//
//	dashboard-lint dashboards/exportjob-operator.json [...]
//
// Exit status: 0 when every file conforms, 1 when one does not, 2 on usage
// or read errors.
package main

import (
	"errors"
	"fmt"
	"os"

	"github.com/grafana/grafana-foundation-sdk/go/cog"
	"github.com/grafana/grafana-foundation-sdk/go/cog/plugins"
	"github.com/grafana/grafana-foundation-sdk/go/dashboard"
)

func lint(path string) ([]string, error) {
	raw, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	var problems []string
	var board dashboard.Dashboard
	if err := board.UnmarshalJSONStrict(raw); err != nil {
		problems = append(problems, explain(err)...)
	}
	if err := board.Validate(); err != nil {
		problems = append(problems, explain(err)...)
	}
	return problems, nil
}

// explain splits the SDK's aggregated errors into one line each.
func explain(err error) []string {
	var build cog.BuildErrors
	if errors.As(err, &build) {
		lines := make([]string, 0, len(build))
		for _, e := range build {
			lines = append(lines, e.Error())
		}
		return lines
	}
	return []string{err.Error()}
}

func main() {
	if len(os.Args) < 2 {
		fmt.Fprintln(os.Stderr, "usage: dashboard-lint DASHBOARD.json [...]")
		os.Exit(2)
	}
	plugins.RegisterDefaultPlugins()
	status := 0
	for _, path := range os.Args[1:] {
		problems, err := lint(path)
		if err != nil {
			fmt.Fprintf(os.Stderr, "error: %v\n", err)
			os.Exit(2)
		}
		if len(problems) == 0 {
			fmt.Printf("ok   %s: conforms to the Grafana dashboard schema (grafana-foundation-sdk)\n", path)
			continue
		}
		status = 1
		for _, p := range problems {
			fmt.Fprintf(os.Stderr, "FAIL %s: %s\n", path, p)
		}
	}
	os.Exit(status)
}
