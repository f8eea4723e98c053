// dlm-kubevirt-manifests prints, as one JSON object, what KubeVirt's virt-operator would install for a
// KubeVirt CR: its install strategy (CRDs, RBAC, Services, webhook configurations, Deployments with the
// components' flags, CA ConfigMaps) and the certificate Secrets filled in the way virt-operator fills
// them. Every object comes from KubeVirt's own code; this program only calls it and prints the result.
//
// It is not part of KubeVirt: tests/infra/build-kubevirt.sh copies it into the unpacked KubeVirt tree
// as cmd/dlm-kubevirt-manifests and builds it with virt-api & co. The kubectl-dlm test harness plays
// virt-operator with its output (tests/harness/kubevirt.py).
//
//	VIRT_OPERATOR_IMAGE=kubevirt/virt-operator:v1.9.0 KUBEVIRT_VERSION=v1.9.0 \
//	  dlm-kubevirt-manifests -kubevirt kv.json > manifests.json
//
// KubeVirt v1.9.0 sources it follows:
//   - pkg/virt-operator/resource/generate/install/strategy.go GenerateCurrentInstallStrategy: the objects
//   - pkg/virt-operator/util/config.go GetTargetConfigFromKV: the deployment config from the CR
//   - pkg/virt-operator/resource/apply/core.go createOrUpdateComponentsWithCertificates: the CA secret
//     first, then every certificate secret signed by it (components.PopulateSecretWithCertificate), the
//     kubevirt-ca ConfigMap bundle (createOrUpdateKubeVirtCAConfigMap), and that bundle as every
//     webhook's caBundle (createOrUpdateValidatingWebhookConfigurations / ...Mutating...).
//   - pkg/virt-operator/resource/apply/certificates.go: default durations from the CR.
package main

import (
	"encoding/json"
	"flag"
	"fmt"
	"os"

	k8sv1 "k8s.io/api/core/v1"

	v1 "kubevirt.io/api/core/v1"

	"kubevirt.io/kubevirt/pkg/certificates/triple/cert"
	"kubevirt.io/kubevirt/pkg/virt-operator/resource/apply"
	"kubevirt.io/kubevirt/pkg/virt-operator/resource/generate/components"
	"kubevirt.io/kubevirt/pkg/virt-operator/resource/generate/install"
	"kubevirt.io/kubevirt/pkg/virt-operator/util"
)

func main() {
	kvFile := flag.String("kubevirt", "", "the KubeVirt CR (JSON or YAML as JSON) the operator reconciles")
	flag.Parse()
	if err := run(*kvFile); err != nil {
		fmt.Fprintf(os.Stderr, "dlm-kubevirt-manifests: %v\n", err)
		os.Exit(1)
	}
}

func run(kvFile string) error {
	raw, err := os.ReadFile(kvFile)
	if err != nil {
		return err
	}
	kv := &v1.KubeVirt{}
	if err := json.Unmarshal(raw, kv); err != nil {
		return fmt.Errorf("%s: %v", kvFile, err)
	}
	config := util.GetTargetConfigFromKV(kv)
	strategy, err := install.GenerateCurrentInstallStrategy(config, "", kv.Namespace)
	if err != nil {
		return err
	}

	selfSigned := kv.Spec.CertificateRotationStrategy.SelfSigned
	secrets := strategy.CertificateSecrets()
	caSecret := find(secrets, components.KubeVirtCASecretName)
	if caSecret == nil {
		return fmt.Errorf("the install strategy has no %s secret", components.KubeVirtCASecretName)
	}
	if err := components.PopulateSecretWithCertificate(caSecret, nil, apply.GetCADuration(selfSigned)); err != nil {
		return err
	}
	caCert, err := components.LoadCertificates(caSecret)
	if err != nil {
		return err
	}
	for _, s := range secrets {
		if s == caSecret {
			continue
		}
		ca, duration := caCert, apply.GetCertDuration(selfSigned)
		if s.Name == components.KubeVirtExportCASecretName || s.Name == components.KubeVirtBackupCASecretName {
			ca, duration = nil, apply.GetCADuration(selfSigned) // CAs of their own
		}
		if err := components.PopulateSecretWithCertificate(s, ca, duration); err != nil {
			return fmt.Errorf("secret %s: %v", s.Name, err)
		}
	}

	// The kubevirt-ca bundle starts as the own CA (core.go:737-740). CAs of other clusters arrive
	// later through kubevirt-external-ca, as an admin puts them there; the harness merges them.
	bundle := cert.EncodeCertPEM(caCert.Leaf)
	configMaps := strategy.ConfigMaps()
	for _, cm := range configMaps {
		switch cm.Name {
		case components.KubeVirtCASecretName:
			cm.Data = map[string]string{components.CABundleKey: string(bundle)}
		case components.ExternalKubeVirtCAConfigMapName: // emptied once merged (cleanupExternalCACerts)
			cm.Data = map[string]string{components.CABundleKey: ""}
		case components.KubeVirtExportCASecretName, components.KubeVirtBackupCASecretName:
			if s := find(secrets, cm.Name); s != nil {
				cm.Data = map[string]string{components.CABundleKey: string(s.Data[k8sv1.TLSCertKey])}
			}
		}
	}
	for _, w := range strategy.ValidatingWebhookConfigurations() {
		for i := range w.Webhooks {
			w.Webhooks[i].ClientConfig.CABundle = bundle
		}
	}
	for _, w := range strategy.MutatingWebhookConfigurations() {
		for i := range w.Webhooks {
			w.Webhooks[i].ClientConfig.CABundle = bundle
		}
	}

	// The KubeVirt CRD itself ships with the operator's manifest, not in the install strategy
	// (tools/resource-generator writes it from components.NewKubeVirtCrd).
	kubevirtCrd, err := components.NewKubeVirtCrd()
	if err != nil {
		return err
	}
	out := map[string]interface{}{
		"customResourceDefinitions":       append(strategy.CRDs(), kubevirtCrd),
		"serviceAccounts":                 strategy.ServiceAccounts(),
		"clusterRoles":                    strategy.ClusterRoles(),
		"clusterRoleBindings":             strategy.ClusterRoleBindings(),
		"roles":                           strategy.Roles(),
		"roleBindings":                    strategy.RoleBindings(),
		"services":                        strategy.Services(),
		"deployments":                     strategy.Deployments(),
		"daemonSets":                      strategy.DaemonSets(),
		"validatingWebhookConfigurations": strategy.ValidatingWebhookConfigurations(),
		"mutatingWebhookConfigurations":   strategy.MutatingWebhookConfigurations(),
		"configMaps":                      dedupe(configMaps),
		"secrets":                         secrets,
	}
	enc := json.NewEncoder(os.Stdout)
	enc.SetIndent("", " ")
	return enc.Encode(out)
}

func find(secrets []*k8sv1.Secret, name string) *k8sv1.Secret {
	for _, s := range secrets {
		if s.Name == name {
			return s
		}
	}
	return nil
}

// GenerateCurrentInstallStrategy appends NewCAConfigMaps twice; the operator applies each name once.
func dedupe(cms []*k8sv1.ConfigMap) []*k8sv1.ConfigMap {
	seen := map[string]bool{}
	var out []*k8sv1.ConfigMap
	for _, cm := range cms {
		if !seen[cm.Namespace+"/"+cm.Name] {
			seen[cm.Namespace+"/"+cm.Name] = true
			out = append(out, cm)
		}
	}
	return out
}
