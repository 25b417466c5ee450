package clerkfake

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
)

// benchServer seeds n users behind httptest and returns their IDs and a
// keep-alive client sized for parallel benchmarks.
func benchServer(b *testing.B, n int) (*httptest.Server, []string, *http.Client) {
	b.Helper()
	s := New(Options{})
	seed := make([]json.RawMessage, 0, n)
	for i := range n {
		seed = append(seed, json.RawMessage(fmt.Sprintf(
			`{"email_addresses":[{"email_address":"bench%d@example.com"}],"first_name":"Bench","username":"bench_%d","public_metadata":{"i":%d}}`, i, i, i)))
	}
	if err := s.Seed(seed); err != nil {
		b.Fatal(err)
	}
	s.st.mu.RLock()
	ids := make([]string, 0, len(s.st.users))
	for id := range s.st.users {
		ids = append(ids, id)
	}
	s.st.mu.RUnlock()
	ts := httptest.NewServer(s)
	b.Cleanup(ts.Close)
	tr := ts.Client().Transport.(*http.Transport).Clone()
	tr.MaxIdleConnsPerHost = 256
	return ts, ids, &http.Client{Transport: tr}
}

func benchGet(b *testing.B, client *http.Client, url string) {
	req, _ := http.NewRequestWithContext(b.Context(), "GET", url, nil)
	req.Header.Set("Authorization", "Bearer "+testKey)
	res, err := client.Do(req)
	if err != nil {
		b.Error(err)
		return
	}
	_, _ = io.Copy(io.Discard, res.Body)
	_ = res.Body.Close()
	if res.StatusCode != 200 {
		b.Errorf("status %d", res.StatusCode)
	}
}

// BenchmarkGetUser measures GET /v1/users/{user_id} over HTTP with
// parallel clients; the req/s metric is the throughput.
func BenchmarkGetUser(b *testing.B) {
	ts, ids, client := benchServer(b, 1000)
	b.SetParallelism(8)
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		i := 0
		for pb.Next() {
			benchGet(b, client, ts.URL+"/v1/users/"+ids[i%len(ids)])
			i++
		}
	})
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "req/s")
}

// BenchmarkListUsers measures GET /v1/users?limit=10 (filter, sort and
// render over 1000 users) over HTTP with parallel clients.
func BenchmarkListUsers(b *testing.B) {
	ts, _, client := benchServer(b, 1000)
	b.SetParallelism(8)
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			benchGet(b, client, ts.URL+"/v1/users?limit=10&order_by=-updated_at&query=bench")
		}
	})
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "req/s")
}

// BenchmarkMergeMetadata measures PATCH /v1/users/{user_id}/metadata, a
// write under the store lock.
func BenchmarkMergeMetadata(b *testing.B) {
	ts, ids, client := benchServer(b, 1000)
	b.SetParallelism(8)
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		i := 0
		for pb.Next() {
			req, _ := http.NewRequestWithContext(b.Context(), "PATCH", ts.URL+"/v1/users/"+ids[i%len(ids)]+"/metadata",
				strings.NewReader(fmt.Sprintf(`{"public_metadata":{"n":%d}}`, i)))
			req.Header.Set("Authorization", "Bearer "+testKey)
			res, err := client.Do(req)
			if err != nil {
				b.Error(err)
				return
			}
			_, _ = io.Copy(io.Discard, res.Body)
			_ = res.Body.Close()
			if res.StatusCode != 200 {
				b.Errorf("status %d", res.StatusCode)
			}
			i++
		}
	})
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "req/s")
}
