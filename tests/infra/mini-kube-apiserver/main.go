// mini-kube-apiserver: a Kubernetes API server for kubectl-dlm's tests.
//
// Debian packages the real k8s.io/apiserver and apiextensions-apiserver as Go source, but not
// k8s.io/kubernetes (kube-apiserver proper). So this program is shaped like kube-apiserver, which
// delegates to apiextensions:
//
//   - CRD server: the unmodified upstream apiextensions-apiserver. It gives real CRD serving,
//     server-side apply with managedFields and conflicts, watch with resourceVersions, bookmarks
//     and 410 Gone, the status subresource, dry-run, structural-schema validation and OpenAPI.
//   - front server: a second generic apiserver that serves the built-in kinds tests and
//     KubeVirt's components need (table `kinds`; pods/binding as the scheduler uses it; pods/proxy
//     to a pod's global unicast IP, its certificate unverified, as kube-apiserver's) from etcd
//     with the real k8s.io/api types, but no validation and only a few defaults (`Canonicalize`).
//     It also serves merged discovery and OpenAPI, so clients see one cluster.
//   - admission: the upstream MutatingAdmissionWebhook and ValidatingAdmissionWebhook plugins of
//     k8s.io/apiserver run for both servers, configured by the Mutating/ValidatingWebhook-
//     Configuration objects stored here, exactly as in kube-apiserver: a denied object is never
//     stored, a dry-run is judged, mutations are applied. A webhook named by a Service is reached
//     through the Service's EndpointSlices (kube-apiserver --enable-aggregator-routing), so it
//     can listen on loopback. With no configurations (the default) nothing is called.
//
// Tests only: there are no controllers and no RBAC (use a system:masters client certificate;
// (Self)SubjectAccessReviews allow only that group). Built by tests/infra/build.sh.
package main

import (
	"context"
	"crypto/tls"
	"encoding/json"
	"fmt"
	"maps"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"reflect"
	"slices"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/spf13/cobra"
	noopoteltrace "go.opentelemetry.io/otel/trace/noop"
	admissionregv1 "k8s.io/api/admissionregistration/v1"
	appsv1 "k8s.io/api/apps/v1"
	authzv1 "k8s.io/api/authorization/v1"
	coordinationv1 "k8s.io/api/coordination/v1"
	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	networkingv1 "k8s.io/api/networking/v1"
	policyv1 "k8s.io/api/policy/v1"
	storagev1 "k8s.io/api/storage/v1"
	apiextensionsv1 "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/v1"
	extensionsapiserver "k8s.io/apiextensions-apiserver/pkg/apiserver"
	"k8s.io/apiextensions-apiserver/pkg/cmd/server/options"
	generatedopenapi "k8s.io/apiextensions-apiserver/pkg/generated/openapi"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metainternalversion "k8s.io/apimachinery/pkg/apis/meta/internalversion"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/conversion"
	"k8s.io/apimachinery/pkg/fields"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/runtime/serializer"
	utilnet "k8s.io/apimachinery/pkg/util/net"
	upgradeproxy "k8s.io/apimachinery/pkg/util/proxy"
	"k8s.io/apimachinery/pkg/util/validation/field"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/apimachinery/pkg/version"
	"k8s.io/apiserver/pkg/admission"
	webhookinit "k8s.io/apiserver/pkg/admission/plugin/webhook/initializer"
	"k8s.io/apiserver/pkg/authentication/user"
	"k8s.io/apiserver/pkg/endpoints/discovery/aggregated"
	openapinamer "k8s.io/apiserver/pkg/endpoints/openapi"
	genericrequest "k8s.io/apiserver/pkg/endpoints/request"
	"k8s.io/apiserver/pkg/registry/generic"
	genericregistry "k8s.io/apiserver/pkg/registry/generic/registry"
	"k8s.io/apiserver/pkg/registry/rest"
	genericapiserver "k8s.io/apiserver/pkg/server"
	genericoptions "k8s.io/apiserver/pkg/server/options"
	"k8s.io/apiserver/pkg/storage"
	storeerr "k8s.io/apiserver/pkg/storage/errors"
	"k8s.io/apiserver/pkg/storage/names"
	"k8s.io/apiserver/pkg/util/dryrun"
	utilopenapi "k8s.io/apiserver/pkg/util/openapi"
	"k8s.io/apiserver/pkg/util/proxy"
	"k8s.io/apiserver/pkg/util/webhook"
	"k8s.io/client-go/kubernetes"
	kscheme "k8s.io/client-go/kubernetes/scheme"
	corelisters "k8s.io/client-go/listers/core/v1"
	"k8s.io/client-go/tools/cache"
	"k8s.io/component-base/cli"
	"k8s.io/klog/v2"
	"k8s.io/kube-openapi/pkg/aggregator"
	"k8s.io/kube-openapi/pkg/common"
	"k8s.io/kube-openapi/pkg/spec3"
	"k8s.io/kube-openapi/pkg/validation/spec"
	"k8s.io/utils/ptr"
)

// kindInfo is one built-in resource served by the front server. Adding a kind is one line.
type kindInfo struct {
	gv         schema.GroupVersion
	resource   string
	obj, list  runtime.Object // empty values; copied to make new ones
	namespaced bool
	status     bool // has a /status subresource: the main endpoint then ignores .status
	shortNames []string
}

