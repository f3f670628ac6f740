// Package hashslot computes Redis Cluster hash slots, which redrive needs to
// keep every key of a topic together and to know when two keys may be used
// in one script.
package hashslot

// Redis Cluster assigns a key to one of 16384 slots by CRC16 of its hash tag
// (the part between the first '{' and the next '}', when non-empty) or of the
// whole key. redrive needs the slot to keep every key of a topic together.

const clusterSlots = 16384

var crc16Table = func() [256]uint16 {
	var table [256]uint16
	for i := range table {
		crc := uint16(i) << 8
		for range 8 {
			if crc&0x8000 != 0 {
				crc = crc<<1 ^ 0x1021
			} else {
				crc <<= 1
			}
		}
		table[i] = crc
	}
	return table
}()

func crc16(s string) uint16 {
	var crc uint16
	for i := 0; i < len(s); i++ {
		crc = crc<<8 ^ crc16Table[byte(crc>>8)^s[i]]
	}
	return crc
}

// Tag returns the part of key that Redis Cluster hashes, and whether the
// key has a non-empty hash tag.
func Tag(key string) (string, bool) {
	for i := 0; i < len(key); i++ {
		if key[i] != '{' {
			continue
		}
		for j := i + 1; j < len(key); j++ {
			if key[j] == '}' {
				if j == i+1 {
					return key, false
				}
				return key[i+1 : j], true
			}
		}
		return key, false
	}
	return key, false
}

// Of returns the Redis Cluster slot of key.
func Of(key string) int {
	tag, _ := Tag(key)
	return int(crc16(tag) % clusterSlots)
}
