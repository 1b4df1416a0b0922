// c2sp-check: an independent check of a C2SP tlog-tiles log directory written by sotto-log,
// built on Go's reference implementation (golang.org/x/mod/sumdb/note and .../tlog) wherever
// Go has one, so that a bug shared by sotto's writer and sotto's reader cannot hide. The Rust
// test crates/log/tests/log.rs builds and runs it; it is not part of any release.
//
// Usage:
//
//	c2sp-check [-witness VKEY]... [-cosignatures K] [-contains S] [-size N] DIR LOG-VKEY
//
// It checks, and prints one summary line and exits 0, or prints what failed and exits 1
// (2 for a usage error):
//   - DIR/checkpoint opens with note.Open under note.NewVerifier(LOG-VKEY) (Go's signed-note
//     code), and its text is a c2sp.org/tlog-checkpoint (origin = the key's name, size, root);
//   - every entry bundle tile/entries/<N>[.p/<W>] of the tree (paths made by Go's tlog.Tile.Path,
//     with sumdb's "8/" height segment and "data" level rewritten to C2SP's layout) holds
//     exactly its W big-endian u16 length-prefixed entries, and each entry's tlog.RecordHash is
//     the hash stored for it in the level-0 hash tile;
//   - tlog.TreeHash over the stored hashes read out of the C2SP hash tiles (with
//     tlog.TileForIndex and tlog.HashFromTile at height 8) equals the signed root, and so does
//     tlog.TreeHash over stored hashes Go computes itself from the entries
//     (tlog.StoredHashesForRecordHash);
//   - every hash tile of the tree holds exactly what tlog.ReadTileData computes from the entries;
//   - inclusion proofs (tlog.ProveRecord / tlog.CheckRecord) for several entries and consistency
//     proofs (tlog.ProveTree / tlog.CheckTree) from several smaller sizes (whose roots Go
//     computes from the entries), proven through Go's own authenticating tile reader
//     tlog.TileHashReader over the C2SP tiles, and again over the tiles read directly;
//   - the witnesses' cosignature/v1 lines (c2sp.org/tlog-cosignature; Go's note package has no
//     verifier for them, so crypto/ed25519 is used directly): a line whose name and key ID
//     match a given witness must verify, and at least K distinct witnesses must have one;
//   - with -contains, some entry contains S; with -size, the tree has exactly N entries.
package main

import (
	"bytes"
	"crypto/ed25519"
	"crypto/sha256"
	"encoding/base64"
	"encoding/binary"
	"errors"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"golang.org/x/mod/sumdb/note"
	"golang.org/x/mod/sumdb/tlog"
)

// tileHeight is the height of every C2SP tile: 256 hashes (or entries) per full tile.
const tileHeight = 8

type repeated []string

func (r *repeated) String() string     { return strings.Join(*r, ",") }
func (r *repeated) Set(s string) error { *r = append(*r, s); return nil }

func main() {
	var witnessKeys repeated
	flag.Var(&witnessKeys, "witness", "a witness's cosignature/v1 vkey (name+id+base64(0x04||key)); repeatable")
	need := flag.Int("cosignatures", 0, "how many distinct given witnesses must have cosigned the checkpoint")
	contains := flag.String("contains", "", "a string some entry must contain")
	wantSize := flag.Int64("size", -1, "the number of entries the log must have")
	flag.Usage = func() {
		fmt.Fprintln(os.Stderr, "usage: c2sp-check [-witness VKEY]... [-cosignatures K] [-contains S] [-size N] DIR LOG-VKEY")
		flag.PrintDefaults()
	}
	flag.Parse()
	if flag.NArg() != 2 || *need < 0 {
		flag.Usage()
		os.Exit(2)
	}
	summary, err := check(flag.Arg(0), flag.Arg(1), witnessKeys, *need, *contains, *wantSize)
	if err != nil {
		fmt.Printf("c2sp-check: FAIL: %v\n", err)
		os.Exit(1)
	}
	fmt.Println(summary)
}

// logDir reads the C2SP tiles of one tree size out of a directory.
type logDir struct {
	dir   string
	size  int64
	files map[string][]byte
}