var kinds = []kindInfo{
	{corev1.SchemeGroupVersion, "namespaces", &corev1.Namespace{}, &corev1.NamespaceList{}, false, true, []string{"ns"}},
	{corev1.SchemeGroupVersion, "secrets", &corev1.Secret{}, &corev1.SecretList{}, true, false, nil},
	{corev1.SchemeGroupVersion, "configmaps", &corev1.ConfigMap{}, &corev1.ConfigMapList{}, true, false, []string{"cm"}},
	{corev1.SchemeGroupVersion, "persistentvolumeclaims", &corev1.PersistentVolumeClaim{}, &corev1.PersistentVolumeClaimList{}, true, true, []string{"pvc"}},
	{corev1.SchemeGroupVersion, "services", &corev1.Service{}, &corev1.ServiceList{}, true, true, []string{"svc"}},
	{corev1.SchemeGroupVersion, "pods", &corev1.Pod{}, &corev1.PodList{}, true, true, []string{"po"}},
	{corev1.SchemeGroupVersion, "events", &corev1.Event{}, &corev1.EventList{}, true, false, []string{"ev"}},
	{storagev1.SchemeGroupVersion, "storageclasses", &storagev1.StorageClass{}, &storagev1.StorageClassList{}, false, false, []string{"sc"}},
	// KubeVirt keeps instancetype/preference revisions as ControllerRevisions.
	{appsv1.SchemeGroupVersion, "controllerrevisions", &appsv1.ControllerRevision{}, &appsv1.ControllerRevisionList{}, true, false, nil},
	// What KubeVirt's virt-controller, virt-api and synchronization-controller list, watch or write
	// (kubevirt v1.9.0 pkg/controller/virtinformers.go, pkg/virt-controller/watch/application.go:385-463).
	{corev1.SchemeGroupVersion, "nodes", &corev1.Node{}, &corev1.NodeList{}, false, true, []string{"no"}},
	{corev1.SchemeGroupVersion, "endpoints", &corev1.Endpoints{}, &corev1.EndpointsList{}, true, false, []string{"ep"}},
	{corev1.SchemeGroupVersion, "serviceaccounts", &corev1.ServiceAccount{}, &corev1.ServiceAccountList{}, true, false, []string{"sa"}},
	{corev1.SchemeGroupVersion, "resourcequotas", &corev1.ResourceQuota{}, &corev1.ResourceQuotaList{}, true, true, []string{"quota"}},
	{corev1.SchemeGroupVersion, "limitranges", &corev1.LimitRange{}, &corev1.LimitRangeList{}, true, false, []string{"limits"}},
	{corev1.SchemeGroupVersion, "persistentvolumes", &corev1.PersistentVolume{}, &corev1.PersistentVolumeList{}, false, true, []string{"pv"}},
	{coordinationv1.SchemeGroupVersion, "leases", &coordinationv1.Lease{}, &coordinationv1.LeaseList{}, true, false, nil},
	{discoveryv1.SchemeGroupVersion, "endpointslices", &discoveryv1.EndpointSlice{}, &discoveryv1.EndpointSliceList{}, true, false, nil},
	{policyv1.SchemeGroupVersion, "poddisruptionbudgets", &policyv1.PodDisruptionBudget{}, &policyv1.PodDisruptionBudgetList{}, true, true, []string{"pdb"}},
	{networkingv1.SchemeGroupVersion, "ingresses", &networkingv1.Ingress{}, &networkingv1.IngressList{}, true, true, []string{"ing"}},
	// Read by the admission webhook plugins (see admission below).
	{admissionregv1.SchemeGroupVersion, "mutatingwebhookconfigurations", &admissionregv1.MutatingWebhookConfiguration{}, &admissionregv1.MutatingWebhookConfigurationList{}, false, false, nil},
	{admissionregv1.SchemeGroupVersion, "validatingwebhookconfigurations", &admissionregv1.ValidatingWebhookConfiguration{}, &admissionregv1.ValidatingWebhookConfigurationList{}, false, false, nil},
}

func (k kindInfo) singular() string { return strings.ToLower(reflect.TypeOf(k.obj).Elem().Name()) }

var (
	Scheme = runtime.NewScheme()
	Codecs = serializer.NewCodecFactory(Scheme)
)

func init() {
	for _, add := range []func(*runtime.Scheme) error{corev1.AddToScheme, storagev1.AddToScheme,
		appsv1.AddToScheme, authzv1.AddToScheme, coordinationv1.AddToScheme, discoveryv1.AddToScheme,
		policyv1.AddToScheme, networkingv1.AddToScheme, admissionregv1.AddToScheme, metainternalversion.AddToScheme} {
		must(add(Scheme))
	}
	// The generic registry converts through an "internal" version. Registering the same Go
	// types there makes that conversion the identity, so we need no internal types.
	internal := func(gv schema.GroupVersion) schema.GroupVersion {
		return schema.GroupVersion{Group: gv.Group, Version: runtime.APIVersionInternal}
	}
	for _, k := range kinds {
		Scheme.AddKnownTypes(internal(k.gv), k.obj, k.list)
	}
	Scheme.AddKnownTypes(internal(authzv1.SchemeGroupVersion), &authzv1.SelfSubjectAccessReview{}, &authzv1.SubjectAccessReview{})
	Scheme.AddKnownTypes(internal(corev1.SchemeGroupVersion), &corev1.Binding{})
	// The admission webhook plugins convert the request's object to the webhook's version with
	// Scheme.Convert, which needs a function even between identical types: copy.
	for _, k := range kinds {
		for _, o := range []runtime.Object{k.obj, k.list} {
			must(Scheme.AddConversionFunc(o, o, func(a, b interface{}, _ conversion.Scope) error {
				reflect.ValueOf(b).Elem().Set(reflect.ValueOf(a.(runtime.Object).DeepCopyObject()).Elem())
				return nil
			}))
		}
	}
	// The query of pods/proxy (its sub-path arrives as "path"), as Kubernetes' generated
	// Convert_url_Values_To_v1_PodProxyOptions (pkg/apis/core/v1/zz_generated.conversion.go).
	must(Scheme.AddConversionFunc((*url.Values)(nil), (*corev1.PodProxyOptions)(nil), func(a, b interface{}, s conversion.Scope) error {
		out := b.(*corev1.PodProxyOptions)
		if values, ok := map[string][]string(*a.(*url.Values))["path"]; ok && len(values) > 0 {
			return runtime.Convert_Slice_string_To_string(&values, &out.Path, s)
		}
		out.Path = ""
		return nil
	}))
	must(Scheme.AddFieldLabelConversionFunc(corev1.SchemeGroupVersion.WithKind("Pod"), func(label, value string) (string, string, error) {
		if _, ok := podFields(&corev1.Pod{})[label]; ok {
			return label, value, nil
		}
		return "", "", fmt.Errorf("field label not supported: %s", label)
	}))
	Scheme.AddUnversionedTypes(schema.GroupVersion{Version: "v1"},
		&metav1.Status{}, &metav1.APIVersions{}, &metav1.APIGroupList{}, &metav1.APIGroup{}, &metav1.APIResourceList{})
}

func must(err error) {
	if err != nil {
		panic(err)
	}
}

// ---- strategies: no validation or defaulting; status split via reflection ----

type strategy struct {
	runtime.ObjectTyper
	names.NameGenerator
	namespaced bool
	status     bool
}

