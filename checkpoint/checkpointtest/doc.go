// Package checkpointtest is the conformance suite every checkpoint.Store
// passes ([Run]):
//
//	func TestStore(t *testing.T) {
//		checkpointtest.Run(t, func(t *testing.T) checkpoint.Store {
//			s, err := checkpoint.NewDir(t.TempDir())
//			if err != nil {
//				t.Fatal(err)
//			}
//			return s
//		})
//	}
//
// Run may be called from parallel tests; it keeps no state. [Save5k] and
// [Load5k] are benchmarks of a store at the target steady state.
package checkpointtest
