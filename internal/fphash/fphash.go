// Package fphash is a fast seeded 64-bit string hash (after wyhash) whose seed
// can be saved, so fingerprints survive a snapshot and restore.
package fphash

import (
	"encoding/binary"
	"math/bits"
)

const (
	p0 = 0xa0761d6478bd642f
	p1 = 0xe7037ed1a0b428db
	p2 = 0x8ebc6af09c88c6e3
	p3 = 0x589965cc75374cc3
)

func mix(a, b uint64) uint64 {
	hi, lo := bits.Mul64(a, b)
	return hi ^ lo
}

// String hashes s with seed.
func String(s string, seed uint64) uint64 {
	n := len(s)
	seed ^= p0
	var a, b uint64
	switch {
	case n == 0:
	case n <= 3:
		a = uint64(s[0])<<16 | uint64(s[n>>1])<<8 | uint64(s[n-1])
	case n <= 8:
		a = uint64(binary.LittleEndian.Uint32([]byte(s[:4])))
		b = uint64(binary.LittleEndian.Uint32([]byte(s[n-4:])))
	case n <= 16:
		a = binary.LittleEndian.Uint64([]byte(s[:8]))
		b = binary.LittleEndian.Uint64([]byte(s[n-8:]))
	default:
		tail := s[n-16:]
		for len(s) > 16 {
			seed = mix(binary.LittleEndian.Uint64([]byte(s[:8]))^p1, binary.LittleEndian.Uint64([]byte(s[8:16]))^seed)
			s = s[16:]
		}
		a = binary.LittleEndian.Uint64([]byte(tail[:8]))
		b = binary.LittleEndian.Uint64([]byte(tail[8:]))
	}
	return mix(p1^uint64(n), mix(a^p1, b^seed^p3)^p2)
}

// Fingerprint returns a 128-bit keyed fingerprint of s, two independent
// 64-bit hashes; h1 is never 0, so that 0 can mark an empty slot.
func Fingerprint(s string, seed uint64) (h1, h2 uint64) {
	return String(s, seed) | 1, String(s, ^seed*0x9e3779b97f4a7c15)
}

// Slot maps a hash onto [0, n) without a power-of-two n.
func Slot(h uint64, n int) int {
	hi, _ := bits.Mul64(h, uint64(n))
	return int(hi)
}
