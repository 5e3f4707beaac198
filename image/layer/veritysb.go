package layer

import (
	"bytes"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"math/bits"
)

// The dm-verity superblock veritysetup writes at the start of a hash file
// (cryptsetup's on-disk format, version 1): 512 bytes, little-endian.
const (
	sbSize          = 512
	sbSaltMax       = 256
	sbOffVersion    = 8
	sbOffHashType   = 12
	sbOffUUID       = 16
	sbOffAlgorithm  = 32
	sbOffDataBlock  = 64
	sbOffHashBlock  = 68
	sbOffDataBlocks = 72
	sbOffSaltSize   = 80
	sbOffSalt       = 88
)

var sbMagic = []byte("verity\x00\x00")

// veritySuperblock is the decoded superblock.
type veritySuperblock struct {
	Version       uint32
	HashType      uint32
	UUID          string
	Algorithm     string
	DataBlockSize uint32
	HashBlockSize uint32
	DataBlocks    uint64
	Salt          string // hex
}

// parseVeritySuperblock decodes the first sbSize bytes of b.
func parseVeritySuperblock(b []byte) (*veritySuperblock, error) {
	if len(b) < sbSize {
		return nil, fmt.Errorf("verity superblock: %d bytes, need %d", len(b), sbSize)
	}
	if !bytes.Equal(b[:8], sbMagic) {
		return nil, errors.New("verity superblock: no \"verity\" signature")
	}
	le := binary.LittleEndian
	sb := &veritySuperblock{
		Version:       le.Uint32(b[sbOffVersion:]),
		HashType:      le.Uint32(b[sbOffHashType:]),
		DataBlockSize: le.Uint32(b[sbOffDataBlock:]),
		HashBlockSize: le.Uint32(b[sbOffHashBlock:]),
		DataBlocks:    le.Uint64(b[sbOffDataBlocks:]),
	}
	if sb.Version != 1 {
		return nil, fmt.Errorf("verity superblock: version %d, want 1", sb.Version)
	}
	u := b[sbOffUUID : sbOffUUID+16]
	sb.UUID = fmt.Sprintf("%x-%x-%x-%x-%x", u[0:4], u[4:6], u[6:8], u[8:10], u[10:16])
	alg := b[sbOffAlgorithm:sbOffDataBlock]
	n := bytes.IndexByte(alg, 0)
	if n <= 0 {
		return nil, errors.New("verity superblock: hash algorithm name is empty or not NUL-terminated")
	}
	sb.Algorithm = string(alg[:n])
	saltSize := int(le.Uint16(b[sbOffSaltSize:]))
	if saltSize > sbSaltMax {
		return nil, fmt.Errorf("verity superblock: salt size %d, at most %d", saltSize, sbSaltMax)
	}
	sb.Salt = hex.EncodeToString(b[sbOffSalt : sbOffSalt+saltSize])
	return sb, nil
}

// check compares the superblock with the manifest's verity parameters and
// the size of the hash file, and names each difference.
func (sb *veritySuperblock) check(v Verity, hashFileSize int64) error {
	var errs []error
	diff := func(field string, got, want any) {
		errs = append(errs, fmt.Errorf("hash tree superblock %s is %v, manifest says %v", field, got, want))
	}
	if sb.HashType != 1 {
		diff("hash type", sb.HashType, 1)
	}
	if sb.Algorithm != v.HashAlgorithm {
		diff("hash algorithm", sb.Algorithm, v.HashAlgorithm)
	}
	if int(sb.DataBlockSize) != v.DataBlockSize {
		diff("data block size", sb.DataBlockSize, v.DataBlockSize)
	}
	if int(sb.HashBlockSize) != v.HashBlockSize {
		diff("hash block size", sb.HashBlockSize, v.HashBlockSize)
	}
	if sb.DataBlocks != v.DataBlocks {
		diff("data blocks", sb.DataBlocks, v.DataBlocks)
	}
	if sb.Salt != v.Salt {
		diff("salt", sb.Salt, v.Salt)
	}
	if sb.UUID != v.UUID {
		diff("UUID", sb.UUID, v.UUID)
	}
	if len(errs) == 0 {
		if want, err := hashFileSize4K(v.DataBlocks); err != nil {
			errs = append(errs, err)
		} else if hashFileSize != want {
			errs = append(errs, fmt.Errorf("hash tree file has %d bytes, a tree over %d data blocks has %d", hashFileSize, v.DataBlocks, want))
		}
	}
	return errors.Join(errs...)
}

// hashFileSize4K is the size of a hash file veritysetup writes for
// dataBlocks blocks with sha256 and 4096-byte hash blocks: one block for
// the superblock, then each level of the tree, each level holding one
// digest per block of the level below, 128 digests per block.
func hashFileSize4K(dataBlocks uint64) (int64, error) {
	const perBlockBits = 7 // 4096 / 32 = 128 digests per hash block
	if dataBlocks == 0 {
		return 0, errors.New("hash tree over zero data blocks")
	}
	// Levels: enough that the top level fits one block.
	levels := 0
	for levels*perBlockBits < 64 && (dataBlocks-1)>>(levels*perBlockBits) != 0 {
		levels++
	}
	total := uint64(1) // the superblock
	for i := 1; i <= levels; i++ {
		shift := i * perBlockBits
		n := uint64(1) // ceil(dataBlocks / 2^shift), without overflow
		if shift < 64 {
			n = (dataBlocks-1)>>shift + 1
		}
		var carry uint64
		total, carry = bits.Add64(total, n, 0)
		if carry != 0 {
			return 0, errors.New("hash tree size overflows")
		}
	}
	hi, lo := bits.Mul64(total, VerityBlockSize)
	if hi != 0 || lo > 1<<62 {
		return 0, errors.New("hash tree size overflows")
	}
	return int64(lo), nil
}
