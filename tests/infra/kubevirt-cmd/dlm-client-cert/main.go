// dlm-client-cert issues a client certificate that a Kubernetes API server authenticates as a
// service account: CN "system:serviceaccount:<ns>:<name>", O its groups. It stands in for the
// service account token a pod would get (the test API server authenticates client certificates).
// openssl cannot write it: such CNs exceed X.509's 64-character upper bound, which openssl enforces
// and Go does not (e.g. system:serviceaccount:kubevirt:kubevirt-synchronization-controller).
// It uses KubeVirt's own certificate helper, pkg/certificates/triple.NewClientKeyPair.
//
//	dlm-client-cert -ca-cert ca.crt -ca-key ca.key -cn NAME [-o GROUP]... -days 7 -out-cert c.crt -out-key c.key
package main

import (
	"crypto/ecdsa"
	"flag"
	"fmt"
	"os"
	"strings"
	"time"

	"kubevirt.io/kubevirt/pkg/certificates/triple"
	"kubevirt.io/kubevirt/pkg/certificates/triple/cert"
)

type list []string

func (l *list) String() string     { return strings.Join(*l, ",") }
func (l *list) Set(s string) error { *l = append(*l, s); return nil }

func main() {
	caCert := flag.String("ca-cert", "", "PEM CA certificate")
	caKey := flag.String("ca-key", "", "PEM CA private key (EC)")
	cn := flag.String("cn", "", "common name: the user name")
	days := flag.Int("days", 7, "validity")
	outCert := flag.String("out-cert", "", "where to write the certificate")
	outKey := flag.String("out-key", "", "where to write the private key")
	var orgs list
	flag.Var(&orgs, "o", "organization: a group (repeatable)")
	flag.Parse()
	if err := run(*caCert, *caKey, *cn, orgs, *days, *outCert, *outKey); err != nil {
		fmt.Fprintf(os.Stderr, "dlm-client-cert: %v\n", err)
		os.Exit(1)
	}
}

func run(caCertFile, caKeyFile, cn string, orgs []string, days int, outCert, outKey string) error {
	certPEM, err := os.ReadFile(caCertFile)
	if err != nil {
		return err
	}
	keyPEM, err := os.ReadFile(caKeyFile)
	if err != nil {
		return err
	}
	certs, err := cert.ParseCertsPEM(certPEM)
	if err != nil {
		return err
	}
	key, err := cert.ParsePrivateKeyPEM(keyPEM)
	if err != nil {
		return err
	}
	ecKey, ok := key.(*ecdsa.PrivateKey)
	if !ok {
		return fmt.Errorf("%s: not an EC private key", caKeyFile)
	}
	pair, err := triple.NewClientKeyPair(&triple.KeyPair{Key: ecKey, Cert: certs[0]}, cn, orgs, time.Duration(days)*24*time.Hour)
	if err != nil {
		return err
	}
	if err := os.WriteFile(outCert, cert.EncodeCertPEM(pair.Cert), 0o600); err != nil {
		return err
	}
	return os.WriteFile(outKey, cert.EncodePrivateKeyPEM(pair.Key), 0o600)
}
