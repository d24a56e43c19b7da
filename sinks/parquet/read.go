package parquet

import (
	"cmp"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
)

// ReadEvents reads back every events file under dir, the directory a Sink
// wrote, with parquet-go's reader: the archived events by topic, partition
// and offset. Staged events (of chunks not complete yet) are not included.
func ReadEvents(dir string) ([]Row, error) {
	var out []Row
	err := eachFile(filepath.Join(dir, DirEvents), func(path string) error {
		rows, err := readParquet[eventRow](path)
		for i := range rows {
			out = append(out, rows[i].row())
		}
		return err
	})
	slices.SortStableFunc(out, func(a, b Row) int {
		return cmp.Or(strings.Compare(a.Topic, b.Topic), cmp.Compare(a.Partition, b.Partition), cmp.Compare(a.Offset, b.Offset))
	})
	return out, err
}

// ReadKPIs reads back every KPI file under dir, the directory a Sink wrote,
// with parquet-go's reader: the archived final minutes by topic, partition
// and minute. Staged minutes (of days not complete yet) are not included.
func ReadKPIs(dir string) ([]KPIRow, error) {
	var out []KPIRow
	err := eachFile(filepath.Join(dir, DirKPIs), func(path string) error {
		rows, err := readParquet[kpiRow](path)
		if err != nil {
			return err
		}
		for i := range rows {
			r, err := rows[i].row()
			if err != nil {
				return fmt.Errorf("%s: %w", path, err)
			}
			out = append(out, r)
		}
		return nil
	})
	slices.SortStableFunc(out, func(a, b KPIRow) int {
		return cmp.Or(strings.Compare(a.Topic, b.Topic), cmp.Compare(a.Partition, b.Partition), cmp.Compare(a.Minute, b.Minute))
	})
	return out, err
}

// eachFile calls fn with each Parquet file under root, skipping the names
// that start with "." or "_" as Hive-style readers do. A missing root holds
// no file.
func eachFile(root string, fn func(path string) error) error {
	if _, err := os.Stat(root); errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	return filepath.WalkDir(root, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		name := d.Name()
		if d.IsDir() || strings.HasPrefix(name, ".") || strings.HasPrefix(name, "_") || !strings.HasSuffix(name, ".parquet") {
			return nil
		}
		return fn(path)
	})
}