// c2spPath maps a Go (sumdb) tile to its C2SP path: sumdb's "tile/8/L/..." becomes
// "tile/L/...", and the record level "tile/8/data/..." becomes "tile/entries/...". The index
// encoding (3-digit groups, "x" on all but the last, ".p/W" for partial tiles) is Go's.
func c2spPath(t tlog.Tile) (string, error) {
	if t.H != tileHeight {
		return "", fmt.Errorf("tile %v is not of height %d", t, tileHeight)
	}
	p := t.Path()
	prefix := fmt.Sprintf("tile/%d/", tileHeight)
	if !strings.HasPrefix(p, prefix) {
		return "", fmt.Errorf("unexpected Go tile path %q", p)
	}
	rest := p[len(prefix):]
	if t.L == -1 {
		if !strings.HasPrefix(rest, "data/") {
			return "", fmt.Errorf("unexpected Go data tile path %q", p)
		}
		rest = "entries/" + rest[len("data/"):]
	}
	return "tile/" + rest, nil
}

// width is the width the tile at (level, n) has in the tree: level -1 is the entry bundles.
func (l *logDir) width(level int, n int64) (int, error) {
	count := l.size
	if level > 0 {
		count = l.size >> uint(tileHeight*level)
	}
	w := count - n<<tileHeight
	if w <= 0 {
		return 0, fmt.Errorf("the tree of %d entries has no tile at level %d index %d", l.size, level, n)
	}
	if w > 1<<tileHeight {
		w = 1 << tileHeight
	}
	return int(w), nil
}

// read returns the contents of the tile the tree has at (t.L, t.N), with the width the tree
// gives it; t.W must not exceed that width.
func (l *logDir) read(t tlog.Tile) (tlog.Tile, []byte, error) {
	w, err := l.width(t.L, t.N)
	if err != nil {
		return t, nil, err
	}
	if t.W > w {
		return t, nil, fmt.Errorf("tile %v is wider than the tree's (%d)", t, w)
	}
	t.W = w
	path, err := c2spPath(t)
	if err != nil {
		return t, nil, err
	}
	data, ok := l.files[path]
	if !ok {
		data, err = os.ReadFile(filepath.Join(l.dir, filepath.FromSlash(path)))
		if err != nil {
			return t, nil, err
		}
		l.files[path] = data
	}
	if t.L >= 0 && len(data) != t.W*tlog.HashSize {
		return t, nil, fmt.Errorf("%s holds %d bytes, not %d hashes", path, len(data), t.W)
	}
	return t, data, nil
}

// ReadHashes is a tlog.HashReader over the hash tiles on disk, not authenticated: callers
// compare what they compute against the signed root.
func (l *logDir) ReadHashes(indexes []int64) ([]tlog.Hash, error) {
	out := make([]tlog.Hash, len(indexes))
	for i, x := range indexes {
		t, data, err := l.read(tlog.TileForIndex(tileHeight, x))
		if err != nil {
			return nil, err
		}
		out[i], err = tlog.HashFromTile(t, data, x)
		if err != nil {
			return nil, err
		}
	}
	return out, nil
}

// tileReader is a tlog.TileReader over the hash tiles on disk, for tlog.TileHashReader, which
// authenticates every tile it reads against the tree hash it is given.
type tileReader struct{ l *logDir }

func (r tileReader) Height() int { return tileHeight }

func (r tileReader) ReadTiles(tiles []tlog.Tile) ([][]byte, error) {
	out := make([][]byte, len(tiles))
	for i, t := range tiles {
		got, data, err := r.l.read(t)
		if err != nil {
			return nil, err
		}
		if got.W != t.W {
			return nil, fmt.Errorf("Go asked for tile %v, the tree has it with width %d", t, got.W)
		}
		out[i] = data
	}
	return out, nil
}

func (r tileReader) SaveTiles([]tlog.Tile, [][]byte) {}

// memHashes is a tlog.HashReader over stored hashes Go computed from the entries.
type memHashes []tlog.Hash

func (m *memHashes) ReadHashes(indexes []int64) ([]tlog.Hash, error) {
	out := make([]tlog.Hash, len(indexes))
	for i, x := range indexes {
		if x < 0 || x >= int64(len(*m)) {
			return nil, fmt.Errorf("stored hash %d not computed", x)
		}
		out[i] = (*m)[x]
	}
	return out, nil
}

func sameHashes(a, b []tlog.Hash) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

type checkpoint struct {
	origin string
	size   int64
	root   tlog.Hash
}