// fieldOf returns a settable struct field of *obj, if it has one.
func fieldOf(obj runtime.Object, name string) (reflect.Value, bool) {
	f := reflect.ValueOf(obj).Elem().FieldByName(name)
	return f, f.IsValid() && f.CanSet()
}

func (s strategy) NamespaceScoped() bool { return s.namespaced }

// PrepareForCreate sets the initial phase the real controllers/registries would.
func (strategy) PrepareForCreate(_ context.Context, obj runtime.Object) {
	switch o := obj.(type) {
	case *corev1.Namespace:
		o.Status = corev1.NamespaceStatus{Phase: corev1.NamespaceActive}
	case *corev1.PersistentVolumeClaim:
		o.Status = corev1.PersistentVolumeClaimStatus{Phase: corev1.ClaimPending}
	case *corev1.PersistentVolume:
		o.Status = corev1.PersistentVolumeStatus{Phase: corev1.VolumePending}
	case *corev1.Pod:
		o.Status = corev1.PodStatus{Phase: corev1.PodPending}
	}
}

func (s strategy) PrepareForUpdate(_ context.Context, obj, old runtime.Object) {
	if nf, ok := fieldOf(obj, "Status"); ok && s.status {
		of, _ := fieldOf(old, "Status")
		nf.Set(of)
	}
}

// Canonicalize (after a generated name is set) applies the few of Kubernetes' defaults
// (pkg/apis/core/v1/defaults.go; the namespace strategy's Canonicalize) that matter here:
// webhooks select namespaces by their name label, and resolve only ClusterIP-like Services.
func (strategy) Canonicalize(obj runtime.Object) {
	switch o := obj.(type) {
	case *corev1.Namespace: // SetDefaults_Namespace
		if o.Labels == nil {
			o.Labels = map[string]string{}
		}
		o.Labels[corev1.LabelMetadataName] = o.Name
	case *corev1.Service: // SetDefaults_Service
		if o.Spec.Type == "" {
			o.Spec.Type = corev1.ServiceTypeClusterIP
		}
	case *admissionregv1.ValidatingWebhookConfiguration:
		for i := range o.Webhooks {
			w := &o.Webhooks[i]
			webhookDefaults(&w.FailurePolicy, &w.MatchPolicy, &w.NamespaceSelector, &w.ObjectSelector, &w.TimeoutSeconds, w.Rules, &w.ClientConfig)
		}
	case *admissionregv1.MutatingWebhookConfiguration:
		for i := range o.Webhooks {
			w := &o.Webhooks[i]
			webhookDefaults(&w.FailurePolicy, &w.MatchPolicy, &w.NamespaceSelector, &w.ObjectSelector, &w.TimeoutSeconds, w.Rules, &w.ClientConfig)
			if w.ReinvocationPolicy == nil {
				w.ReinvocationPolicy = ptr.To(admissionregv1.NeverReinvocationPolicy)
			}
		}
	}
}

// webhookDefaults is SetDefaults_{Validating,Mutating}Webhook, _Rule and _ServiceReference of
// k8s.io/kubernetes pkg/apis/admissionregistration/v1/defaults.go. They matter: the plugins read a
// missing selector as "matches nothing".
func webhookDefaults(failure **admissionregv1.FailurePolicyType, match **admissionregv1.MatchPolicyType,
	ns, obj **metav1.LabelSelector, timeout **int32, rules []admissionregv1.RuleWithOperations, cc *admissionregv1.WebhookClientConfig) {
	if *failure == nil {
		*failure = ptr.To(admissionregv1.Fail)
	}
	if *match == nil {
		*match = ptr.To(admissionregv1.Equivalent)
	}
	if *ns == nil {
		*ns = &metav1.LabelSelector{}
	}
	if *obj == nil {
		*obj = &metav1.LabelSelector{}
	}
	if *timeout == nil {
		*timeout = ptr.To[int32](10)
	}
	for i := range rules {
		if rules[i].Scope == nil {
			rules[i].Scope = ptr.To(admissionregv1.AllScopes)
		}
	}
	if cc.Service != nil && cc.Service.Port == nil {
		cc.Service.Port = ptr.To[int32](443)
	}
}

func (strategy) Validate(context.Context, runtime.Object) field.ErrorList { return nil }
func (strategy) ValidateUpdate(context.Context, runtime.Object, runtime.Object) field.ErrorList {
	return nil
}
func (strategy) WarningsOnCreate(context.Context, runtime.Object) []string { return nil }
func (strategy) WarningsOnUpdate(context.Context, runtime.Object, runtime.Object) []string {
	return nil
}
func (strategy) AllowCreateOnUpdate() bool      { return false }
func (strategy) AllowUnconditionalUpdate() bool { return true }

// statusStrategy: through /status only .status may change; spec, data and metadata
// (labels, annotations, finalizers...) are kept from the stored object.
type statusStrategy struct{ strategy }

func (statusStrategy) PrepareForUpdate(_ context.Context, obj, old runtime.Object) {
	for _, name := range []string{"Spec", "Data", "StringData"} {
		if nf, ok := fieldOf(obj, name); ok {
			of, _ := fieldOf(old, name)
			nf.Set(of)
		}
	}
	nm, _ := fieldOf(obj, "ObjectMeta")
	om, _ := fieldOf(old, "ObjectMeta")
	rv, mf := nm.FieldByName("ResourceVersion").String(), nm.FieldByName("ManagedFields").Interface()
	nm.Set(om)
	nm.FieldByName("ResourceVersion").SetString(rv)
	nm.FieldByName("ManagedFields").Set(reflect.ValueOf(mf))
}

// statusREST is the /status subresource: get and update (patch is built on these).
type statusREST struct{ store *genericregistry.Store }

func (r *statusREST) New() runtime.Object { return r.store.New() }
func (r *statusREST) Destroy()            {}
func (r *statusREST) Get(ctx context.Context, name string, o *metav1.GetOptions) (runtime.Object, error) {
	return r.store.Get(ctx, name, o)
}
func (r *statusREST) Update(ctx context.Context, name string, objInfo rest.UpdatedObjectInfo, cv rest.ValidateObjectFunc,
	uv rest.ValidateObjectUpdateFunc, _ bool, o *metav1.UpdateOptions) (runtime.Object, bool, error) {
	return r.store.Update(ctx, name, objInfo, cv, uv, false, o)
}

type shortNamed struct {
	*genericregistry.Store
	short []string
}

func (s *shortNamed) ShortNames() []string { return s.short }

