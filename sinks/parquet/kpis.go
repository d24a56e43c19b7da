package parquet

import (
	"cmp"
	"fmt"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"time"

	"github.com/clickstreamkit/clickstream/sinks"
)

// dayMs is the period of a KPI file: one UTC day of a partition's final
// minutes, at most 1,440 rows.
const dayMs = 24 * 60 * 60 * 1000

// kpiLog archives one partition's final minutes: complete days as Parquet
// files, the open day in the staging file.
type kpiLog struct {
	stagedLog
	files map[int64]period // by day start
}

// dayName is the file name of the complete day starting at start.
func dayName(start int64) string {
	return time.UnixMilli(start).UTC().Format(time.DateOnly) + ".parquet"
}

// partialLayout names the file of a day written at the end of an input, by
// its last minute: a longer input later writes the day under another name
// (and removes this one), never over it.
const partialLayout = "2006-01-02T150405.000Z"

func partialDayName(last int64) string {
	return time.UnixMilli(last).UTC().Format(partialLayout) + ".parquet"
}

func parseDayName(name string) (start, end int64, ok bool) {
	stem, found := strings.CutSuffix(name, ".parquet")
	if !found {
		return 0, 0, false
	}
	if t, err := time.Parse(time.DateOnly, stem); err == nil {
		return t.UnixMilli(), t.UnixMilli() + dayMs, true
	}
	t, err := time.Parse(partialLayout, stem)
	if err != nil {
		return 0, 0, false
	}
	return floor(t.UnixMilli(), dayMs), t.UnixMilli() + 1, true
}

// moved reports whether another process wrote the partition since this
// one loaded it.
func (l *kpiLog) moved() bool { return l.st.changed(filepath.Join(l.dir, stagingName)) }

func (l *kpiLog) load() error {
	var err error
	if l.files, err = l.s.listDir(l.dir, parseDayName); err != nil {
		return err
	}
	l.st, err = openStaging(filepath.Join(l.dir, stagingName), l.id, func(dropped int64) {
		l.s.log.Warn("parquet: dropped a torn end of a staging file", "dir", l.dir, "bytes", dropped)
	})
	return err
}

func (l *kpiLog) write(b *sinks.Batch) error {
	var fin []KPIRow
	for i := range b.KPIs {
		if m := &b.KPIs[i]; m.Final {
			fin = append(fin, newKPIRow(l.id.topic, l.id.partition, m))
		}
	}
	// Final minutes come in minute order; should one come twice, the later
	// one wins.
	slices.SortStableFunc(fin, func(a, b KPIRow) int { return cmp.Compare(a.Minute, b.Minute) })
	for i := len(fin) - 1; i > 0; i-- {
		if fin[i-1].Minute == fin[i].Minute {
			fin = slices.Delete(fin, i-1, i)
		}
	}
	if len(fin) > 0 {
		err := l.add(fin)
		l.buf = trim(l.buf)
		if err != nil {
			return err
		}
	}
	if b.End && l.st != nil {
		// The open day's file is written at the end of the input too; more
		// minutes of the day later rewrite it.
		return l.writeDay(l.st.start, true, nil, true)
	}
	return nil
}

func (l *kpiLog) add(fin []KPIRow) error {
	first := fin[0].Minute
	// Make the staging file hold the day of first with its minutes before
	// first only: these minutes replace the rest.
	if l.st == nil || first < l.st.start {
		if err := l.reopen(floor(first, dayMs), first); err != nil {
			return err
		}
	} else if err := l.st.cutFrom(first); err != nil {
		return err
	}
	open := floor(fin[len(fin)-1].Minute, dayMs) // the last minute's day stays open
	i := 0
	if l.st.start < open {
		from := l.st.start
		j := upToMinute(fin, 0, from+dayMs)
		if err := l.writeDay(from, true, fin[:j], false); err != nil {
			return err
		}
		done := []int64{from}
		for i = j; fin[i].Minute < open; i = j {
			d := floor(fin[i].Minute, dayMs)
			j = upToMinute(fin, i, d+dayMs)
			if err := l.writeDay(d, false, fin[i:j], false); err != nil {
				return err
			}
			done = append(done, d)
		}
		var stale []int64
		for start := range l.files {
			if start >= from && start < open && !slices.Contains(done, start) {
				stale = append(stale, start)
			}
		}
		if err := l.s.removeFiles(l.dir, l.files, stale); err != nil {
			return err
		}
		if err := l.s.failAt("kpis-complete"); err != nil {
			return err
		}
		l.buf = l.buf[:0]
		for k := i; k < len(fin); k++ {
			l.buf = appendKPIRecord(l.buf, &fin[k])
		}
		return l.restage(open, l.buf, len(fin)-i, fin[len(fin)-1].Minute)
	}
	l.buf = l.buf[:0]
	for k := range fin {
		l.buf = appendKPIRecord(l.buf, &fin[k])
	}
	return l.st.append(l.buf, len(fin), fin[len(fin)-1].Minute)
}