// parseCheckpoint parses a c2sp.org/tlog-checkpoint note text.
func parseCheckpoint(text string) (checkpoint, error) {
	var c checkpoint
	if !strings.HasSuffix(text, "\n") {
		return c, errors.New("checkpoint text does not end in a newline")
	}
	lines := strings.Split(strings.TrimSuffix(text, "\n"), "\n")
	if len(lines) < 3 {
		return c, errors.New("checkpoint has fewer than three lines")
	}
	c.origin = lines[0]
	if c.origin == "" {
		return c, errors.New("checkpoint origin is empty")
	}
	s := lines[1]
	if s == "" || (len(s) > 1 && s[0] == '0') || strings.Trim(s, "0123456789") != "" {
		return c, fmt.Errorf("checkpoint size %q is not a decimal without leading zeroes", s)
	}
	size, err := strconv.ParseInt(s, 10, 64)
	if err != nil {
		return c, fmt.Errorf("checkpoint size %q: %v", s, err)
	}
	c.size = size
	root, err := base64.StdEncoding.DecodeString(lines[2])
	if err != nil || len(root) != tlog.HashSize || base64.StdEncoding.EncodeToString(root) != lines[2] {
		return c, fmt.Errorf("checkpoint root %q is not 32 bytes of base64", lines[2])
	}
	copy(c.root[:], root)
	for _, e := range lines[3:] {
		if e == "" {
			return c, errors.New("checkpoint has an empty extension line")
		}
	}
	return c, nil
}

type witness struct {
	name string
	id   uint32
	key  ed25519.PublicKey
}

// parseWitness parses a cosignature/v1 vkey: name+hex(key ID)+base64(0x04 || Ed25519 key),
// and checks its key ID is SHA-256(name || "\n" || 0x04 || key)[:4].
func parseWitness(vkey string) (witness, error) {
	var w witness
	parts := strings.SplitN(vkey, "+", 3)
	if len(parts) != 3 || parts[0] == "" || len(parts[1]) != 8 {
		return w, fmt.Errorf("witness key %q is not name+id+key", vkey)
	}
	w.name = parts[0]
	id, err := strconv.ParseUint(parts[1], 16, 32)
	if err != nil {
		return w, fmt.Errorf("witness key %q: bad key ID", vkey)
	}
	w.id = uint32(id)
	raw, err := base64.StdEncoding.DecodeString(parts[2])
	if err != nil || len(raw) != 1+ed25519.PublicKeySize || raw[0] != 0x04 {
		return w, fmt.Errorf("witness key %q is not a type 0x04 Ed25519 key", vkey)
	}
	w.key = ed25519.PublicKey(raw[1:])
	h := sha256.New()
	h.Write([]byte(w.name))
	h.Write([]byte{'\n', 0x04})
	h.Write(w.key)
	if binary.BigEndian.Uint32(h.Sum(nil)[:4]) != w.id {
		return w, fmt.Errorf("witness key %q: the key ID does not match the key", vkey)
	}
	return w, nil
}

// cosigned reports whether sig (one signature line's base64) is a valid cosignature/v1 by w
// on the note text.
func cosigned(w witness, text string, b64 string) (uint64, error) {
	raw, err := base64.StdEncoding.DecodeString(b64)
	if err != nil {
		return 0, err
	}
	// key ID (4) || timestamp (8) || Ed25519 signature (64)
	if len(raw) != 4+8+ed25519.SignatureSize {
		return 0, fmt.Errorf("%d bytes, not a timestamped Ed25519 signature", len(raw))
	}
	ts := binary.BigEndian.Uint64(raw[4:12])
	if ts > 1<<63-1 {
		return 0, fmt.Errorf("timestamp %d above 2^63-1", ts)
	}
	msg := "cosignature/v1\ntime " + strconv.FormatUint(ts, 10) + "\n" + text
	if !ed25519.Verify(w.key, []byte(msg), raw[12:]) {
		return 0, errors.New("the Ed25519 signature does not verify")
	}
	return ts, nil
}

