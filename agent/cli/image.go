package cli

// imageCommand is owned by the image layer work (issue 7).
func imageCommand() *Command {
	return &Command{Name: "image", Summary: "build and verify signed image layers"}
}
