package cli

// policyCommand is owned by the policy work (issue 3).
func policyCommand() *Command {
	return &Command{Name: "policy", Summary: "check, show, sign and verify policies"}
}
