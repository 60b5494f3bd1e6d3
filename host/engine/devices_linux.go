package engine

import "os"

// cpuModel reads the model name from /proc/cpuinfo; "" when unreadable.
func cpuModel() string {
	f, err := os.Open("/proc/cpuinfo")
	if err != nil {
		return ""
	}
	defer f.Close()
	return parseCPUInfo(f)
}
