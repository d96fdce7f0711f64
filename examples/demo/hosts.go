package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/resilience-go/resilience"
	"github.com/resilience-go/resilience/integrations/resilhttp"
)

// The epilogue: three hosts behind one client, one of them failing every
// call, through a breaker per host (the external-HTTP preset's default)
// and through one breaker shared by all three. The hosts are names the
// backend tells apart by the request's Host; every connection goes to its
// one listener.

var hostNames = [...]string{"api-1.backend.test", "api-2.backend.test", "api-3.backend.test"}

// failingHost is the host that answers 503 to every call in the epilogue.
const failingHost = "api-2.backend.test"

// hostCounts is how the calls to one host ended.
type hostCounts struct{ OK, Failed, Rejected int }

// hostsReport is what the epilogue saw: for each chain, the counts per
// host, in the order of hostNames.
type hostsReport struct {
	PerHost, Shared [len(hostNames)]hostCounts
}

// playHosts runs the epilogue for cfg.Phase against be, served on n, and
// writes its table to out.
func playHosts(ctx context.Context, cfg config, be *backend, n network, logf func(string, ...any), out io.Writer) (*hostsReport, error) {
	addr := n.Listener.Addr().String()
	transport := &http.Transport{
		DialContext: func(ctx context.Context, network, _ string) (net.Conn, error) {
			return n.Dial(ctx, network, addr) // every host is the one backend
		},
		MaxIdleConnsPerHost: 2 * cfg.Clients,
	}
	defer transport.CloseIdleConnections()
	clientFor := func(perHost bool) (*http.Client, error) {
		p := guardConfig()
		p.Name = "hosts-shared"
		if perHost {
			p = perHostConfig()
			p.Name = "hosts-per-host"
		}
		g, err := p.Build()
		if err != nil {
			return nil, err
		}
		t, err := resilhttp.NewTransport(resilhttp.TransportConfig{Base: transport, Guard: g})
		if err != nil {
			return nil, err
		}
		return &http.Client{Transport: t}, nil
	}
	perHost, err := clientFor(true)
	if err != nil {
		return nil, err
	}
	shared, err := clientFor(false)
	if err != nil {
		return nil, err
	}

	fmt.Fprintf(out, "\nthree hosts behind one client, %s answering 503 to every call, for %v; %d calls/s through each of two chains:\n", failingHost, cfg.Phase, cfg.Rate)
	fmt.Fprintf(out, "  the external-HTTP preset as it comes, a breaker per host, and the same with one breaker shared by the three\n")
	be.phase.Store(hosts)
	logf("phase: %s", phaseNames[hosts])
	rep := &hostsReport{}
	var mu sync.Mutex
	stop := time.Now().Add(cfg.Phase)
	every := time.Duration(float64(time.Second) * float64(cfg.Clients) / float64(cfg.Rate))
	var wg sync.WaitGroup
	for i := range 2 * cfg.Clients {
		client, counts := perHost, &rep.PerHost
		if i%2 == 1 {
			client, counts = shared, &rep.Shared
		}
		wg.Go(func() {
			t := time.NewTicker(every)
			defer t.Stop()
			for j := i / 2; time.Now().Before(stop) && ctx.Err() == nil; j++ {
				h := j % len(hostNames)
				_, err := get(ctx, client, "http://"+hostNames[h]+"/")
				mu.Lock()
				switch {
				case err == nil:
					counts[h].OK++
				case errors.Is(err, resilience.ErrRejected):
					counts[h].Rejected++
				default:
					counts[h].Failed++
				}
				mu.Unlock()
				select {
				case <-t.C:
				case <-ctx.Done():
				}
			}
		})
	}
	wg.Wait()

	var b strings.Builder
	fmt.Fprintf(&b, "\n%-20s", "")
	for _, h := range hostNames {
		fmt.Fprintf(&b, " %-28s", h)
	}
	for _, row := range []struct {
		name   string
		counts [len(hostNames)]hostCounts
	}{{"a breaker per host", rep.PerHost}, {"one shared breaker", rep.Shared}} {
		fmt.Fprintf(&b, "\n%-20s", row.name)
		for _, c := range row.counts {
			fmt.Fprintf(&b, " %-28s", fmt.Sprintf("%d ok %d failed %d rejected", c.OK, c.Failed, c.Rejected))
		}
	}
	b.WriteString("\n\n" + rep.verdict() + "\n")
	io.WriteString(out, b.String())
	return rep, ctx.Err()
}

// verdict says what the table shows: which hosts each chain cut off (a
// host some of whose calls were rejected).
func (r *hostsReport) verdict() string {
	cut := func(counts [len(hostNames)]hostCounts) []string {
		var hosts []string
		for i, c := range counts {
			if c.Rejected > 0 {
				hosts = append(hosts, hostNames[i])
			}
		}
		return hosts
	}
	say := func(hosts []string) string {
		switch len(hosts) {
		case 0:
			return "no host"
		case len(hostNames):
			return "all three hosts"
		}
		return strings.Join(hosts, " and ")
	}
	return "with a breaker per host, " + say(cut(r.PerHost)) + " cut off; with one shared breaker, " + say(cut(r.Shared))
}

// perHostConfig is guardConfig as the external-HTTP preset comes: a breaker per
// host.
func perHostConfig() resilience.Preset {
	p := guardConfig()
	p.BreakerPerKey = &resilience.KeyedBreakerConfig{}
	return p
}