// podFields are the field selectors pods support (Kubernetes pkg/registry/core/pod/strategy.go
// ToSelectableFields; accepted by pkg/apis/core/v1/conversion.go). KubeVirt's node controller
// lists pods by spec.nodeName (kubevirt v1.9.0 pkg/virt-controller/watch/node/node.go:323).
func podFields(pod *corev1.Pod) fields.Set {
	ip := podIP(pod)
	return generic.AddObjectMetaFieldsSet(fields.Set{
		"spec.nodeName":            pod.Spec.NodeName,
		"spec.restartPolicy":       string(pod.Spec.RestartPolicy),
		"spec.schedulerName":       pod.Spec.SchedulerName,
		"spec.serviceAccountName":  pod.Spec.ServiceAccountName,
		"spec.hostNetwork":         strconv.FormatBool(pod.Spec.HostNetwork),
		"status.phase":             string(pod.Status.Phase),
		"status.podIP":             ip,
		"status.nominatedNodeName": pod.Status.NominatedNodeName,
	}, &pod.ObjectMeta, true)
}

// podIP is the pod's primary IP as Kubernetes reads it from the internal type, whose podIPs[0] the
// v1 conversion fills from status.podIP (pkg/apis/core/v1/conversion.go Convert_v1_PodStatus_To_core_PodStatus:
// podIP wins when both are set and differ).
func podIP(pod *corev1.Pod) string {
	if pod.Status.PodIP != "" {
		return pod.Status.PodIP
	}
	if len(pod.Status.PodIPs) > 0 {
		return pod.Status.PodIPs[0].IP
	}
	return ""
}

func podAttrs(obj runtime.Object) (labels.Set, fields.Set, error) {
	pod, ok := obj.(*corev1.Pod)
	if !ok {
		return nil, nil, fmt.Errorf("not a pod: %T", obj)
	}
	return pod.Labels, podFields(pod), nil
}

// newStores returns the etcd-backed storage of one kind, and of its /status if it has one.
func newStores(k kindInfo, getter generic.RESTOptionsGetter) (map[string]rest.Storage, error) {
	gr := schema.GroupResource{Group: k.gv.Group, Resource: k.resource}
	s := strategy{ObjectTyper: Scheme, NameGenerator: names.SimpleNameGenerator, namespaced: k.namespaced, status: k.status}
	store := &genericregistry.Store{
		NewFunc:                   func() runtime.Object { return k.obj.DeepCopyObject() },
		NewListFunc:               func() runtime.Object { return k.list.DeepCopyObject() },
		DefaultQualifiedResource:  gr,
		SingularQualifiedResource: schema.GroupResource{Group: k.gv.Group, Resource: k.singular()},
		CreateStrategy:            s,
		UpdateStrategy:            s,
		DeleteStrategy:            s,
		TableConvertor:            rest.NewDefaultTableConvertor(gr),
	}
	opts := &generic.StoreOptions{RESTOptions: getter}
	if _, ok := k.obj.(*corev1.Pod); ok {
		opts.AttrFunc = podAttrs
	}
	if err := store.CompleteWithOptions(opts); err != nil {
		return nil, err
	}
	out := map[string]rest.Storage{k.resource: &shortNamed{store, k.shortNames}}
	if k.status {
		st := *store
		st.UpdateStrategy = statusStrategy{s}
		st.CreateStrategy, st.DeleteStrategy = nil, nil
		out[k.resource+"/status"] = &statusREST{&st}
	}
	return out, nil
}

// selfSubjectAccessReviews answers "may I?" the way RBAC would for the tests' users: the
// system:masters group may do anything; nobody else is granted anything.
type selfSubjectAccessReviews struct{}

func (selfSubjectAccessReviews) New() runtime.Object     { return &authzv1.SelfSubjectAccessReview{} }
func (selfSubjectAccessReviews) Destroy()                {}
func (selfSubjectAccessReviews) NamespaceScoped() bool   { return false }
func (selfSubjectAccessReviews) GetSingularName() string { return "selfsubjectaccessreview" }
func (selfSubjectAccessReviews) Create(ctx context.Context, obj runtime.Object, _ rest.ValidateObjectFunc, _ *metav1.CreateOptions) (runtime.Object, error) {
	review := obj.(*authzv1.SelfSubjectAccessReview)
	u, ok := genericrequest.UserFrom(ctx)
	review.Status.Allowed = ok && slices.Contains(u.GetGroups(), user.SystemPrivilegedGroup)
	if !review.Status.Allowed {
		review.Status.Reason = "mini-kube-apiserver allows only " + user.SystemPrivilegedGroup
	}
	return review, nil
}

// subjectAccessReviews answers the same rule for any user: KubeVirt asks it (virt-controller
// pkg/virt-controller/watch/vm/vm.go:244), and so does this server's delegated authorizer.
type subjectAccessReviews struct{}

func (subjectAccessReviews) New() runtime.Object     { return &authzv1.SubjectAccessReview{} }
func (subjectAccessReviews) Destroy()                {}
func (subjectAccessReviews) NamespaceScoped() bool   { return false }
func (subjectAccessReviews) GetSingularName() string { return "subjectaccessreview" }
func (subjectAccessReviews) Create(ctx context.Context, obj runtime.Object, _ rest.ValidateObjectFunc, _ *metav1.CreateOptions) (runtime.Object, error) {
	review := obj.(*authzv1.SubjectAccessReview)
	review.Status.Allowed = slices.Contains(review.Spec.Groups, user.SystemPrivilegedGroup)
	if !review.Status.Allowed {
		review.Status.Reason = "mini-kube-apiserver allows only " + user.SystemPrivilegedGroup
	}
	return review, nil
}

// bindingREST is pods/binding, as Kubernetes' BindingREST (pkg/registry/core/pod/storage/storage.go,
// Create / setPodNodeAndMetadata / assignPod): the scheduler's way to set spec.nodeName once.
type bindingREST struct{ store *genericregistry.Store }

