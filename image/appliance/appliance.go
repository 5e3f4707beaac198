package appliance

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"time"
)

// File names in an appliance directory.
const (
	rootImage   = "root.erofs"
	varImage    = "var.img"
	kernelFile  = "vmlinuz"
	initrdFile  = "initrd.img"
	cmdlineFile = "cmdline"
	// ManifestFile describes the appliance; it is written last, so its
	// presence means the build completed.
	ManifestFile = "appliance.json"
)

// formatVersion is the version of appliance.json.
const formatVersion = 1

func outputNames() []string {
	return []string{ManifestFile, rootImage, varImage, kernelFile, initrdFile, cmdlineFile}
}

// Appliance is a built appliance: appliance.json and the files it names,
// all in Dir. File name fields are relative to Dir; Path joins them.
type Appliance struct {
	Dir    string `json:"-"`
	Format int    `json:"format"`

	Root        string `json:"root"`         // read-only erofs root, the first virtio disk (/dev/vda)
	Var         string `json:"var"`          // ext4 /var, the second virtio disk (/dev/vdb)
	Kernel      string `json:"kernel"`       // for qemu -kernel
	Initrd      string `json:"initrd"`       // for qemu -initrd
	CmdlineFile string `json:"cmdline_file"` // the command line, one line

	Cmdline       string `json:"cmdline"`
	KernelRelease string `json:"kernel_release"`
	VarLabel      string `json:"var_label"`
	VarSizeMiB    int    `json:"var_size_mib"`

	Suite       string    `json:"suite"`
	BaseKey     string    `json:"base_key"` // cache key of the base root
	BaseBuiltAt time.Time `json:"base_built_at"`
	RootFiles   int       `json:"root_files"` // how many extra files the root got
	VarFiles    int       `json:"var_files"`
}

// Path returns the host path of a file of the appliance, e.g. a.Path(a.Root).
func (a *Appliance) Path(name string) string { return filepath.Join(a.Dir, name) }

// Load reads the appliance built into dir and checks its files exist.
func Load(dir string) (*Appliance, error) {
	data, err := os.ReadFile(filepath.Join(dir, ManifestFile))
	if err != nil {
		return nil, fmt.Errorf("loading the appliance: %w", err)
	}
	a := &Appliance{}
	if err := json.Unmarshal(data, a); err != nil {
		return nil, fmt.Errorf("loading the appliance: %s: %w", ManifestFile, err)
	}
	a.Dir = dir
	if a.Format != formatVersion {
		return nil, fmt.Errorf("loading the appliance: %s has format %d, this builder reads %d (rebuild it)",
			ManifestFile, a.Format, formatVersion)
	}
	var errs []error
	for _, n := range []string{a.Root, a.Var, a.Kernel, a.Initrd, a.CmdlineFile} {
		if n == "" || filepath.Base(n) != n {
			errs = append(errs, fmt.Errorf("bad file name %q", n))
			continue
		}
		if _, err := os.Stat(a.Path(n)); err != nil {
			errs = append(errs, err)
		}
	}
	if err := errors.Join(errs...); err != nil {
		return nil, fmt.Errorf("loading the appliance from %s: %w", dir, err)
	}
	return a, nil
}

func (a *Appliance) save() error {
	data, err := json.MarshalIndent(a, "", "  ")
	if err != nil {
		return err
	}
	if err := writeFileSync(a.Path(ManifestFile), append(data, '\n')); err != nil {
		return fmt.Errorf("writing %s: %w", ManifestFile, err)
	}
	return nil
}
