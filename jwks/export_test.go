package jwks

// Generation exposes the manager's change counter to the external tests
// (faults_test.go) without making it API.
func Generation(m *Manager) uint64 { return m.generation() }
