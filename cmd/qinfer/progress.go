package main

import (
	"os"

	"github.com/schollz/progressbar/v3"
	"golang.org/x/term"

	"qinfer/host/backend"
)

// bar is a progress bar on a terminal, and nothing otherwise (a pipe, a
// file, --quiet).
type bar struct {
	pb *progressbar.ProgressBar
}

func newBar(env *cliEnv, desc string) *bar {
	f, ok := env.stderr.(*os.File)
	if env.quiet || !ok || !term.IsTerminal(int(f.Fd())) {
		return &bar{}
	}
	return &bar{pb: progressbar.NewOptions(1,
		progressbar.OptionSetWriter(f),
		progressbar.OptionSetDescription(desc),
		progressbar.OptionShowCount(),
		progressbar.OptionSetElapsedTime(true),
		progressbar.OptionSetPredictTime(true),
		progressbar.OptionClearOnFinish(),
		progressbar.OptionThrottle(100_000_000), // 100 ms
	)}
}

// update follows a total that grows as the phases learn their size.
func (b *bar) update(done, total int) {
	if b.pb == nil || total <= 0 {
		return
	}
	if b.pb.GetMax() != total {
		b.pb.ChangeMax(total)
	}
	_ = b.pb.Set(done)
}

func (b *bar) finish() {
	if b.pb != nil {
		_ = b.pb.Finish()
	}
}

// uploadProgress is a backend decorator that advances a bar by the bytes
// of every weight uploaded: model loading's progress without host/model
// knowing about terminals.
type uploadProgress struct {
	backend.Backend
	bar         *bar
	done, total int64
}

func (u *uploadProgress) Upload(w *backend.Weight) (backend.Tensor, error) {
	t, err := u.Backend.Upload(w)
	if err == nil {
		u.done += int64(len(w.Data))
		u.bar.update(int(u.done>>10), int(u.total>>10))
	}
	return t, err
}
