package bpf

// Object is one embedded, compiled BPF ELF object.
type Object struct {
	Name  string
	Bytes []byte
}

// Objects returns the embedded BPF objects in a fixed order.
func Objects() []Object {
	return []Object{
		{Name: "aegis", Bytes: _AegisBytes},
	}
}