func (*bindingREST) New() runtime.Object     { return &corev1.Binding{} }
func (*bindingREST) Destroy()                {}
func (*bindingREST) NamespaceScoped() bool   { return true }
func (*bindingREST) GetSingularName() string { return "binding" }
func (r *bindingREST) Create(ctx context.Context, name string, obj runtime.Object, createValidation rest.ValidateObjectFunc, o *metav1.CreateOptions) (runtime.Object, error) {
	b, ok := obj.(*corev1.Binding)
	if !ok {
		return nil, apierrors.NewBadRequest(fmt.Sprintf("not a Binding object: %T", obj))
	}
	if name != b.Name {
		return nil, apierrors.NewBadRequest("name in URL does not match name in Binding object")
	}
	// validation.ValidatePodBinding
	if b.Target.Kind != "" && b.Target.Kind != "Node" {
		return nil, apierrors.NewInvalid(schema.GroupKind{Kind: "Binding"}, name, field.ErrorList{field.NotSupported(field.NewPath("target", "kind"), b.Target.Kind, []string{"Node", "<empty>"})})
	}
	if b.Target.Name == "" {
		return nil, apierrors.NewInvalid(schema.GroupKind{Kind: "Binding"}, name, field.ErrorList{field.Required(field.NewPath("target", "name"), "")})
	}
	if createValidation != nil {
		if err := createValidation(ctx, b.DeepCopyObject()); err != nil {
			return nil, err
		}
	}
	key, err := r.store.KeyFunc(ctx, name)
	if err != nil {
		return nil, err
	}
	var pre *storage.Preconditions
	if b.UID != "" || b.ResourceVersion != "" {
		pre = &storage.Preconditions{}
		if b.UID != "" {
			pre.UID = &b.UID
		}
		if b.ResourceVersion != "" {
			pre.ResourceVersion = &b.ResourceVersion
		}
	}
	err = r.store.Storage.GuaranteedUpdate(ctx, key, &corev1.Pod{}, false, pre, storage.SimpleUpdate(func(obj runtime.Object) (runtime.Object, error) {
		pod := obj.(*corev1.Pod)
		if pod.DeletionTimestamp != nil {
			return nil, fmt.Errorf("pod %s is being deleted, cannot be assigned to a host", pod.Name)
		}
		if pod.Spec.NodeName != "" {
			return nil, fmt.Errorf("pod %v is already assigned to node %q", pod.Name, pod.Spec.NodeName)
		}
		if len(pod.Spec.SchedulingGates) != 0 {
			return nil, fmt.Errorf("pod %v has non-empty .spec.schedulingGates", pod.Name)
		}
		pod.Spec.NodeName = b.Target.Name
		for k, v := range b.Annotations {
			if pod.Annotations == nil {
				pod.Annotations = map[string]string{}
			}
			pod.Annotations[k] = v
		}
		// podutil.UpdatePodCondition: set PodScheduled=True, keeping the transition time if it already was.
		cond := corev1.PodCondition{Type: corev1.PodScheduled, Status: corev1.ConditionTrue, LastTransitionTime: metav1.Now()}
		i := slices.IndexFunc(pod.Status.Conditions, func(c corev1.PodCondition) bool { return c.Type == corev1.PodScheduled })
		if i < 0 {
			pod.Status.Conditions = append(pod.Status.Conditions, cond)
		} else if pod.Status.Conditions[i].Status != corev1.ConditionTrue {
			pod.Status.Conditions[i] = cond
		}
		return pod, nil
	}), dryrun.IsDryRun(o.DryRun), nil)
	if err != nil {
		err = storeerr.InterpretGetError(err, schema.GroupResource{Resource: "pods"}, name)
		err = storeerr.InterpretUpdateError(err, schema.GroupResource{Resource: "pods"}, name)
		if _, ok := err.(*apierrors.StatusError); !ok {
			err = apierrors.NewConflict(schema.GroupResource{Resource: "pods/binding"}, name, err)
		}
		return nil, err
	}
	return &metav1.Status{Status: metav1.StatusSuccess}, nil
}

// proxyREST is pods/proxy, as Kubernetes' ProxyREST (pkg/registry/core/pod/rest/subresources.go,
// kubernetes commit db8b216c): the request goes to the pod's IP through apimachinery's
// UpgradeAwareHandler with the API server's proxy transport (see newProxyTransport).
type proxyREST struct {
	store     *genericregistry.Store
	transport http.RoundTripper
}

func (*proxyREST) New() runtime.Object   { return &corev1.PodProxyOptions{} }
func (*proxyREST) Destroy()              {}
func (*proxyREST) NamespaceScoped() bool { return true }
func (*proxyREST) ConnectMethods() []string {
	return []string{"GET", "POST", "PUT", "PATCH", "DELETE", "HEAD", "OPTIONS"}
}
func (*proxyREST) NewConnectOptions() (runtime.Object, bool, string) {
	return &corev1.PodProxyOptions{}, true, "path"
}
func (r *proxyREST) Connect(ctx context.Context, id string, opts runtime.Object, responder rest.Responder) (http.Handler, error) {
	proxyOpts, ok := opts.(*corev1.PodProxyOptions)
	if !ok {
		return nil, fmt.Errorf("Invalid options object: %#v", opts)
	}
	location, err := podLocation(ctx, r.store, id)
	if err != nil {
		return nil, err
	}
	location.Path = utilnet.JoinPreservingTrailingSlash(location.Path, proxyOpts.Path)
	// wrapTransport=true: URL rewriting, X-Forwarded-* headers, and a failed round trip answered
	// as 503 "error trying to reach service" (k8s.io/apimachinery/pkg/util/proxy/transport.go).
	return upgradeproxy.NewUpgradeAwareHandler(location, r.transport, true, false, upgradeproxy.NewErrorResponder(responder)), nil
}

// podLocation is Kubernetes' pod.ResourceLocation (pkg/registry/core/pod/strategy.go, kubernetes
// commit 008b3652): the id is "name", "name:port" or "scheme:name:port"; without a port, the first
// port a container declares; the pod's primary IP, which must be a global unicast address (so
// never loopback or link-local).
func podLocation(ctx context.Context, store *genericregistry.Store, id string) (*url.URL, error) {
	scheme, name, port, valid := utilnet.SplitSchemeNamePort(id)
	if !valid {
		return nil, apierrors.NewBadRequest(fmt.Sprintf("invalid pod request %q", id))
	}
	obj, err := store.Get(ctx, name, &metav1.GetOptions{})
	if err != nil {
		return nil, err
	}
	pod := obj.(*corev1.Pod)
	if port == "" {
		for _, c := range pod.Spec.Containers {
			if len(c.Ports) > 0 {
				port = strconv.Itoa(int(c.Ports[0].ContainerPort))
				break
			}
		}
	}
	ip := podIP(pod)
	if parsed := net.ParseIP(ip); parsed == nil || !parsed.IsGlobalUnicast() {
		return nil, apierrors.NewBadRequest("address not allowed")
	}
	loc := &url.URL{Scheme: scheme}
	if port == "" {
		if strings.Contains(ip, ":") {
			loc.Host = "[" + ip + "]"
		} else {
			loc.Host = ip
		}
	} else {
		loc.Host = net.JoinHostPort(ip, port)
	}
	return loc, nil
}

