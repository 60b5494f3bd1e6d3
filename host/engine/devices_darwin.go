package engine

import "golang.org/x/sys/unix"

// cpuModel asks the kernel for the brand string; "" when unavailable.
func cpuModel() string {
	s, err := unix.Sysctl("machdep.cpu.brand_string")
	if err != nil {
		return ""
	}
	return s
}
