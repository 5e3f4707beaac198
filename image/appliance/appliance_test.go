package appliance

import (
	"os"
	"regexp"
	"strings"
	"testing"
)

func TestSaveLoad(t *testing.T) {
	dir := t.TempDir()
	a := &Appliance{Dir: dir, Format: formatVersion, Root: rootImage, Var: varImage, Kernel: kernelFile,
		Initrd: initrdFile, CmdlineFile: cmdlineFile, Cmdline: "root=/dev/vda lsm=bpf", KernelRelease: "6.1.0-1-cloud-amd64"}
	if err := a.save(); err != nil {
		t.Fatal(err)
	}
	if _, err := Load(dir); err == nil || !strings.Contains(err.Error(), "root.erofs") {
		t.Fatalf("Load with the images missing = %v", err)
	}
	for _, n := range outputNames()[1:] {
		os.WriteFile(a.Path(n), []byte("x"), 0o644)
	}
	got, err := Load(dir)
	if err != nil {
		t.Fatal(err)
	}
	if got.Cmdline != a.Cmdline || got.KernelRelease != a.KernelRelease || got.Dir != dir || got.Path(got.Root) != a.Path(rootImage) {
		t.Errorf("Load = %+v", got)
	}

	a.Root = "../etc/passwd"
	a.save()
	if _, err := Load(dir); err == nil || !strings.Contains(err.Error(), "bad file name") {
		t.Errorf("Load with a path outside = %v", err)
	}
	a.Root, a.Format = rootImage, 99
	a.save()
	if _, err := Load(dir); err == nil || !strings.Contains(err.Error(), "format 99") {
		t.Errorf("Load of another format = %v", err)
	}
}

func TestUUIDFrom(t *testing.T) {
	re := regexp.MustCompile(`^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$`)
	a, b := uuidFrom("k", "root"), uuidFrom("k", "var")
	if !re.MatchString(a) || !re.MatchString(b) || a == b || a != uuidFrom("k", "root") {
		t.Errorf("uuidFrom: %s %s", a, b)
	}
}

func TestBuildNeedsRecipeAndOut(t *testing.T) {
	if _, err := Build(t.Context(), Config{}); err == nil {
		t.Error("Build without a recipe succeeded")
	}
	if _, err := Build(t.Context(), Config{Recipe: "r", OutDir: "o", VarSizeMiB: 10}); err == nil || !strings.Contains(err.Error(), "too small") {
		t.Errorf("Build with a 10 MiB /var: %v", err)
	}
}