// newProxyTransport is kube-apiserver's transport to pods and services (CreateProxyTransport,
// pkg/controlplane/apiserver/config.go, kubernetes commit 008b3652): "Proxying to pods and services
// is IP-based... don't expect to be able to verify the hostname", so a pod's serving certificate is
// not verified.
func newProxyTransport() *http.Transport {
	return utilnet.SetTransportDefaults(&http.Transport{TLSClientConfig: &tls.Config{InsecureSkipVerify: true}})
}

// legacyBindingREST is the older /bindings collection (LegacyBindingREST in the same file).
type legacyBindingREST struct{ *bindingREST }

func (r legacyBindingREST) Create(ctx context.Context, obj runtime.Object, v rest.ValidateObjectFunc, o *metav1.CreateOptions) (runtime.Object, error) {
	b, ok := obj.(*corev1.Binding)
	if !ok {
		return nil, apierrors.NewBadRequest(fmt.Sprintf("not a Binding object: %T", obj))
	}
	return r.bindingREST.Create(ctx, b.Name, obj, v, o)
}

// ---- OpenAPI: real definitions for the meta types (apiextensions' generated set). The
// built-in kinds are objects with real metadata and x-kubernetes-preserve-unknown-fields:
// enough for server-side apply (everything below metadata merges atomically), not for explain.
func getDefinitions(ref common.ReferenceCallback) map[string]common.OpenAPIDefinition {
	defs := generatedopenapi.GetOpenAPIDefinitions(ref)
	str := spec.Schema{SchemaProps: spec.SchemaProps{Type: []string{"string"}}}
	model := func(o runtime.Object) string { return o.(interface{ OpenAPIModelName() string }).OpenAPIModelName() }
	objectMeta, listMeta := metav1.ObjectMeta{}.OpenAPIModelName(), metav1.ListMeta{}.OpenAPIModelName()
	coarse := func(o runtime.Object) {
		defs[model(o)] = common.OpenAPIDefinition{
			Schema: spec.Schema{
				SchemaProps: spec.SchemaProps{Type: []string{"object"}, Properties: map[string]spec.Schema{
					"apiVersion": str, "kind": str,
					"metadata": {SchemaProps: spec.SchemaProps{Default: map[string]interface{}{}, Ref: ref(objectMeta)}},
				}},
				VendorExtensible: spec.VendorExtensible{Extensions: spec.Extensions{"x-kubernetes-preserve-unknown-fields": true}},
			},
			Dependencies: []string{objectMeta},
		}
	}
	for _, o := range []runtime.Object{&authzv1.SelfSubjectAccessReview{}, &authzv1.SubjectAccessReview{}, &corev1.Binding{}, &corev1.PodProxyOptions{}} {
		coarse(o)
	}
	for _, k := range kinds {
		coarse(k.obj)
		defs[model(k.list)] = common.OpenAPIDefinition{
			Schema: spec.Schema{SchemaProps: spec.SchemaProps{Type: []string{"object"}, Required: []string{"items"}, Properties: map[string]spec.Schema{
				"apiVersion": str, "kind": str,
				"metadata": {SchemaProps: spec.SchemaProps{Default: map[string]interface{}{}, Ref: ref(listMeta)}},
				"items":    {SchemaProps: spec.SchemaProps{Type: []string{"array"}, Items: &spec.SchemaOrArray{Schema: &spec.Schema{SchemaProps: spec.SchemaProps{Ref: ref(model(k.obj))}}}}},
			}}},
			Dependencies: []string{listMeta, model(k.obj)},
		}
	}
	return defs
}

// ---- admission webhooks ----

// endpointResolver finds the address of a webhook's Service as kube-apiserver does with
// --enable-aggregator-routing (cmd/kube-apiserver/app/server.go buildServiceResolver, v1.36):
// kube-aggregator's aggregatorEndpointRouting (k8s.io/kube-aggregator/pkg/apiserver/resolvers.go)
// picks a ready endpoint of the Service's EndpointSlices with proxy.ResolveEndpoint, and its
// loopbackResolver sends default/kubernetes:443 to this server itself. (Debian does not package
// kube-aggregator; these few lines are its resolvers.)
type endpointResolver struct {
	services corelisters.ServiceLister
	slices   proxy.EndpointSliceGetter
	loopback *url.URL
}

func (r *endpointResolver) ResolveEndpoint(namespace, name string, port int32) (*url.URL, error) {
	if namespace == "default" && name == "kubernetes" && port == 443 && r.loopback != nil {
		return r.loopback, nil
	}
	return proxy.ResolveEndpoint(r.services, r.slices, namespace, name, port)
}

// admissionInitializers gives the MutatingAdmissionWebhook and ValidatingAdmissionWebhook plugins
// (which RecommendedOptions.Admission already registers and enables) what kube-apiserver gives
// them: the endpoint resolver and the loopback-aware authentication wrapper. Their informers come
// from c.SharedInformerFactory, this server's own loopback client.
func admissionInitializers(resolver *webhook.ServiceResolver) func(c *genericapiserver.RecommendedConfig) ([]admission.PluginInitializer, error) {
	return func(c *genericapiserver.RecommendedConfig) ([]admission.PluginInitializer, error) {
		slices, err := proxy.NewEndpointSliceIndexerGetter(c.SharedInformerFactory.Discovery().V1().EndpointSlices())
		if err != nil {
			return nil, err
		}
		r := &endpointResolver{services: c.SharedInformerFactory.Core().V1().Services().Lister(), slices: slices}
		if u, err := url.Parse(c.LoopbackClientConfig.Host); err == nil {
			r.loopback = u
		}
		*resolver = r
		auth := webhook.NewDefaultAuthenticationInfoResolverWrapper(nil, nil, c.LoopbackClientConfig, noopoteltrace.NewTracerProvider())
		return []admission.PluginInitializer{webhookinit.NewPluginInitializer(auth, r)}, nil
	}
}

