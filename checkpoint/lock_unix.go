//go:build unix

package checkpoint

import (
	"errors"
	"os"
	"syscall"
)

// lockFile takes an exclusive flock on name, created if needed, and returns
// its release. The lock belongs to the open file, so it excludes other
// processes and other Dir values of this one alike.
func lockFile(name string) (func(), error) {
	f, err := os.OpenFile(name, os.O_RDWR|os.O_CREATE, 0o644)
	if err != nil {
		return nil, err
	}
	for {
		err = syscall.Flock(int(f.Fd()), syscall.LOCK_EX)
		if !errors.Is(err, syscall.EINTR) {
			break
		}
	}
	if err != nil {
		f.Close()
		return nil, err
	}
	return func() { f.Close() }, nil
}
