package parquet

import (
	_ "github.com/xitongsys/parquet-go/reader"
	_ "github.com/xitongsys/parquet-go/writer"
)
