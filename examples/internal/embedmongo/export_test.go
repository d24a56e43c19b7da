package embedmongo

// SyncBuffer is syncBuffer for the package's external tests.
type SyncBuffer = syncBuffer
