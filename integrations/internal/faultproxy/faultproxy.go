// Package faultproxy is a TCP proxy on 127.0.0.1 that injects faults
// between a client and a server: it delays what the server sends, and it
// can cut every connection.
package faultproxy

import (
	"net"
	"sync"
	"sync/atomic"
	"time"
)

// Proxy forwards connections from its own address to a target.
type Proxy struct {
	target string
	ln     net.Listener
	delay  atomic.Int64 // nanoseconds added before each chunk the server sends

	mu     sync.Mutex
	conns  map[net.Conn]*atomic.Int64 // each with its own added delay
	closed bool
	wg     sync.WaitGroup
}

// New starts a proxy to target on a free port of 127.0.0.1.
func New(target string) (*Proxy, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	p := &Proxy{target: target, ln: ln, conns: make(map[net.Conn]*atomic.Int64)}
	p.wg.Add(1)
	go p.accept()
	return p, nil
}

// Addr is the address clients connect to.
func (p *Proxy) Addr() string { return p.ln.Addr().String() }

// SetDelay makes the proxy hold each chunk the server sends for d before
// passing it on; 0 passes it on at once.
func (p *Proxy) SetDelay(d time.Duration) { p.delay.Store(int64(d)) }

// SlowExisting makes the proxy hold each chunk the server sends on the
// connections open now for d; connections opened later are not slowed
// by it.
func (p *Proxy) SlowExisting(d time.Duration) {
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, delay := range p.conns {
		delay.Store(int64(d))
	}
}

// CutAll closes every open connection; new ones are still accepted.
func (p *Proxy) CutAll() {
	p.mu.Lock()
	defer p.mu.Unlock()
	for c := range p.conns {
		c.Close()
	}
}

// Close stops accepting, closes every connection and waits for the
// proxy's goroutines to end.
func (p *Proxy) Close() error {
	err := p.ln.Close()
	p.mu.Lock()
	p.closed = true
	p.mu.Unlock()
	p.CutAll()
	p.wg.Wait()
	return err
}

func (p *Proxy) accept() {
	defer p.wg.Done()
	for {
		client, err := p.ln.Accept()
		if err != nil {
			return
		}
		server, err := net.Dial("tcp", p.target)
		if err != nil {
			client.Close()
			continue
		}
		own := new(atomic.Int64)
		if !p.track(own, client, server) {
			client.Close()
			server.Close()
			return
		}
		p.wg.Add(2)
		go p.pipe(server, client, nil)
		go p.pipe(client, server, own)
	}
}

// track registers connections, unless the proxy is closing.
func (p *Proxy) track(delay *atomic.Int64, cs ...net.Conn) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.closed {
		return false
	}
	for _, c := range cs {
		p.conns[c] = delay
	}
	return true
}

func (p *Proxy) untrack(c net.Conn) {
	p.mu.Lock()
	delete(p.conns, c)
	p.mu.Unlock()
	c.Close()
}

// pipe copies from src to dst, delaying each chunk if own is set (by the
// proxy's delay or its own, whichever is longer), and closes both ends when
// either is done.
func (p *Proxy) pipe(dst, src net.Conn, own *atomic.Int64) {
	defer p.wg.Done()
	defer p.untrack(dst)
	defer p.untrack(src)
	buf := make([]byte, 32<<10)
	for {
		n, err := src.Read(buf)
		if n > 0 {
			if own != nil {
				if d := time.Duration(max(p.delay.Load(), own.Load())); d > 0 {
					time.Sleep(d)
				}
			}
			if _, werr := dst.Write(buf[:n]); werr != nil {
				return
			}
		}
		if err != nil {
			return
		}
	}
}