func check(dir, vkey string, witnessKeys []string, need int, contains string, wantSize int64) (string, error) {
	// The checkpoint, with Go's signed-note implementation.
	verifier, err := note.NewVerifier(vkey)
	if err != nil {
		return "", fmt.Errorf("log key: %v", err)
	}
	msg, err := os.ReadFile(filepath.Join(dir, "checkpoint"))
	if err != nil {
		return "", err
	}
	n, err := note.Open(msg, note.VerifierList(verifier))
	if err != nil {
		return "", fmt.Errorf("checkpoint: note.Open: %v", err)
	}
	cp, err := parseCheckpoint(n.Text)
	if err != nil {
		return "", err
	}
	if cp.origin != verifier.Name() {
		return "", fmt.Errorf("checkpoint origin %q is not the log key's name %q", cp.origin, verifier.Name())
	}
	if wantSize >= 0 && cp.size != wantSize {
		return "", fmt.Errorf("the log has %d entries, not %d", cp.size, wantSize)
	}
	l := &logDir{dir: dir, size: cp.size, files: map[string][]byte{}}

	// Entry bundles: every entry, its record hash against the level-0 tile, and Go's own
	// stored hashes computed from the record hashes.
	var records []tlog.Hash
	mem := &memHashes{}
	found := -1
	bundles := 0
	for b := int64(0); b<<tileHeight < cp.size; b++ {
		w, err := l.width(-1, b)
		if err != nil {
			return "", err
		}
		t, data, err := l.read(tlog.Tile{H: tileHeight, L: -1, N: b, W: w})
		if err != nil {
			return "", err
		}
		path, _ := c2spPath(t)
		bundles++
		rest := data
		for i := 0; i < w; i++ {
			if len(rest) < 2 {
				return "", fmt.Errorf("%s: truncated before entry %d of %d", path, i, w)
			}
			size := int(binary.BigEndian.Uint16(rest))
			if len(rest)-2 < size {
				return "", fmt.Errorf("%s: entry %d is truncated", path, i)
			}
			entry := rest[2 : 2+size]
			rest = rest[2+size:]
			index := b<<tileHeight + int64(i)
			h := tlog.RecordHash(entry)
			stored, err := l.ReadHashes([]int64{tlog.StoredHashIndex(0, index)})
			if err != nil {
				return "", fmt.Errorf("level-0 hash of entry %d: %v", index, err)
			}
			if stored[0] != h {
				return "", fmt.Errorf("entry %d (%s) does not hash to the level-0 tile's hash", index, path)
			}
			if contains != "" && found < 0 && bytes.Contains(entry, []byte(contains)) {
				found = int(index)
			}
			hashes, err := tlog.StoredHashesForRecordHash(index, h, mem)
			if err != nil {
				return "", err
			}
			*mem = append(*mem, hashes...)
			records = append(records, h)
		}
		if len(rest) != 0 {
			return "", fmt.Errorf("%s: %d bytes after its %d entries", path, len(rest), w)
		}
	}
	if int64(len(records)) != cp.size {
		return "", fmt.Errorf("read %d entries, the checkpoint says %d", len(records), cp.size)
	}
	if contains != "" && found < 0 {
		return "", fmt.Errorf("no entry contains %q", contains)
	}

	// The root. Go's tlog.TreeHash defines the empty tree's hash as all zeroes; RFC 6962 (and
	// so C2SP) as SHA-256 of the empty string.
	if cp.size == 0 {
		if cp.root != tlog.Hash(sha256.Sum256(nil)) {
			return "", errors.New("the empty tree's root is not SHA-256 of the empty string")
		}
	} else {
		fromTiles, err := tlog.TreeHash(cp.size, l)
		if err != nil {
			return "", fmt.Errorf("tlog.TreeHash over the hash tiles: %v", err)
		}
		if fromTiles != cp.root {
			return "", fmt.Errorf("tlog.TreeHash over the hash tiles is %v, the checkpoint says %v", fromTiles, cp.root)
		}
		fromEntries, err := tlog.TreeHash(cp.size, mem)
		if err != nil {
			return "", err
		}
		if fromEntries != cp.root {
			return "", fmt.Errorf("tlog.TreeHash over the entries is %v, the checkpoint says %v", fromEntries, cp.root)
		}
	}

	// Every hash tile of the tree, byte for byte, against what Go computes from the entries.
	hashTiles := 0
	for _, t := range tlog.NewTiles(tileHeight, 0, cp.size) {
		if w, _ := l.width(t.L, t.N); t.W != w {
			continue // a narrower version of the right-most tile: not part of this tree
		}
		want, err := tlog.ReadTileData(t, mem)
		if err != nil {
			return "", err
		}
		_, got, err := l.read(t)
		if err != nil {
			return "", err
		}
		if !bytes.Equal(got, want) {
			path, _ := c2spPath(t)
			return "", fmt.Errorf("%s does not hold the hashes Go computes from the entries", path)
		}
		hashTiles++
	}

	// Proofs, through Go's authenticating tile reader.
	proofs, consistency := 0, 0
	if cp.size > 0 {
		auth := tlog.TileHashReader(tlog.Tree{N: cp.size, Hash: cp.root}, tileReader{l})
		seen := map[int64]bool{}
		for _, i := range []int64{0, cp.size - 1, cp.size / 2, 255, 256, 7919, cp.size / 3} {
			if i < 0 || i >= cp.size || seen[i] {
				continue
			}
			seen[i] = true
			p, err := tlog.ProveRecord(cp.size, i, auth)
			if err != nil {
				return "", fmt.Errorf("tlog.ProveRecord(%d, %d): %v", cp.size, i, err)
			}
			if direct, err := tlog.ProveRecord(cp.size, i, l); err != nil || !sameHashes(p, direct) {
				return "", fmt.Errorf("tlog.ProveRecord(%d, %d) over the tiles read directly differs: %v", cp.size, i, err)
			}
			if err := tlog.CheckRecord(p, cp.size, cp.root, i, records[i]); err != nil {
				return "", fmt.Errorf("tlog.CheckRecord for entry %d: %v", i, err)
			}
			wrong := records[i]
			wrong[0] ^= 1
			if tlog.CheckRecord(p, cp.size, cp.root, i, wrong) == nil {
				return "", fmt.Errorf("tlog.CheckRecord accepted a wrong record hash for entry %d", i)
			}
			proofs++
		}
		done := map[int64]bool{}
		for _, old := range []int64{1, 7, 255, 256, 257, cp.size / 2, cp.size - 1} {
			if old <= 0 || old >= cp.size || done[old] {
				continue
			}
			done[old] = true
			oldRoot, err := tlog.TreeHash(old, mem)
			if err != nil {
				return "", err
			}
			p, err := tlog.ProveTree(cp.size, old, auth)
			if err != nil {
				return "", fmt.Errorf("tlog.ProveTree(%d, %d): %v", cp.size, old, err)
			}
			if direct, err := tlog.ProveTree(cp.size, old, l); err != nil || !sameHashes(p, direct) {
				return "", fmt.Errorf("tlog.ProveTree(%d, %d) over the tiles read directly differs: %v", cp.size, old, err)
			}
			if err := tlog.CheckTree(p, cp.size, cp.root, old, oldRoot); err != nil {
				return "", fmt.Errorf("tlog.CheckTree from %d to %d: %v", old, cp.size, err)
			}
			consistency++
		}
	}

	// Witness cosignatures (c2sp.org/tlog-cosignature, cosignature/v1).
	var witnesses []witness
	for _, k := range witnessKeys {
		w, err := parseWitness(k)
		if err != nil {
			return "", err
		}
		witnesses = append(witnesses, w)
	}
	cosigners := map[string]bool{}
	for _, s := range n.UnverifiedSigs {
		for _, w := range witnesses {
			if s.Name != w.name || s.Hash != w.id {
				continue
			}
			if _, err := cosigned(w, n.Text, s.Base64); err != nil {
				return "", fmt.Errorf("cosignature by %s+%08x: %v", w.name, w.id, err)
			}
			cosigners[fmt.Sprintf("%s+%08x", w.name, w.id)] = true
		}
	}
	if len(cosigners) < need {
		return "", fmt.Errorf("%d of the given witnesses cosigned the checkpoint, %d required", len(cosigners), need)
	}

	entryNote := ""
	if contains != "" {
		entryNote = fmt.Sprintf(" contains=%d", found)
	}
	return fmt.Sprintf("c2sp-check: ok origin=%s size=%d root=%s entries=%d bundles=%d hash-tiles=%d inclusion-proofs=%d consistency-proofs=%d cosignatures=%d/%d%s",
		cp.origin, cp.size, base64.StdEncoding.EncodeToString(cp.root[:]), len(records), bundles, hashTiles, proofs, consistency, len(cosigners), need, entryNote), nil
}