// clusterAuthenticationInfo is the content kube-apiserver's cluster-authentication-trust
// controller writes to kube-system/extension-apiserver-authentication
// (pkg/controlplane/controller/clusterauthenticationtrust: the CA bundles as PEM, the header
// lists as JSON arrays), from this server's --client-ca-file and --requestheader-* flags.
func clusterAuthenticationInfo(a *genericoptions.DelegatingAuthenticationOptions) (map[string]string, error) {
	data := map[string]string{}
	if a == nil {
		return data, nil
	}
	if f := a.ClientCert.ClientCA; f != "" {
		pem, err := os.ReadFile(f)
		if err != nil {
			return nil, err
		}
		data["client-ca-file"] = string(pem)
	}
	rh := a.RequestHeader
	if rh.ClientCAFile == "" {
		return data, nil
	}
	pem, err := os.ReadFile(rh.ClientCAFile)
	if err != nil {
		return nil, err
	}
	data["requestheader-client-ca-file"] = string(pem)
	for key, list := range map[string][]string{"requestheader-username-headers": rh.UsernameHeaders,
		"requestheader-uid-headers": rh.UIDHeaders, "requestheader-group-headers": rh.GroupHeaders,
		"requestheader-extra-headers-prefix": rh.ExtraHeaderPrefixes, "requestheader-allowed-names": rh.AllowedNames} {
		if list == nil {
			list = []string{}
		}
		b, err := json.Marshal(list)
		if err != nil {
			return nil, err
		}
		data[key] = string(b)
	}
	return data, nil
}

