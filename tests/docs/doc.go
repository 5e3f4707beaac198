// Package docs holds the tests that keep the documentation, the alert
// rules and the dashboard true to the code: every aegisbpf command and
// flag they name exists (checked against the verbs' own --help), every
// metric they name is one the agent exports, every link to a heading
// resolves, every make target exists, and every alert has a promtool test.
// `make test-ops` runs them beside promtool.
package docs
