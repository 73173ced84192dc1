package master

// ActiveJobs is the number of jobs the engine still tracks.
func (m *Master) ActiveJobs() int { return m.jobs.activeCount() }
