package provider

import (
	"bufio"
	"fmt"
	"io"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/containerprovider/containerprovider/api"
)

// durationBuckets are the upper bounds, in seconds, of the job duration
// histogram.
var durationBuckets = []float64{1, 5, 15, 60, 300, 900, 3600}

// metrics are the provider's counters since New.
type metrics struct {
	bytes atomic.Int64

	mu       sync.Mutex
	installs map[string]int64 // by final state
	buckets  []int64          // cumulative counts are computed on write
	durSum   float64
	durCount int64
}

func (m *metrics) addBytes(n int64) { m.bytes.Add(n) }

// jobEnded counts a job that reached state after d.
func (m *metrics) jobEnded(state string, d time.Duration) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.installs == nil {
		m.installs = map[string]int64{}
		m.buckets = make([]int64, len(durationBuckets))
	}
	m.installs[state]++
	s := d.Seconds()
	for i, le := range durationBuckets {
		if s <= le {
			m.buckets[i]++
			break
		}
	}
	m.durSum += s
	m.durCount++
}

// WriteMetrics writes the Prometheus text exposition of the provider's
// counters: bytes downloaded, installs, failures, job durations.
//
// The metrics are providerd_bytes_downloaded_total,
// providerd_installs_total{result="succeeded|failed|canceled"},
// providerd_install_failures_total, the histogram
// providerd_job_duration_seconds and the gauge providerd_jobs_running.
// Counters start at zero with each New. An install that finds its image
// already installed downloads nothing and is not counted.
func (p *Provider) WriteMetrics(w io.Writer) error {
	m := &p.metrics
	m.mu.Lock()
	installs := map[string]int64{}
	for k, v := range m.installs {
		installs[k] = v
	}
	buckets := make([]int64, len(durationBuckets))
	copy(buckets, m.buckets)
	sum, count := m.durSum, m.durCount
	m.mu.Unlock()
	p.mu.Lock()
	running := len(p.active)
	p.mu.Unlock()

	bw := bufio.NewWriter(w)
	fmt.Fprintf(bw, "# HELP providerd_bytes_downloaded_total Bytes of blobs received from the sources.\n")
	fmt.Fprintf(bw, "# TYPE providerd_bytes_downloaded_total counter\n")
	fmt.Fprintf(bw, "providerd_bytes_downloaded_total %d\n", m.bytes.Load())
	fmt.Fprintf(bw, "# HELP providerd_installs_total Install jobs that ended, by result.\n")
	fmt.Fprintf(bw, "# TYPE providerd_installs_total counter\n")
	for _, r := range []string{api.JobSucceeded, api.JobFailed, api.JobCanceled} {
		fmt.Fprintf(bw, "providerd_installs_total{result=%q} %d\n", r, installs[r])
	}
	fmt.Fprintf(bw, "# HELP providerd_install_failures_total Install jobs that failed.\n")
	fmt.Fprintf(bw, "# TYPE providerd_install_failures_total counter\n")
	fmt.Fprintf(bw, "providerd_install_failures_total %d\n", installs[api.JobFailed])
	fmt.Fprintf(bw, "# HELP providerd_job_duration_seconds Duration of the install jobs that ended.\n")
	fmt.Fprintf(bw, "# TYPE providerd_job_duration_seconds histogram\n")
	var cum int64
	for i, le := range durationBuckets {
		cum += buckets[i]
		fmt.Fprintf(bw, "providerd_job_duration_seconds_bucket{le=%q} %d\n", strconv.FormatFloat(le, 'f', -1, 64), cum)
	}
	fmt.Fprintf(bw, "providerd_job_duration_seconds_bucket{le=\"+Inf\"} %d\n", count)
	fmt.Fprintf(bw, "providerd_job_duration_seconds_sum %s\n", strconv.FormatFloat(sum, 'f', -1, 64))
	fmt.Fprintf(bw, "providerd_job_duration_seconds_count %d\n", count)
	fmt.Fprintf(bw, "# HELP providerd_jobs_running Install jobs that have not ended.\n")
	fmt.Fprintf(bw, "# TYPE providerd_jobs_running gauge\n")
	fmt.Fprintf(bw, "providerd_jobs_running %d\n", running)
	return bw.Flush()
}