func upToMinute(fin []KPIRow, i int, end int64) int {
	for i < len(fin) && fin[i].Minute < end {
		i++
	}
	return i
}

// writeDay writes the file of the day starting at start with the staged
// minutes (when staged) then fin; partial names it by its last minute (the
// end of an input). A day without final minutes has no file.
func (l *kpiLog) writeDay(start int64, staged bool, fin []KPIRow, partial bool) error {
	rows := len(fin)
	if staged {
		rows += l.st.n
	}
	old, had := l.files[start]
	if rows == 0 {
		if had {
			return l.s.removeFiles(l.dir, l.files, []int64{start})
		}
		return nil
	}
	name, end := dayName(start), start+dayMs
	if partial {
		last := l.st.last
		if len(fin) > 0 {
			last = fin[len(fin)-1].Minute
		}
		name, end = partialDayName(last), last+1
	}
	var stale []string
	if had && old.name != name {
		stale = append(stale, old.name)
	}
	topic, part := l.id.topic, l.id.partition
	err := writeParquet(l.dir, name, stale, func(add func(kpiRow) error) error {
		put := func(r *KPIRow) error {
			row, err := toKPIRow(r)
			if err != nil {
				return err
			}
			return add(row)
		}
		if staged {
			err := l.st.each(func(minute int64, body string) error {
				r, err := decodeKPI(topic, part, minute, body)
				if err != nil {
					return err
				}
				return put(&r)
			})
			if err != nil {
				return err
			}
		}
		for i := range fin {
			if err := put(&fin[i]); err != nil {
				return err
			}
		}
		return nil
	}, sameButLatency)
	if err != nil {
		return err
	}
	l.files[start] = period{name, end}
	l.s.log.Debug("parquet: wrote KPIs", "file", filepath.Join(l.dir, name), "rows", rows)
	return nil
}

// sameButLatency reports whether two KPI files hold the same rows but for
// latency_ms_p95, which is not deterministic (SEMANTICS §6): a replay after
// a crash recomputes a day's final minutes with other latencies, and the
// file written first is kept.
func sameButLatency(a, b string) (bool, error) {
	ra, err := readParquet[kpiRow](a)
	if err != nil {
		return false, err
	}
	rb, err := readParquet[kpiRow](b)
	if err != nil {
		return false, err
	}
	for i := range ra {
		ra[i].LatencyMsP95 = nil
	}
	for i := range rb {
		rb[i].LatencyMsP95 = nil
	}
	return reflect.DeepEqual(ra, rb), nil
}

// reopen makes the staging file hold the day starting at start with its
// minutes before first, read back from the day's file: a replay went back
// before the staged day.
func (l *kpiLog) reopen(start, first int64) error {
	l.buf = l.buf[:0]
	n, last := 0, int64(0)
	if f, ok := l.files[start]; ok {
		rows, err := readParquet[kpiRow](filepath.Join(l.dir, f.name))
		if err != nil {
			return err
		}
		for i := range rows {
			r, err := rows[i].row()
			if err != nil {
				return err
			}
			if r.Minute >= first {
				break
			}
			if n > 0 && r.Minute <= last {
				return fmt.Errorf("parquet: %s: %w: minutes out of order", f.name, ErrCorrupt)
			}
			l.buf = appendKPIRecord(l.buf, &r)
			n, last = n+1, r.Minute
		}
	}
	if l.st != nil {
		l.s.log.Info("parquet: replay reopens a KPI day", "dir", l.dir, "day", dayName(start), "from", first)
	}
	return l.restage(start, l.buf, n, last)
}
