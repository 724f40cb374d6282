package tpmkey

import (
	"crypto"
	"encoding/binary"
	"fmt"
	"os"

	"github.com/google/go-tpm/tpm2"
)

// The blob files are what `tpm2_create -u key.pub -r key.priv` writes: a
// marshalled TPM2B_PUBLIC and TPM2B_PRIVATE, each a big-endian uint16 size
// followed by that many bytes (the form upstream's suite connector reads
// too).

// readBlob reads a TPM2B file and returns its contents without the size.
func readBlob(file, what string) ([]byte, error) {
	if file == "" {
		return nil, fmt.Errorf("%w: no %s file given", ErrBlob, what)
	}
	data, err := os.ReadFile(file)
	if err != nil {
		return nil, fmt.Errorf("%w: %s: %v", ErrBlob, what, err)
	}
	body, err := split2B(data)
	if err != nil {
		return nil, fmt.Errorf("%w: %s %s: %v", ErrBlob, what, file, err)
	}
	return body, nil
}

// split2B checks the size prefix of a TPM2B and returns what follows it.
func split2B(data []byte) ([]byte, error) {
	if len(data) < 2 {
		return nil, fmt.Errorf("%d bytes: too short for a TPM2B", len(data))
	}
	size := int(binary.BigEndian.Uint16(data))
	if size == 0 || size != len(data)-2 {
		return nil, fmt.Errorf("size field %d, but %d bytes follow (expected tpm2_create's -u/-r output)", size, len(data)-2)
	}
	return data[2:], nil
}

// keyInfo is what Key needs from the public area.
type keyInfo struct {
	pub    crypto.PublicKey // *rsa.PublicKey or *ecdsa.PublicKey (P-256)
	scheme tpm2.TPMAlgID    // the key's own signing scheme, or TPMAlgNull (chosen per signature)
}

// parsePublic parses a TPMT_PUBLIC (the contents of a TPM2B_PUBLIC) and
// checks that it is a key we can sign TLS handshakes with: an unrestricted
// signing key, RSA or ECC on NIST P-256.
func parsePublic(body []byte) (*tpm2.TPMTPublic, keyInfo, error) {
	b := tpm2.BytesAs2B[tpm2.TPMTPublic](body)
	pub, err := b.Contents()
	if err != nil {
		return nil, keyInfo{}, fmt.Errorf("%w: public area: %v", ErrBlob, err)
	}
	// Re-marshal to catch trailing bytes the unmarshaller ignored.
	if got := tpm2.Marshal(*pub); len(got) != len(body) {
		return nil, keyInfo{}, fmt.Errorf("%w: public area: %d bytes, %d used", ErrBlob, len(body), len(got))
	}
	a := pub.ObjectAttributes
	if !a.SignEncrypt || a.Restricted {
		return nil, keyInfo{}, fmt.Errorf("%w: the key is not an unrestricted signing key (sign=%v restricted=%v)", ErrUnsupported, a.SignEncrypt, a.Restricted)
	}
	var info keyInfo
	switch pub.Type {
	case tpm2.TPMAlgRSA:
		parms, err := pub.Parameters.RSADetail()
		if err != nil {
			return nil, keyInfo{}, fmt.Errorf("%w: RSA parameters: %v", ErrBlob, err)
		}
		n, err := pub.Unique.RSA()
		if err != nil {
			return nil, keyInfo{}, fmt.Errorf("%w: RSA modulus: %v", ErrBlob, err)
		}
		if bits := int(parms.KeyBits); bits < 2048 || len(n.Buffer)*8 != bits {
			return nil, keyInfo{}, fmt.Errorf("%w: RSA key of %d bits with a %d-byte modulus (at least 2048 bits)", ErrUnsupported, parms.KeyBits, len(n.Buffer))
		}
		k, err := tpm2.RSAPub(parms, n)
		if err != nil {
			return nil, keyInfo{}, fmt.Errorf("%w: RSA public key: %v", ErrBlob, err)
		}
		if k.E != 65537 {
			return nil, keyInfo{}, fmt.Errorf("%w: RSA exponent %d", ErrUnsupported, k.E)
		}
		info.pub = k
		switch s := parms.Scheme.Scheme; s {
		case tpm2.TPMAlgNull, tpm2.TPMAlgRSASSA, tpm2.TPMAlgRSAPSS:
			info.scheme = s
		default:
			return nil, keyInfo{}, fmt.Errorf("%w: RSA scheme %v", ErrUnsupported, s)
		}
	case tpm2.TPMAlgECC:
		parms, err := pub.Parameters.ECCDetail()
		if err != nil {
			return nil, keyInfo{}, fmt.Errorf("%w: ECC parameters: %v", ErrBlob, err)
		}
		if parms.CurveID != tpm2.TPMECCNistP256 {
			return nil, keyInfo{}, fmt.Errorf("%w: ECC curve %v (only NIST P-256)", ErrUnsupported, parms.CurveID)
		}
		pt, err := pub.Unique.ECC()
		if err != nil {
			return nil, keyInfo{}, fmt.Errorf("%w: ECC point: %v", ErrBlob, err)
		}
		k, err := tpm2.ECDSAPub(parms, pt)
		if err != nil {
			return nil, keyInfo{}, fmt.Errorf("%w: ECC public key: %v", ErrBlob, err)
		}
		if _, err := k.ECDH(); err != nil { // on the curve?
			return nil, keyInfo{}, fmt.Errorf("%w: ECC public key: %v", ErrBlob, err)
		}
		info.pub = k
		switch s := parms.Scheme.Scheme; s {
		case tpm2.TPMAlgNull, tpm2.TPMAlgECDSA:
			info.scheme = s
		default:
			return nil, keyInfo{}, fmt.Errorf("%w: ECC scheme %v", ErrUnsupported, s)
		}
	default:
		return nil, keyInfo{}, fmt.Errorf("%w: key type %v (RSA or ECC P-256)", ErrUnsupported, pub.Type)
	}
	return pub, info, nil
}
