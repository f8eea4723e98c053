// mini-kube-apiserver: a Kubernetes API server for kubectl-dlm's tests.
//
// Debian packages the real k8s.io/apiserver and apiextensions-apiserver as Go source, but not
// k8s.io/kubernetes (kube-apiserver proper). So this program is shaped like kube-apiserver, which
// delegates to apiextensions:
//
//   - CRD server: the unmodified upstream apiextensions-apiserver. It gives real CRD serving,
//     server-side apply with managedFields and conflicts, watch with resourceVersions, bookmarks
//     and 410 Gone, the status subresource, dry-run, structural-schema validation and OpenAPI.
//   - front server: a second generic apiserver that serves the few built-in kinds tests need
//     (table `kinds`) from etcd with the real k8s.io/api types, but no validation or defaulting.
//     It also serves merged discovery and OpenAPI, so clients see one cluster.
//
// Tests only: there are no controllers, no RBAC (use a system:masters client certificate) and
// no admission webhooks. Built by tests/infra/build.sh.
package main

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"reflect"
	"slices"
	"sort"
	"strings"

	"github.com/spf13/cobra"
	appsv1 "k8s.io/api/apps/v1"
	authzv1 "k8s.io/api/authorization/v1"
	corev1 "k8s.io/api/core/v1"
	storagev1 "k8s.io/api/storage/v1"
	apiextensionsv1 "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/v1"
	extensionsapiserver "k8s.io/apiextensions-apiserver/pkg/apiserver"
	"k8s.io/apiextensions-apiserver/pkg/cmd/server/options"
	generatedopenapi "k8s.io/apiextensions-apiserver/pkg/generated/openapi"
	metainternalversion "k8s.io/apimachinery/pkg/apis/meta/internalversion"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/runtime/serializer"
	"k8s.io/apimachinery/pkg/util/validation/field"
	"k8s.io/apimachinery/pkg/version"
	"k8s.io/apiserver/pkg/authentication/user"
	"k8s.io/apiserver/pkg/endpoints/discovery/aggregated"
	openapinamer "k8s.io/apiserver/pkg/endpoints/openapi"
	genericrequest "k8s.io/apiserver/pkg/endpoints/request"
	"k8s.io/apiserver/pkg/registry/generic"
	genericregistry "k8s.io/apiserver/pkg/registry/generic/registry"
	"k8s.io/apiserver/pkg/registry/rest"
	genericapiserver "k8s.io/apiserver/pkg/server"
	genericoptions "k8s.io/apiserver/pkg/server/options"
	"k8s.io/apiserver/pkg/storage/names"
	utilopenapi "k8s.io/apiserver/pkg/util/openapi"
	"k8s.io/client-go/kubernetes"
	kscheme "k8s.io/client-go/kubernetes/scheme"
	"k8s.io/client-go/tools/cache"
	"k8s.io/component-base/cli"
	"k8s.io/klog/v2"
	"k8s.io/kube-openapi/pkg/aggregator"
	"k8s.io/kube-openapi/pkg/common"
	"k8s.io/kube-openapi/pkg/spec3"
	"k8s.io/kube-openapi/pkg/validation/spec"
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
}

func (k kindInfo) singular() string { return strings.ToLower(reflect.TypeOf(k.obj).Elem().Name()) }

var (
	Scheme = runtime.NewScheme()
	Codecs = serializer.NewCodecFactory(Scheme)
)

func init() {
	for _, add := range []func(*runtime.Scheme) error{corev1.AddToScheme, storagev1.AddToScheme,
		appsv1.AddToScheme, authzv1.AddToScheme, metainternalversion.AddToScheme} {
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
	Scheme.AddKnownTypes(internal(authzv1.SchemeGroupVersion), &authzv1.SelfSubjectAccessReview{})
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

func (strategy) Validate(context.Context, runtime.Object) field.ErrorList { return nil }
func (strategy) ValidateUpdate(context.Context, runtime.Object, runtime.Object) field.ErrorList {
	return nil
}
func (strategy) WarningsOnCreate(context.Context, runtime.Object) []string { return nil }
func (strategy) WarningsOnUpdate(context.Context, runtime.Object, runtime.Object) []string {
	return nil
}
func (strategy) Canonicalize(runtime.Object)    {}
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
	if err := store.CompleteWithOptions(&generic.StoreOptions{RESTOptions: getter}); err != nil {
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
	coarse(&authzv1.SelfSubjectAccessReview{})
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

func run(ctx context.Context, o *options.CustomResourceDefinitionsServerOptions) error {
	config, err := o.Config()
	if err != nil {
		return err
	}
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
			info := genericapiserver.NewDefaultAPIGroupInfo(gv.Group, Scheme, metav1.ParameterCodec, Codecs)
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
	if err := core.InstallLegacyAPIGroup("/api", groups[""]); err != nil {
		return fmt.Errorf("install core: %w", err)
	}
	for _, gv := range []schema.GroupVersion{storagev1.SchemeGroupVersion, appsv1.SchemeGroupVersion, authzv1.SchemeGroupVersion} {
		if err := core.InstallAPIGroup(groups[gv.Group]); err != nil {
			return fmt.Errorf("install %s: %w", gv.Group, err)
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
	core.AddPostStartHookOrDie("mini-default-namespaces", func(hc genericapiserver.PostStartHookContext) error {
		cs, err := kubernetes.NewForConfig(hc.LoopbackClientConfig)
		if err != nil {
			return err
		}
		for _, n := range []string{"default", "kube-system", "kube-public"} {
			_, _ = cs.CoreV1().Namespaces().Create(context.TODO(), &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: n}}, metav1.CreateOptions{})
		}
		return nil
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
