package evaluate

import (
	"strings"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/util/validation/field"
)

// Kind is which binder pod a pod is.
type Kind string

// The pods binderguard acts on; every other pod is KindOther and passes.
const (
	KindBuild Kind = "build" // BinderHub build pod (repo2docker)
	KindUser  Kind = "user"  // JupyterHub single-user server launched by BinderHub
	KindOther Kind = "other"
)

// Labels, annotations, container names and env vars BinderHub and
// KubeSpawner put on the pods they create.
const (
	LabelComponent       = "component"
	ComponentBuild       = "binderhub-build"
	ComponentUser        = "singleuser-server"
	AnnotationRepo       = "binder-repo"
	BuilderContainer     = "builder"
	EnvRepoURL           = "BINDER_REPO_URL"
	EnvRequest           = "BINDER_REQUEST"
	EnvPersistentRequest = "BINDER_PERSISTENT_REQUEST"
)

// SourceKind says how a repository reference is spelled.
type SourceKind int

const (
	SourceURL     SourceKind = iota // a repository URL
	SourceRequest                   // a BinderHub request "v2/<provider>/<spec>"
)

// Source is one place in a pod that names the repository it serves.
type Source struct {
	Field *field.Path
	Kind  SourceKind
	Value string
}

// Facts is what a pod says about itself, read without any policy.
type Facts struct {
	Kind    Kind
	Sources []Source // every place naming the repository; all are checked
	RepoURL string   // the build pod's repository URL ("" when unknown)
	Ref     string   // the build pod's ref from the builder's --ref ("" when unknown)
}

// KindOf classifies a pod by its component label.
func KindOf(pod *corev1.Pod) Kind {
	switch pod.Labels[LabelComponent] {
	case ComponentBuild:
		return KindBuild
	case ComponentUser:
		return KindUser
	}
	return KindOther
}

// Read gathers the facts of a pod. A build pod's repository is read from
// both the binder-repo annotation and the repo2docker command line, so a
// pod cannot pass by leaving the annotation out; a user pod's from every
// BINDER_* variable of every container.
func Read(pod *corev1.Pod) Facts {
	f := Facts{Kind: KindOf(pod)}
	switch f.Kind {
	case KindBuild:
		if v := strings.TrimSpace(pod.Annotations[AnnotationRepo]); v != "" {
			f.Sources = append(f.Sources, Source{
				Field: field.NewPath("metadata", "annotations").Key(AnnotationRepo),
				Kind:  SourceURL, Value: v,
			})
			f.RepoURL = v
		}
		if i, c := builder(pod); c != nil {
			cmd := append(append([]string{}, c.Command...), c.Args...)
			ref, repo, repoAt := r2dArgs(cmd)
			f.Ref = ref
			if repo != "" {
				p := field.NewPath("spec", "containers").Index(i)
				if repoAt >= len(c.Command) {
					p = p.Child("args").Index(repoAt - len(c.Command))
				} else {
					p = p.Child("command").Index(repoAt)
				}
				f.Sources = append(f.Sources, Source{Field: p, Kind: SourceURL, Value: repo})
				if f.RepoURL == "" {
					f.RepoURL = repo
				}
			}
		}
	case KindUser:
		f.Sources = envSources(pod)
	}
	return f
}

// builder finds the repo2docker container: the one named "builder", else
// the first.
func builder(pod *corev1.Pod) (int, *corev1.Container) {
	for i := range pod.Spec.Containers {
		if pod.Spec.Containers[i].Name == BuilderContainer {
			return i, &pod.Spec.Containers[i]
		}
	}
	if len(pod.Spec.Containers) > 0 {
		return 0, &pod.Spec.Containers[0]
	}
	return -1, nil
}

// r2dArgs reads the ref and the repository from a repo2docker command line
// ("jupyter-repo2docker --ref=SHA --image=I ... REPO"): BinderHub passes the
// repository as the last argument.
func r2dArgs(cmd []string) (ref, repo string, repoAt int) {
	for i, a := range cmd {
		switch {
		case strings.HasPrefix(a, "--ref="):
			ref = strings.TrimPrefix(a, "--ref=")
		case a == "--ref" && i+1 < len(cmd):
			ref = cmd[i+1]
		}
	}
	if n := len(cmd); n > 1 {
		last := strings.TrimSpace(cmd[n-1])
		prevTakesValue := n >= 2 && cmd[n-2] == "--ref"
		if last != "" && !strings.HasPrefix(last, "-") && !prevTakesValue && looksLikeRepo(last) {
			return ref, last, n - 1
		}
	}
	return ref, "", -1
}

// looksLikeRepo keeps the image name or a flag value from being taken for
// the repository when BinderHub's argument order changes.
func looksLikeRepo(s string) bool {
	return strings.Contains(s, "://") || strings.HasPrefix(s, "git@") || strings.Contains(s, "/")
}

// envSources lists the BINDER_* variables of every container and init
// container that name the repository.
func envSources(pod *corev1.Pod) []Source {
	var out []Source
	add := func(base *field.Path, cs []corev1.Container) {
		for i := range cs {
			for j, e := range cs[i].Env {
				var k SourceKind
				switch e.Name {
				case EnvRepoURL:
					k = SourceURL
				case EnvRequest, EnvPersistentRequest:
					k = SourceRequest
				default:
					continue
				}
				if v := strings.TrimSpace(e.Value); v != "" {
					out = append(out, Source{Field: base.Index(i).Child("env").Index(j).Child("value"), Kind: k, Value: v})
				}
			}
		}
	}
	add(field.NewPath("spec", "initContainers"), pod.Spec.InitContainers)
	add(field.NewPath("spec", "containers"), pod.Spec.Containers)
	return out
}

// DefaultRequests does to pod what the API server does before any webhook
// sees it: a container's limit stands in for a request it does not set
// (Kubernetes' SetDefaults_Pod, pkg/apis/core/v1/defaults.go, which is not
// importable as a library). For evaluating a manifest offline (`policy
// test -f`): without it a build pod that sets only limits would get the
// policy's default requests there and its limits in the cluster. The
// webhook's pods are defaulted already.
func DefaultRequests(pod *corev1.Pod) {
	for _, cs := range [][]corev1.Container{pod.Spec.Containers, pod.Spec.InitContainers} {
		for i := range cs {
			r := &cs[i].Resources
			for name, v := range r.Limits {
				if _, set := r.Requests[name]; set {
					continue
				}
				if r.Requests == nil {
					r.Requests = corev1.ResourceList{}
				}
				r.Requests[name] = v.DeepCopy()
			}
		}
	}
}