func run(ctx context.Context, o *options.CustomResourceDefinitionsServerOptions) error {
	var resolver webhook.ServiceResolver
	o.RecommendedOptions.ExtraAdmissionInitializers = admissionInitializers(&resolver)
	config, err := o.Config()
	if err != nil {
		return err
	}
	// CRD conversion webhooks resolve Services the same way (kube-apiserver passes one resolver).
	config.ExtraConfig.ServiceResolver = resolver
	// One aggregated-discovery manager shared by both servers (kubectl uses aggregated discovery).
	config.GenericConfig.AggregatedDiscoveryGroupManager = aggregated.NewResourceManager("apis")

	// Front server config: a shallow copy, as kube-apiserver does, so both servers share
	// authentication, the loopback token and the listener.
	coreGeneric := *config.GenericConfig
	coreGeneric.PostStartHooks = map[string]genericapiserver.PostStartHookConfigEntry{}
	coreGeneric.RESTOptionsGetter = nil
	namer := openapinamer.NewDefinitionNamer(Scheme)
	coreGeneric.OpenAPIV3Config = genericapiserver.DefaultOpenAPIV3Config(getDefinitions, namer)
	coreGeneric.OpenAPIConfig = genericapiserver.DefaultOpenAPIConfig(getDefinitions, namer)
	// The CRD server needs a v2 config too, else its CRD OpenAPI controllers do not run.
	config.GenericConfig.OpenAPIConfig = genericapiserver.DefaultOpenAPIConfig(
		utilopenapi.GetOpenAPIDefinitionsWithoutDisabledFeatures(generatedopenapi.GetOpenAPIDefinitions),
		openapinamer.NewDefinitionNamer(extensionsapiserver.Scheme, kscheme.Scheme))

	crdServer, err := config.Complete().New(genericapiserver.NewEmptyDelegate())
	if err != nil {
		return err
	}
	// The Python client's VersionApi asks for "/version/"; Debian's go-restful routes only "/version".
	chain := coreGeneric.BuildHandlerChainFunc
	coreGeneric.BuildHandlerChainFunc = func(h http.Handler, c *genericapiserver.Config) http.Handler {
		return chain(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if r.URL.Path == "/version/" {
				r.URL.Path = "/version"
			}
			h.ServeHTTP(w, r)
		}), c)
	}
	completed := coreGeneric.Complete()
	completed.EnableDiscovery = true // the CRD server's Complete() turns it off
	core, err := completed.New("mini-core", crdServer.GenericAPIServer)
	if err != nil {
		return err
	}

	// Storage for the built-in kinds: same etcd, our own codec and key prefix.
	var gvs []schema.GroupVersion
	for _, k := range kinds {
		if !slices.Contains(gvs, k.gv) {
			gvs = append(gvs, k.gv)
		}
	}
	etcd := *o.RecommendedOptions.Etcd
	etcd.StorageConfig.Codec = Codecs.LegacyCodec(gvs...)
	etcd.StorageConfig.Prefix = "/registry"
	etcd.WatchCacheSizes = nil
	getter := etcd.CreateRESTOptionsGetter(&genericoptions.SimpleStorageFactory{StorageConfig: etcd.StorageConfig}, nil)

	groups := map[string]*genericapiserver.APIGroupInfo{}
	group := func(gv schema.GroupVersion) map[string]rest.Storage {
		if groups[gv.Group] == nil {
			// Query parameters decode through our Scheme, as kube-apiserver's legacyscheme.ParameterCodec: the
			// connect options of pods/proxy need it (k8s.io/apiserver handlers/get.go getRequestOptions).
			info := genericapiserver.NewDefaultAPIGroupInfo(gv.Group, Scheme, runtime.NewParameterCodec(Scheme), Codecs)
			info.VersionedResourcesStorageMap[gv.Version] = map[string]rest.Storage{}
			groups[gv.Group] = &info
		}
		return groups[gv.Group].VersionedResourcesStorageMap[gv.Version]
	}
	for _, k := range kinds {
		m, err := newStores(k, getter)
		if err != nil {
			return err
		}
		for name, s := range m {
			group(k.gv)[name] = s
		}
	}
	group(authzv1.SchemeGroupVersion)["selfsubjectaccessreviews"] = selfSubjectAccessReviews{}
	group(authzv1.SchemeGroupVersion)["subjectaccessreviews"] = subjectAccessReviews{}
	binding := &bindingREST{group(corev1.SchemeGroupVersion)["pods"].(*shortNamed).Store}
	group(corev1.SchemeGroupVersion)["pods/binding"] = binding
	group(corev1.SchemeGroupVersion)["bindings"] = legacyBindingREST{binding}
	group(corev1.SchemeGroupVersion)["pods/proxy"] = &proxyREST{binding.store, newProxyTransport()}
	if err := core.InstallLegacyAPIGroup("/api", groups[""]); err != nil {
		return fmt.Errorf("install core: %w", err)
	}
	delete(groups, "")
	for _, name := range slices.Sorted(maps.Keys(groups)) {
		if err := core.InstallAPIGroup(groups[name]); err != nil {
			return fmt.Errorf("install %s: %w", name, err)
		}
	}

	// The legacy /apis list (the Python DynamicClient reads it) must name the CRD groups too;
	// in kube-apiserver the aggregator does that. Follow the CRDs with an informer.
	v1 := metav1.GroupVersionForDiscovery{GroupVersion: apiextensionsv1.SchemeGroupVersion.String(), Version: "v1"}
	core.DiscoveryGroupManager.AddGroup(metav1.APIGroup{Name: apiextensionsv1.GroupName, Versions: []metav1.GroupVersionForDiscovery{v1}, PreferredVersion: v1})
	crdInformer := crdServer.Informers.Apiextensions().V1().CustomResourceDefinitions()
	crdGroups := map[string]bool{}
	resync := func() {
		crds, _ := crdInformer.Lister().List(labels.Everything())
		served := map[string][]metav1.GroupVersionForDiscovery{}
		for _, crd := range crds {
			for _, v := range crd.Spec.Versions {
				gv := metav1.GroupVersionForDiscovery{GroupVersion: crd.Spec.Group + "/" + v.Name, Version: v.Name}
				if v.Served && !slices.Contains(served[crd.Spec.Group], gv) {
					served[crd.Spec.Group] = append(served[crd.Spec.Group], gv)
				}
			}
		}
		for g := range crdGroups {
			if len(served[g]) == 0 {
				core.DiscoveryGroupManager.RemoveGroup(g)
				delete(crdGroups, g)
			}
		}
		for g, vs := range served {
			// Preferred version first, by Kubernetes rules (v1 before v1alpha3), as the real server.
			sort.Slice(vs, func(i, j int) bool { return version.CompareKubeAwareVersionStrings(vs[i].Version, vs[j].Version) > 0 })
			core.DiscoveryGroupManager.AddGroup(metav1.APIGroup{Name: g, Versions: vs, PreferredVersion: vs[0]})
			crdGroups[g] = true
		}
	}
	crdInformer.Informer().AddEventHandler(cache.ResourceEventHandlerFuncs{
		AddFunc:    func(interface{}) { resync() },
		UpdateFunc: func(interface{}, interface{}) { resync() },
		DeleteFunc: func(interface{}) { resync() },
	})

	// kube-apiserver's controllers create these namespaces.
	// kube-apiserver's controllers create these namespaces, and publish how this server
	// authenticates clients in kube-system/extension-apiserver-authentication (which virt-api reads
	// at start: kubevirt v1.9.0 pkg/virt-api/api.go:933 readRequestHeader). Retried: the first
	// writes may meet admission that is not ready yet.
	authn := o.RecommendedOptions.Authentication
	core.AddPostStartHookOrDie("mini-bootstrap-objects", func(hc genericapiserver.PostStartHookContext) error {
		cs, err := kubernetes.NewForConfig(hc.LoopbackClientConfig)
		if err != nil {
			return err
		}
		authInfo, err := clusterAuthenticationInfo(authn)
		if err != nil {
			return err
		}
		return wait.PollUntilContextTimeout(hc, 100*time.Millisecond, 30*time.Second, true, func(ctx context.Context) (bool, error) {
			for _, n := range []string{"default", "kube-system", "kube-public"} {
				_, err := cs.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: n}}, metav1.CreateOptions{})
				if err != nil && !apierrors.IsAlreadyExists(err) {
					klog.Infof("creating namespace %s: %v (will retry)", n, err)
					return false, nil
				}
			}
			cm := &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: "extension-apiserver-authentication", Namespace: metav1.NamespaceSystem}, Data: authInfo}
			_, err := cs.CoreV1().ConfigMaps(cm.Namespace).Create(ctx, cm, metav1.CreateOptions{})
			if apierrors.IsAlreadyExists(err) { // a restarted server: publish the current flags
				_, err = cs.CoreV1().ConfigMaps(cm.Namespace).Update(ctx, cm, metav1.UpdateOptions{})
			}
			if err != nil {
				klog.Infof("publishing %s: %v (will retry)", cm.Name, err)
			}
			return err == nil, nil
		})
	})

	prepared := core.PrepareRun() // also prepares the CRD server
	// Serve one merged OpenAPI (v2 and v3) from the front server, as the aggregator does in
	// kube-apiserver: copy in the CRD server's apiextensions.k8s.io/v3 document, and point the
	// CRD OpenAPI controllers (started later by a post-start hook) at the front server's services.
	crdGS := crdServer.GenericAPIServer
	rec := httptest.NewRecorder()
	crdGS.UnprotectedHandler().ServeHTTP(rec, httptest.NewRequest("GET", "/openapi/v3/apis/apiextensions.k8s.io/v1", nil))
	var s3 spec3.OpenAPI
	if err := json.Unmarshal(rec.Body.Bytes(), &s3); err == nil {
		core.OpenAPIV3VersionedService.UpdateGroupVersion("apis/apiextensions.k8s.io/v1", &s3)
	} else {
		klog.Warningf("no apiextensions openapi v3: %v", err)
	}
	crdGS.OpenAPIV3VersionedService = core.OpenAPIV3VersionedService
	if err := aggregator.MergeSpecsIgnorePathConflictDeprecated(core.StaticOpenAPISpec, crdGS.StaticOpenAPISpec); err != nil {
		return err
	}
	crdGS.StaticOpenAPISpec = core.StaticOpenAPISpec
	crdGS.OpenAPIVersionedService = core.OpenAPIVersionedService
	return prepared.RunWithContext(ctx)
}

func main() {
	o := options.NewCustomResourceDefinitionsServerOptions(os.Stdout, os.Stderr)
	cmd := &cobra.Command{
		Use:   "mini-kube-apiserver",
		Short: "apiextensions-apiserver plus a few built-in kinds, for tests",
		PersistentPreRunE: func(*cobra.Command, []string) error {
			return o.ServerRunOptions.ComponentGlobalsRegistry.Set()
		},
		RunE: func(c *cobra.Command, _ []string) error {
			if err := o.Complete(); err != nil {
				return err
			}
			if err := o.Validate(); err != nil {
				return err
			}
			return run(c.Context(), o)
		},
	}
	cmd.SetContext(genericapiserver.SetupSignalContext())
	o.AddFlags(cmd.Flags())
	os.Exit(cli.Run(cmd))
}
